"""The operator's trainer in its own image, nomadml's steps in the nomadml image: the
periodic retraining job with `retraining.nomadml_image = "nomadml"`, forced through
Nomad on an agent of the test's own (its docker driver may mount host paths: the
engine's socket). A run registers and validates a new version; a trainer that exits
non-zero in its image registers nothing, says so in the job's log and the audit trail."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from private_agent import Agent
from support.periodic import force_and_read
from support.trainer_image import SPEC, bind_retraining_policy, build_training_image
from support.webhook_receiver import WebhookReceiver

from nomadml.adapters import image_registry
from nomadml.adapters.images import DEFAULT_REGISTRY
from nomadml.adapters.model_store import ModelRegistry
from nomadml.adapters.webhooks import sign
from nomadml.cli.main import main

PORT_BASE = 6046
ACL_PORT_BASE = 6146
SECURE_PORT_BASE = 6246
SECURE = os.environ.get("NOMADML_SECURE_REGISTRY", "127.0.0.1:5443")


@contextlib.contextmanager
def _agent(
    port_base: int, name: str, acl: bool = False, auth: Path | None = None
) -> Iterator[Agent]:
    """An agent of the test's own under a short folder: Nomad creates a task's Task API
    socket only if <alloc dir>/<alloc id>/<task>/secrets/api.sock fits a unix socket
    path (108 bytes); under pytest's deep tmp folders it silently does not."""
    where = Path(tempfile.mkdtemp(prefix="ti-"))
    (where / "training-data").mkdir()
    data = (("training-data", where / "training-data"),)
    a = Agent(
        where,
        port_base,
        name,
        docker_volumes=True,
        acl=acl,
        host_volumes=data,
        docker_auth_config=auth,
    )
    try:
        a.start()
        yield a
    finally:
        a.shut_down()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def agent(docker_client: object) -> Iterator[Agent]:
    with _agent(PORT_BASE, "trainer-image") as a:
        yield a


