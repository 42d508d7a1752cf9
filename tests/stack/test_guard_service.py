"""The always-on guard on the real stack: `nomadml guard --up --model M` registers it as
a Nomad service job (raw_exec: the nomadml on the agent's PATH); it picks up the bake of
a freshly promoted version by itself. Its allocation is restarted mid-bake; the new
process resumes the same bake from the state in the rollout record (same end time, the
looks go on counting), and when the version degrades, the line is rolled back exactly
once, with no failed request for the stable version."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from support.guard import guard_record, promoted_and_baking, rolled_back_once, running_alloc

from nomadml.adapters.nomad_api import NomadAPI
from nomadml.cli.main import main
from nomadml.core.decide import Action
from nomadml.engine.guard_record import FINAL
from nomadml.engine.result import RolloutResult
from nomadml.engine.traffic import Traffic

RATE = 20
GOOD_FOR = 900  # predictions per allocation before 1.1.0 degrades (~80 s after promotion)
GUARDED = {
    'window = "20s"': 'window = "4s"',
    'interval = "5s"': 'interval = "2s"',
    "[validation]": (
        "[gates.judge]\nenabled = true\nalpha = 0.01\nerror_increase = 0.2\n"
        'latency = false\ndeadline = "3m"\n\n[guard]\nbake = "5m"\n\n[validation]'
    ),
}


def test_the_always_on_guard_resumes_after_a_restart_and_rolls_back_once(
    roll: Callable[..., RolloutResult],
    nomad: NomadAPI,
    make_spec: Callable[..., Path],
    ship: Callable[..., str],
    model_name: str,
) -> None:
    spec, line = make_spec(GUARDED), f"{model_name}-v1"
    assert roll(spec, "1.0.0", ship("1.0.0")).action is Action.SUCCEEDED
    up = CliRunner().invoke(main, ["guard", "--up", "--model", model_name])
    assert up.exit_code == 0, up.output
    guard_job = f"{model_name}-guard"
    alloc = running_alloc(nomad, guard_job)
    late = ship("1.1.0", serving={"error_rate": 0.5, "error_after": GOOD_FOR})

    with Traffic(nomad, line, rate_per_s=RATE, max_seconds=480) as traffic:
        promoted, path, before = promoted_and_baking(nomad, roll, spec, line, late)
        nomad.request("PUT", f"client/allocation/{alloc['ID']}/restart", body={})
        final = guard_record(nomad, path, lambda g: g["status"] in FINAL, 400)
    report = traffic.report
    print(
        f"traffic: {report.summary()}; looks before the restart {before['state']['looks']}, "
        f"at the end {final['state']['looks']}"
    )

    rolled_back_once(nomad, model_name, line, int(promoted.job_version or 0), before, final, report)

    # The allocation was restarted, and the second process resumed the same bake (the
    # bake's end comes from the promotion time in the record, not from the restart).
    states = (nomad.request("GET", f"allocation/{alloc['ID']}").body or {})["TaskStates"]
    assert states["guard"]["Restarts"] >= 1
    logs = nomad.task_log_tail(alloc["ID"], "guard", kind="stdout", size=20000)
    ends = re.findall(r"guard: watching 1\.1\.0 until (\S+) UTC", logs)
    assert len(ends) >= 2 and len(set(ends)) == 1, logs[-3000:]
