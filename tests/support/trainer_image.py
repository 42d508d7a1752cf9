"""An operator's training image for the retraining job's tests (retraining.image beside
retraining.nomadml_image): stdlib only, on the project's base image, run as a non-root
user. It ships a model fitted beforehand and stamps each run into the training-data
provenance (new data, new artifact); with an argument it fails the way a trainer does
on bad data."""

from __future__ import annotations

import importlib.resources
import uuid
from pathlib import Path

from examples.iris.train import train_iris
from nomadml.adapters.images import DEFAULT_BASE_IMAGE, DEFAULT_REGISTRY, build_and_push
from nomadml.adapters.nomad_api import NomadAPI

TRAINER_COMMAND = ["python3", "/opt/trainer/train.py"]

# A spec whose retraining job runs `trainer` in `image`, then nomadml's steps in the
# nomadml image (format with name, registry, image, trainer as a JSON list).
SPEC = """\
[model]
name = "{name}"
registry = "{registry}"

[validation]
min_metrics = {{ accuracy = 0.5 }}

[retraining]
enabled = true
driver = "docker"
image = "{image}"
trainer = {trainer}
nomadml_image = "nomadml"
"""

TRAINER = b"""\
import json, os, shutil, sys
if len(sys.argv) > 1:
    print("trainer: the input data is unusable, giving up", file=sys.stderr)
    sys.exit(int(sys.argv[1]))
out = os.environ["NOMADML_OUTPUT_DIR"]
shutil.copy("/opt/trainer/model.json", out)
with open("/opt/trainer/metadata.json") as f:
    meta = json.load(f)
meta["training_data"].update(run=os.environ["NOMAD_ALLOC_ID"], uid=os.getuid())
if os.environ.get("NOMADML_TRAIN_DATA"):  # the spec's data, from the data volume
    with open(os.environ["NOMADML_TRAIN_DATA"]) as f:
        meta["training_data"]["rows"] = sum(1 for _ in f) - 1
with open(os.path.join(out, "metadata.json"), "w") as f:
    json.dump(meta, f)
print("trainer: wrote", sorted(os.listdir(out)))
"""


def build_training_image(model: Path) -> str:
    """The trainer image in the stack's registry, pinned by digest (`model`: a folder
    for the iris model it ships)."""
    train_iris(model)
    dockerfile = (
        f"FROM {DEFAULT_BASE_IMAGE}\nCOPY trainer/ /opt/trainer/\nUSER 10001:10001\n"
    ).encode()
    files: list[tuple[str, Path | bytes]] = [
        ("Dockerfile", dockerfile),
        ("trainer/train.py", TRAINER),
        ("trainer/model.json", model / "model.json"),
        ("trainer/metadata.json", model / "metadata.json"),
    ]
    ref = build_and_push(
        iter(files),
        f"{DEFAULT_REGISTRY}/tests/trainer",
        uuid.uuid4().hex[:8],
        {"io.nomadml.test": "1"},
    )
    return ref.pinned


def bind_retraining_policy(nomad: NomadAPI, job_id: str) -> str:
    """The shipped retraining policy bound to the job, as `nomadml policy retraining |
    nomad acl policy apply -job JOB` does; the policy's name."""
    rules = (importlib.resources.files("nomadml") / "policies" / "retraining.hcl").read_text()
    name = f"nomadml-retraining-{job_id}"
    binding = {"Namespace": "default", "JobID": job_id}
    nomad.request(
        "PUT", f"acl/policy/{name}", body={"Name": name, "Rules": rules, "JobACL": binding}
    )
    return name