@pytest.fixture(scope="module")
def training_image(tmp_path_factory: pytest.TempPathFactory, docker_client: object) -> str:
    """An operator's training image on the base image, running as a non-root user."""
    return build_training_image(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def acl_agent(docker_client: object) -> Iterator[Agent]:
    with _agent(ACL_PORT_BASE, "trainer-image-acl", acl=True) as a:
        yield a


def _schedule(agent: Agent, spec: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["schedule-retraining", str(spec)],
        env={"NOMAD_ADDR": agent.address, "NOMAD_TOKEN": agent.token},
    )
    assert result.exit_code == 0, (result.output, result.stderr)


def test_trainer_image_then_nomadml_image_registers_or_registers_nothing(
    agent: Agent, training_image: str, model_name: str, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    api = agent.api()
    registry = ModelRegistry(api)
    spec = tmp_path / "spec.toml"
    trainer = ["python3", "/opt/trainer/train.py"]
    values = {"name": model_name, "registry": DEFAULT_REGISTRY, "image": training_image}
    hook = f'\n[notify]\nwebhook_url = "{receiver.url}"\n'
    spec.write_text(SPEC.format(**values, trainer=json.dumps(trainer)) + hook)
    _schedule(agent, spec)
    # The webhook's secret lives in the job's own variable, not in the job.
    api.put_variable(f"nomad/jobs/{model_name}-retrain", {"webhook_secret": 'se"cret'})
    job = api.job(f"{model_name}-retrain")
    assert job is not None
    (group,) = job["TaskGroups"]
    tasks = {t["Name"]: t for t in group["Tasks"]}
    assert tasks["train"]["Config"]["image"] == training_image
    nomadml_image = tasks["nomadml"]["Config"]["image"]
    assert "/nomadml/nomadml@sha256:" in nomadml_image
    assert tasks["nomadml"]["Lifecycle"]["Hook"] == "poststop"
    # Nomad's Task API with the task's workload identity: no token, no address in the job.
    assert tasks["nomadml"]["Env"]["NOMAD_ADDR"] == "unix://${NOMAD_SECRETS_DIR}/api.sock"
    assert tasks["nomadml"]["Identity"]["Env"] is True
    assert not [t for t in tasks.values() if "NOMAD_TOKEN" in (t["Env"] or {})]

    status, alloc_id, logs = force_and_read(api, f"{model_name}-retrain")
    assert status == "complete", logs
    assert "trainer task 'train' exited 0" in logs["nomadml"], logs
    assert f"{model_name} 1.0.0: validated" in logs["nomadml"], logs
    (record,) = registry.versions(model_name)
    assert (record.version, record.stage) == ("1.0.0", "validated")
    assert record.image.startswith(f"{DEFAULT_REGISTRY}/nomadml/models/{model_name}@sha256:")
    # What this run's trainer wrote, in its image, as its image's non-root user.
    assert record.record["training_data"]["run"] == alloc_id
    assert record.record["training_data"]["uid"] == 10001

    # The trainer fails in its image: nothing registered; the job's log and the audit
    # trail say which task exited how.
    spec.write_text(SPEC.format(**values, trainer=json.dumps([*trainer, "3"])) + hook)
    _schedule(agent, spec)
    status, _, logs = force_and_read(api, f"{model_name}-retrain")
    assert status == "failed", logs
    line = "trainer task 'train' exited 3"
    assert [x for x in logs["nomadml"].splitlines() if line in x], logs
    assert [r.version for r in registry.versions(model_name)] == ["1.0.0"]
    audit = [e for e in registry.audit_log(model_name) if e["action"] == "retrain-failed"]
    assert len(audit) == 1 and line in audit[0]["details"]["reason"], audit
    events = [json.loads(body)["event"] for _, body in receiver.received]
    assert events == ["model-registered", "retraining-validated", "retraining-failed"], events
    for headers, body in receiver.received:  # signed with the secret from the variable
        assert headers.get("X-Nomadml-Signature") == sign(
            b'se"cret', headers.get("X-Nomadml-Timestamp", ""), body
        ), headers


def test_on_an_acl_cluster_the_job_has_the_rights_of_the_policy_bound_to_it(
    acl_agent: Agent, training_image: str, model_name: str, tmp_path: Path
) -> None:
    api = acl_agent.api()
    registry = ModelRegistry(api)
    job_id = f"{model_name}-retrain"
    spec = tmp_path / "spec.toml"
    trainer = ["python3", "/opt/trainer/train.py"]
    values = {"name": model_name, "registry": DEFAULT_REGISTRY, "image": training_image}
    spec.write_text(SPEC.format(**values, trainer=json.dumps(trainer)))
    _schedule(acl_agent, spec)

    # No policy bound to the job: its workload identity may do nothing of nomadml's.
    status, _, logs = force_and_read(api, job_id)
    assert status == "failed", logs
    hint = f"is the retraining policy bound to job {job_id}?"
    assert [x for x in logs["nomadml"].splitlines() if hint in x], logs
    assert registry.versions(model_name) == []

    # The shipped retraining policy bound to the job (what `nomad acl policy apply -job`
    # does): the periodic run's identity gets exactly its rights, and registers.
    bind_retraining_policy(api, job_id)
    status, _, logs = force_and_read(api, job_id)
    assert status == "complete", logs
    assert f"{model_name} 1.0.0: validated" in logs["nomadml"], logs
    assert [(r.version, r.stage) for r in registry.versions(model_name)] == [("1.0.0", "validated")]


DATA = """
data_volume = "training-data"

[data]
train = "iris/train.csv"
evaluation = "iris/eval.csv"
label = "species"

[data.checks]
min_rows = 30
max_missing = 0.0
min_class_share = 0.2
"""


def test_the_trainer_and_the_checks_read_the_spec_data_from_the_data_volume(
    agent: Agent, training_image: str, model_name: str, tmp_path: Path
) -> None:
    api = agent.api()
    registry = ModelRegistry(api)
    volume = agent.tmp / "training-data" / "iris"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "iris" / "data", volume)
    rows = len((volume / "train.csv").read_text().splitlines()) - 1
    spec = tmp_path / "spec.toml"
    trainer = ["python3", "/opt/trainer/train.py"]
    values = {"name": model_name, "registry": DEFAULT_REGISTRY, "image": training_image}
    spec.write_text(SPEC.format(**values, trainer=json.dumps(trainer)) + DATA)
    _schedule(agent, spec)

    status, _, logs = force_and_read(api, f"{model_name}-retrain")
    assert status == "complete", logs
    assert "data checks passed: /data/iris/train.csv, /data/iris/eval.csv" in logs["nomadml"]
    # Same-data evaluation from inside the job: the serving image ran on the engine.
    assert "measuring 1.0.0 and production on iris/eval.csv" in logs["nomadml"], logs
    (record,) = registry.versions(model_name)
    assert (record.version, record.stage) == ("1.0.0", "validated"), logs
    assert record.record["training_data"]["rows"] == rows  # the trainer read the volume

    # Data failing its checks: no version, each failed check named in the job's log.
    lines = (volume / "train.csv").read_text().splitlines()
    lines[1] = ",".join(["", *lines[1].split(",")[1:]])  # a missing sepal_length
    (volume / "train.csv").write_text("\n".join(lines) + "\n")
    status, _, logs = force_and_read(api, f"{model_name}-retrain")
    assert status == "failed", logs
    assert (
        "data check failed: train data /data/iris/train.csv: column sepal_length"
        in (logs["nomadml"])
    ), logs
    assert [r.version for r in registry.versions(model_name)] == ["1.0.0"]


def test_a_registry_with_tls_and_auth_takes_credentials_from_the_jobs_own_variable(
    docker_client: object, training_image: str, model_name: str, tmp_path: Path
) -> None:
    """The spec's registry speaks TLS (a CA in the engine's certs.d) and wants a login:
    the nomadml task gets the CA from certs.d, and docker login's credentials only from
    the job's own Nomad Variable, never from the job."""
    login = image_registry.credentials(SECURE)
    if login is None or not (image_registry.certs_dir() / SECURE / "ca.crt").is_file():
        if os.environ.get("NOMADML_REQUIRE_STACK") == "1":
            pytest.fail(f"the stack's secure registry {SECURE} is not set up", pytrace=False)
        pytest.skip(f"no secure registry at {SECURE}; run scripts/stack up")
    auth = image_registry.docker_config()
    with _agent(SECURE_PORT_BASE, "trainer-image-tls", auth=auth) as agent:
        api = agent.api()
        registry = ModelRegistry(api)
        job_id = f"{model_name}-retrain"
        spec = tmp_path / "spec.toml"
        values = {"name": model_name, "registry": SECURE, "image": training_image}
        spec.write_text(SPEC.format(**values, trainer='["python3", "/opt/trainer/train.py"]'))
        _schedule(agent, spec)

        status, _, logs = force_and_read(api, job_id)  # no credentials: nothing pushed
        assert status == "failed", logs
        assert f"docker login {SECURE}" in logs["nomadml"], logs
        assert registry.versions(model_name) == []

        entry = json.loads(auth.read_text())["auths"][SECURE]
        config = json.dumps({"auths": {SECURE: {"auth": entry["auth"]}}})
        api.put_variable(f"nomad/jobs/{job_id}", {"docker_config": config})
        status, _, logs = force_and_read(api, job_id)
        assert status == "complete", logs
        (record,) = registry.versions(model_name)
        assert (record.version, record.stage) == ("1.0.0", "validated"), logs
        assert record.image.startswith(f"{SECURE}/nomadml/models/{model_name}@sha256:")
