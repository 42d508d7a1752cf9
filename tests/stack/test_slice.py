"""The first vertical slice on the real stack: model image -> prestart bootstrap
into the host volume -> serving task -> a real prediction."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from examples.iris import quickstart
from nomadml.adapters.nomad_api import NomadAPI
from nomadml.core.spec import load_spec


def test_slice_serves_a_real_prediction(
    nomad: NomadAPI,
    docker_client: object,
    models_volume: Path,
    model_name: str,
    make_spec: Callable[..., Path],
) -> None:
    spec = load_spec(make_spec())
    result = quickstart.run(nomad, spec)
    job_id = f"{model_name}-v1"

    assert result.job_id == job_id
    assert result.prediction["version"] == quickstart.VERSION
    assert result.prediction["model"] == model_name
    assert [p["label"] for p in result.prediction["predictions"]] == quickstart.EXPECTED
    for p in result.prediction["predictions"]:
        assert abs(sum(p["probabilities"].values()) - 1.0) < 1e-6

    # The bootstrap installed the version under <volume>/<model>/<version>/ with
    # its manifest and completion marker, and the files match the manifest.
    installed = models_volume / model_name / quickstart.VERSION
    manifest = json.loads((installed / "manifest.json").read_text())
    assert manifest["version"] == quickstart.VERSION
    assert (installed / ".nomadml-complete").is_file()
    assert {f["path"] for f in manifest["files"]} == {"model.json", "metadata.json"}

    # What the operator sees in Nomad: the service, the job meta, the submitted source.
    job = nomad.job(job_id)
    assert job is not None
    assert job["Meta"]["nomadml.model"] == model_name
    assert job["Meta"]["nomadml.version"] == quickstart.VERSION
    assert job["Meta"]["nomadml.spec_hash"] == spec.spec_hash
    group = job["TaskGroups"][0]
    bootstrap = next(t for t in group["Tasks"] if t["Name"] == "bootstrap")
    assert bootstrap["Lifecycle"]["Hook"] == "prestart"
    assert "@sha256:" in bootstrap["Config"]["image"]
    serve = next(t for t in group["Tasks"] if t["Name"] == "serve")
    assert serve["VolumeMounts"][0]["ReadOnly"] is True
    assert "@sha256:" in serve["Config"]["image"]
    submission = nomad.job_submission(job_id, job["Version"])
    assert f'job "{job_id}"' in submission["Source"]
    # Both allocations of the line (count = 2 in the spec) are registered.
    assert len(nomad.service(job_id)) == 2

    # The serving process runs as the image's non-root user, not as root.
    for reg in nomad.service(job_id):
        container = docker_client.containers.get(f"serve-{reg['AllocID']}")  # type: ignore[attr-defined]
        pid = container.attrs["State"]["Pid"]
        uids = next(
            line.split()[1:]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert uids == ["10001"] * 4, uids  # real, effective, saved, filesystem
