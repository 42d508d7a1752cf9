"""The retraining job on the cluster (ACLs, mutual TLS), as an operator runs it: an
operator token schedules it (the trainer in the operator's image, nomadml's steps in
the nomadml image), and a run acts only with the rights of the policy bound to the
job — its workload identity through the client's Task API, no token or certificate in
the job. Without the binding the run registers nothing and its log names the policy;
with the shipped retraining policy bound, a forced run registers a validated candidate.
The clients' docker driver allows host-path volumes (the nomadml task mounts the
engine's socket), as scripts/cluster.sh configures them."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from support.cluster import Cli, Node
from support.periodic import force_and_read
from support.trainer_image import (
    SPEC,
    TRAINER_COMMAND,
    bind_retraining_policy,
    build_training_image,
)

from nomadml.adapters.images import DEFAULT_REGISTRY
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.errors import NomadMLError


def test_a_retraining_run_has_the_rights_of_the_policy_bound_to_its_job(
    nomad: NomadAPI,
    nodes: dict[str, Node],
    model_name: str,
    policy_token: Callable[[str], str],
    cli: Cli,
    tmp_path: Path,
    docker_client: object,
) -> None:
    image = build_training_image(tmp_path / "model")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        SPEC.format(
            name=model_name,
            registry=DEFAULT_REGISTRY,
            image=image,
            trainer=json.dumps(TRAINER_COMMAND),
        )
    )
    scheduled = cli("schedule-retraining", str(spec), token=policy_token("operator"))
    assert scheduled.returncode == 0, (scheduled.stdout, scheduled.stderr)
    job_id = f"{model_name}-retrain"
    job = nomad.job(job_id)
    assert job is not None
    (group,) = job["TaskGroups"]
    # Nothing of the cluster's in the job: no token, no server address, no certificate.
    assert not [t for t in group["Tasks"] if set(t["Env"] or {}) & {"NOMAD_TOKEN", "NOMAD_CACERT"}]
    registry = ModelRegistry(nomad)

    # No policy bound to the job: its workload identity may do nothing of nomadml's.
    started = time.monotonic()
    status, _, logs = force_and_read(nomad, job_id)
    refused = time.monotonic() - started
    assert status == "failed", logs
    hint = f"is the retraining policy bound to job {job_id}?"
    assert [x for x in logs["nomadml"].splitlines() if hint in x], logs
    assert registry.versions(model_name) == []

    # The shipped policy bound to the job, as `nomadml policy retraining | nomad acl
    # policy apply -job <model>-retrain` does: the next run registers with its rights.
    name = bind_retraining_policy(nomad, job_id)
    try:
        started = time.monotonic()
        status, alloc_id, logs = force_and_read(nomad, job_id)
        registered = time.monotonic() - started
        assert status == "complete", logs
        assert "trainer task 'train' exited 0" in logs["nomadml"], logs
        assert f"{model_name} 1.0.0: validated" in logs["nomadml"], logs
        (record,) = registry.versions(model_name)
        assert (record.version, record.stage) == ("1.0.0", "validated")
        assert record.image.startswith(f"{DEFAULT_REGISTRY}/nomadml/models/{model_name}@sha256:")
        # What this run's trainer wrote, on one of the cluster's clients.
        assert record.record["training_data"]["run"] == alloc_id
        node = nomad.request("GET", f"allocation/{alloc_id}").body["NodeID"]
        print(
            f"unbound run failed in {refused:.1f} s; bound run on {nodes[node].name}"
            f" registered in {registered:.1f} s"
        )
    finally:
        with contextlib.suppress(NomadMLError):
            nomad.request("DELETE", f"acl/policy/{name}")
