"""The spec's schema: every table and field with its kind, default and checks, and the
rules that span fields. The defaults are defined here once; `nomadml.core.spec`
builds the typed spec from a table this schema has checked."""

from __future__ import annotations

import itertools
import re
from typing import Any

from nomadml.core.metrics import MetricNames
from nomadml.core.schema import (
    DURATION,
    REQUIRED,
    Field,
    Schema,
    between,
    matches,
    non_empty,
    one_of,
    seconds,
)

NAME = r"[a-z][a-z0-9-]{0,39}"
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ENV_KEY = r"(?!NOMADML_|NOMAD_)[A-Za-z_][A-Za-z0-9_]*"
REFERENCE_SERVER = "reference"
COLUMN_KINDS = ("float", "int", "str", "bool")


def _steps(value: list[int]) -> str | None:
    if not value:
        return None
    if any(not 0 < step <= 100 for step in value):
        return f"{value}: each step is a percent in 1..100"
    if any(b <= a for a, b in itertools.pairwise(value)):
        return f"{value}: steps must rise"
    if value[-1] != 100:
        return f"{value}: the last step must be 100 (all of the line's traffic)"
    return None


def _optional_duration(value: str) -> str | None:
    if value == "" or DURATION.fullmatch(value):
        return None
    return f"{value!r} is not a duration such as 168h (or empty: never)"


def _cron(value: str) -> str | None:
    fields = value.split()
    if len(fields) not in (5, 6) or not all(re.fullmatch(r"[0-9*/,\-A-Za-z?]+", f) for f in fields):
        return f'{value!r} is not a cron expression (5 fields, e.g. "0 3 * * *")'
    return None


def _path(value: str) -> str | None:
    return (
        None
        if value.startswith("/") and " " not in value
        else f"{value!r} must be an absolute URL path"
    )


RESOURCES: Schema = {
    "cpu": Field("int", 200, (between(10, 100_000),)),
    "memory": Field("int", 256, (between(16, 1_000_000),)),
}

SCHEMA: Schema = {
    "model": {
        "name": Field(
            "str", REQUIRED, (matches(NAME, "a model name (lowercase letters, digits, '-')"),)
        ),
        "description": Field("str", ""),
        "registry": Field(
            "str", "127.0.0.1:5000", (matches(r"[A-Za-z0-9.\-]+(:\d+)?", "a registry host[:port]"),)
        ),
    },
    "serving": {
        "driver": Field("str", "docker", (one_of("docker", "exec"),)),
        "image": Field("str", REFERENCE_SERVER, (non_empty,)),
        "command": Field("str", "python3", (non_empty,)),
        "args": Field("list[str]", ["/opt/nomadml/serve.py"]),
        "port": Field("int", 0, (between(0, 65535),)),
        "health_path": Field("str", "/health", (_path,)),
        "metrics_path": Field("str", "/metrics", (_path,)),
        "count": Field("int", 1, (between(1, 100),)),
        "env": Field(
            "dict[str,str]",
            {},
            (matches(ENV_KEY, "an environment variable name (NOMAD_/NOMADML_ are reserved)"),),
        ),
        "shutdown_delay": Field("duration", "5s"),
        "kill_timeout": Field("duration", "10s"),
        "resources": {**RESOURCES},
    },
    "bootstrap": {
        "resources": {
            "cpu": Field("int", 100, (between(10, 100_000),)),
            "memory": Field("int", 128, (between(16, 1_000_000),)),
        },
    },
    "placement": {
        "datacenters": Field("list[str]", ["*"], (non_empty,)),
        "namespace": Field(
            "str", "default", (matches(r"[a-zA-Z0-9-]{1,128}", "a namespace name"),)
        ),
        "region": Field("str", "global", (matches(r"[a-zA-Z0-9-]{1,128}", "a region name"),)),
    },
    "volume": {
        "name": Field("str", "models", (matches(r"[A-Za-z0-9_\-]{1,64}", "a host volume name"),)),
    },
    "update": {
        "canary": Field("int", 1, (between(0, 100),)),
        "max_parallel": Field("int", 1, (between(1, 100),)),
        "min_healthy_time": Field("duration", "10s"),
        "healthy_deadline": Field("duration", "3m"),
        "progress_deadline": Field("duration", "10m"),
        "auto_promote": Field("bool", False),
        "auto_revert": Field("bool", True),
        # With a router: the canary's share of the line's traffic, step by step (percent,
        # rising, ending at 100), gates at every step; [] = the canary count decides.
        "steps": Field("list[int]", [], (_steps,)),
        # Before the steps, a shadow phase: the router mirrors `share` percent of the
        # line's requests to the canary (which serves no client), and the canary goes on
        # to its steps only if its answers agree with stable's (at least min_agreement
        # of min_requests compared) and its p95 is within max_latency_ms; else rollback.
        "shadow": {
            "share": Field("int", 0, (between(0, 100),)),
            "min_agreement": Field("float", 0.99, (between(0, 1),)),
            "min_requests": Field("int", 100, (between(1, 1_000_000),)),
            "max_latency_ms": Field("float", 500.0, (between(1, 600_000),)),
            "timeout": Field("duration", "5m"),
            # What must be identical: the answer from its "predictions" key on, only
            # the predicted labels ("label" fields, in order), or the whole body.
            "compare": Field("str", "predictions", (one_of("predictions", "labels", "body"),)),
            # Numbers in the compared answers agree within this (absolute or relative):
            # a regression's or a probability's last digits may differ; labels (JSON
            # strings) and everything else must still be identical. 0: exact text.
            "tolerance": Field("float", 0.0, (between(0, 1),)),
        },
    },
    "restart": {
        "attempts": Field("int", 1, (between(0, 100),)),
        "interval": Field("duration", "5m"),
        "delay": Field("duration", "5s"),
    },
    "gates": {
        "health": Field("bool", True),
        # false: promote on Nomad health alone, no canary-vs-stable metric analysis
        "analysis": Field("bool", True),
        # Where the canary analysis reads its numbers when a router routes the line:
        # the router's own per-version counters (reachable wherever the router is), or
        # each allocation's /metrics scraped directly (the fallback; always without one).
        # prometheus: the operator's PromQL in [gates.prometheus] (any line, router or not).
        "source": Field("str", "router", (one_of("router", "direct", "prometheus"),)),
        "window": Field("duration", "30s"),
        "interval": Field("duration", "5s"),
        "consecutive_passes": Field("int", 3, (between(1, 100),)),
        "min_requests": Field("int", 20, (between(0, 1_000_000),)),
        "max_error_rate": Field("float", 0.01, (between(0, 1),)),
        "max_error_rate_increase": Field("float", 0.01, (between(0, 1),)),
        "latency_percentile": Field("float", 0.95, (between(0.5, 0.999),)),
        "max_latency_ms": Field("float", 500.0, (between(1, 600_000),)),
        "max_latency_ratio": Field("float", 1.5, (between(1, 100),)),
        # ... and slower than stable by more than this: a few milliseconds on a fast model
        # (or measured at a router, network time included) are noise, not a regression.
        "min_latency_increase_ms": Field("float", 20.0, (between(0, 600_000),)),
        # The sequential judge (anytime-valid tests at a false-alarm rate alpha) decides
        # instead of the thresholds above; it says when the evidence suffices.
        "judge": {
            "enabled": Field("bool", False),
            "alpha": Field("float", 0.01, (between(0.0001, 0.4999),)),
            "error_increase": Field("float", 0.01, (between(0.0001, 0.9999),)),
            "slow_increase": Field("float", 0.05, (between(0.0001, 0.9999),)),
            "latency": Field("bool", True),
            "deadline": Field("duration", "10m"),
            # At the deadline without a decision: await (stop, exit 8, the operator
            # decides), fail, or promote (only when written down here).
            "on_inconclusive": Field("str", "await", (one_of("await", "fail", "promote"),)),
        },
        # A model-level signal: canary vs stable predicted-label distributions, from the
        # serving contract's nomadml_predictions_total{label} counter, by a chi-squared
        # test (p < alpha fails) or the population stability index (PSI > max_psi fails).
        "predictions": {
            "enabled": Field("bool", False),
            "test": Field("str", "chi2", (one_of("chi2", "psi", "sequential"),)),
            "alpha": Field("float", 0.001, (between(0.000001, 0.4999),)),
            "max_psi": Field("float", 0.25, (between(0.0001, 100),)),
            "min_predictions": Field("int", 50, (between(1, 1_000_000),)),
        },
        # Quiet hours: sample requests (a JSON file of instances, relative to the spec)
        # that deploy sends to the canary and to stable, rate_per_s to each, while the
        # gates judge them, so a lack of real traffic does not leave them without
        # evidence. Servers that count the X-Nomadml-Probe header apart show how much of
        # the evidence was probes. With gates.source direct they go to the allocations;
        # with a router on the line (gates.source router) through it, which counts them apart.
        # With gates.source = "prometheus": each query returns cumulative counters by
        # alloc_id (latency: histogram buckets by alloc_id and le); {service} is the
        # line's service. The defaults read the reference server's metrics as the
        # stack's Prometheus labels them (nomad_sd_configs relabelled to alloc_id,
        # nomad_service, version).
        "prometheus": {
            "url": Field(
                "str", "http://127.0.0.1:9090", (matches(r"https?://\S+", "an http(s) URL"),)
            ),
            "requests": Field(
                "str",
                'sum by (alloc_id) (nomadml_requests_total{nomad_service="{service}",'
                'path="/predict"})',
                (non_empty,),
            ),
            "errors": Field(
                "str",
                'sum by (alloc_id) (nomadml_requests_total{nomad_service="{service}",'
                'path="/predict",code=~"5.."})',
                (non_empty,),
            ),
            "latency": Field(
                "str",
                "sum by (alloc_id, le) "
                '(nomadml_request_duration_seconds_bucket{nomad_service="{service}"})',
                (non_empty,),
            ),
        },
        "probe": {
            "enabled": Field("bool", False),
            "instances": Field("str", ""),
            "rate_per_s": Field("float", 5.0, (between(0.1, 200),)),
        },
        "metrics": {
            # The reference server's names (MetricNames' defaults).
            "requests_total": Field(
                "str", MetricNames.requests_total, (matches(IDENT, "a metric name"),)
            ),
            "duration_seconds": Field(
                "str", MetricNames.duration_seconds, (matches(IDENT, "a metric name"),)
            ),
            "path_label": Field("str", MetricNames.path_label, (matches(IDENT, "a label name"),)),
            "path": Field("str", MetricNames.path),
            "code_label": Field("str", MetricNames.code_label, (matches(IDENT, "a label name"),)),
            "predictions_total": Field(
                "str", MetricNames.predictions_total, (matches(IDENT, "a metric name"),)
            ),
            "prediction_label": Field(
                "str", MetricNames.prediction_label, (matches(IDENT, "a label name"),)
            ),
            "probe_requests_total": Field(
                "str", MetricNames.probe_requests_total, (matches(IDENT, "a metric name"),)
            ),
        },
    },
    "validation": {
        "min_metrics": Field("dict[str,float]", {}),
        "max_regression": Field("dict[str,float]", {}),
        "max_size_mb": Field("float", 1024.0, (between(0.001, 1_000_000),)),
        "require_approval": Field("bool", False),
    },
    "lifecycle": {
        "keep_majors": Field("int", 2, (between(1, 20),)),
        "purge_retired": Field("bool", False),
        # Rejected versions and superseded candidates older than this expire: their
        # records stay for the audit, their images leave the image registry ("": never).
        "expire_after": Field("str", "", (_optional_duration,)),
    },
    "retraining": {
        "enabled": Field("bool", False),
        "schedule": Field("str", "0 3 * * *", (_cron,)),
        "time_zone": Field(
            "str", "UTC", (matches(r"[A-Za-z_]+(/[A-Za-z_+\-0-9]+)*", "a time zone name"),)
        ),
        "auto_deploy": Field("bool", False),
        "driver": Field("str", "docker", (one_of("docker", "exec", "raw_exec"),)),
        "image": Field("str", REFERENCE_SERVER, (non_empty,)),
        # The task's command: nomadml's own run, which calls the trainer.
        "command": Field("list[str]", ["nomadml", "retrain"], (non_empty,)),
        # The operator's trainer: writes model files + metadata.json to $NOMADML_OUTPUT_DIR.
        "trainer": Field("list[str]", []),
        "args": Field("list[str]", []),
        # driver = "docker" only. "": `image` runs `command` (one task; the image holds
        # nomadml and the trainer). "nomadml": the project's nomadml image (built and
        # pushed by schedule-retraining when missing, pinned by digest) runs nomadml's
        # steps after the trainer's own task in `image`; or your build of it, by digest.
        "nomadml_image": Field("str", ""),
        # The Docker engine's socket on the client: the nomadml task builds model images
        # and runs serving images for the same-data evaluation through it.
        "docker_socket": Field("str", "/var/run/docker.sock", (non_empty,)),
        # With nomadml_image: the Nomad host volume holding the [data] files (their
        # paths are relative to it), mounted read-only at /data in both tasks.
        "data_volume": Field("str", "", (matches(r"([A-Za-z0-9_.-]+)?", "a host volume name"),)),
        "resources": {
            "cpu": Field("int", 500, (between(10, 100_000),)),
            "memory": Field("int", 512, (between(16, 1_000_000),)),
        },
    },
    "data": {
        # Where the trainer reads its data (absolute, or relative to the spec file);
        # passed to it as $NOMADML_TRAIN_DATA and $NOMADML_EVAL_DATA (CSV files).
        "train": Field("str", ""),
        "evaluation": Field("str", ""),
        "label": Field("str", "", (matches(r"([A-Za-z_][A-Za-z0-9_ .-]*)?", "a column name"),)),
        # Checked before training, on both files; failing data yields no version.
        "checks": {
            "min_rows": Field("int", 0, (between(0, 10**12),)),
            "columns": Field("dict[str,str]", {}),  # column -> float | int | str | bool
            "min": Field("dict[str,float]", {}),
            "max": Field("dict[str,float]", {}),
            "max_missing": Field("float", 0.0, (between(0, 1),)),  # share per column
            "min_class_share": Field("float", 0.0, (between(0, 1),)),  # rarest label's share
            "command": Field("list[str]", []),  # your own check: exit 0 = the data is fine
        },
    },
    # After a promotion the line stays under watch for `bake`: the promoted version's
    # traffic is compared with stable's during the rollout ("": no guard).
    "guard": {
        "bake": Field("str", "", (_optional_duration,)),
        # judge: anytime-valid (the [gates.judge] alpha and effect bounds); thresholds:
        # the [gates] error and latency thresholds, window by window.
        "compare": Field("str", "judge", (one_of("judge", "thresholds"),)),
        # rollback: bring the earlier version back at once; alert: only say so.
        "on_regression": Field("str", "rollback", (one_of("rollback", "alert"),)),
        # Dispatch the model's retraining (a parameterized job beside the periodic one).
        "retrain": Field("bool", False),
    },
    "notify": {
        # Rollout events go to this URL as signed JSON (NOMADML_WEBHOOK_URL overrides).
        "webhook_url": Field("str", "", (matches(r"(https?://\S+)?", "an http(s) URL"),)),
        # The environment variable holding the HMAC secret: never the secret itself.
        "secret_env": Field("str", "NOMADML_WEBHOOK_SECRET", (matches(IDENT, "a variable name"),)),
    },
    "templates": {
        "service": Field("str", "model-service.nomad.hcl", (non_empty,)),
        "retraining": Field("str", "retraining.nomad.hcl", (non_empty,)),
        "path": Field("list[str]", []),
    },
}


def schema_default(dotted: str) -> Any:
    """The default of one spec field, e.g. `gates.window`: defined once, in SCHEMA."""
    node: Any = SCHEMA
    for key in dotted.split("."):
        node = node[key]
    if not isinstance(node, Field):
        raise KeyError(f"{dotted} is a table, not a field")
    return node.default


def cross_checks(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules that span fields (Nomad enforces the deadline order at submit time)."""
    problems: list[tuple[str, str]] = []
    up = data["update"]
    if seconds(up["min_healthy_time"]) >= seconds(up["healthy_deadline"]):
        problems.append(("update.min_healthy_time", "must be shorter than update.healthy_deadline"))
    if seconds(up["healthy_deadline"]) >= seconds(up["progress_deadline"]):
        problems.append(
            ("update.healthy_deadline", "must be shorter than update.progress_deadline")
        )
    if up["auto_promote"] and up["canary"] == 0:
        problems.append(("update.auto_promote", "needs update.canary >= 1"))
    if up["shadow"]["share"] and not up["steps"]:
        problems.append(
            (
                "update.shadow.share",
                "a shadow phase runs at the model's router before the canary steps: "
                "needs update.steps (e.g. [10, 50, 100])",
            )
        )
    if up["shadow"]["share"] and up["canary"] == 0:
        problems.append(("update.shadow.share", "needs update.canary >= 1 (the shadow)"))
    # Without a canary, or with the analysis off, deploy runs no steps (and no shadow):
    # Nomad alone would decide, and the spec would promise what does not happen.
    if up["steps"] and up["canary"] == 0:
        problems.append(
            ("update.steps", "the steps set a canary's share: needs update.canary >= 1")
        )
    if up["steps"] and not data["gates"]["analysis"]:
        problems.append(
            (
                "update.steps",
                "each step is judged by the canary analysis: needs gates.analysis = true "
                "(with it off, Nomad's health alone decides)",
            )
        )
    if up["steps"] and up["steps"][0] == 100 and data["gates"]["judge"]["enabled"]:
        # The judge compares canary with stable; at 100% stable serves no one, so there
        # is nothing to compare and the rollout could only wait for its deadline.
        problems.append(
            (
                "update.steps",
                f"{up['steps']} with gates.judge: at 100% stable serves no one, so the judge "
                "has nothing to compare the canary with; start below 100 (e.g. [50, 100])",
            )
        )
    srv = data["serving"]
    if srv["driver"] == "exec" and srv["image"] != REFERENCE_SERVER:
        problems.append(
            ("serving.image", "the exec driver runs a command, not an image; remove serving.image")
        )
    if srv["port"] and (up["canary"] or srv["count"] > 1):
        problems.append(
            (
                "serving.port",
                "a static port cannot be shared by canaries or several "
                "allocations on one node; use 0 (dynamic)",
            )
        )
    gates = data["gates"]
    if seconds(gates["interval"]) > seconds(gates["window"]):
        problems.append(("gates.interval", "must not be longer than gates.window"))
    if gates["probe"]["enabled"] and not gates["probe"]["instances"]:
        problems.append(
            ("gates.probe.instances", "name a JSON file of sample instances to send as probes")
        )
    if gates["predictions"]["enabled"]:
        sequential = gates["predictions"]["test"] == "sequential"
        if gates["judge"]["enabled"] and not sequential:
            problems.append(
                (
                    "gates.predictions.test",
                    'with gates.judge the check must be anytime-valid too: set test = "sequential"',
                )
            )
        if sequential and not gates["judge"]["enabled"]:
            problems.append(
                (
                    "gates.predictions.test",
                    '"sequential" runs with gates.judge; the threshold gates use "chi2" or "psi"',
                )
            )
        if gates["source"] == "prometheus":
            problems.append(
                (
                    "gates.predictions",
                    "the Prometheus source has no query for predictions: set gates.source = "
                    '"router" (the router counts them per version) or "direct"',
                )
            )
    bake = data["guard"]["bake"]
    if bake and seconds(bake) < seconds(gates["interval"]):
        problems.append(
            (
                "guard.bake",
                f"{bake} is shorter than one evaluation interval (gates.interval = "
                f"{gates['interval']})",
            )
        )
    if data["guard"]["retrain"] and not data["retraining"]["enabled"]:
        problems.append(("guard.retrain", "needs retraining.enabled = true (what to dispatch)"))
    checks = data["data"]["checks"]
    for column, kind in checks["columns"].items():
        if kind not in COLUMN_KINDS:
            problems.append(
                (
                    f"data.checks.columns.{column}",
                    f"{kind!r} is not one of {', '.join(COLUMN_KINDS)}",
                )
            )
    if checks["min_class_share"] and not data["data"]["label"]:
        problems.append(("data.checks.min_class_share", "needs data.label (the label column)"))
    for column, low in checks["min"].items():
        high = checks["max"].get(column)
        if high is not None and low > high:
            problems.append((f"data.checks.min.{column}", f"{low:g} is above data.checks.max"))
    if data["retraining"]["enabled"] and not data["retraining"]["trainer"]:
        problems.append(
            (
                "retraining.trainer",
                "required when retraining.enabled is true (your training command)",
            )
        )
    training = data["retraining"]
    if training["nomadml_image"] and training["driver"] != "docker":
        problems.append(
            (
                "retraining.nomadml_image",
                f'needs retraining.driver = "docker" (not {training["driver"]!r}): '
                "the trainer and nomadml's steps run in two images",
            )
        )
    if training["auto_deploy"] and training["nomadml_image"]:
        # Measured on Nomad 1.10.5: a workload identity is refused by /v1/jobs/parse with
        # ACLs on and by job plan with ACLs off ("UUID must be 36 characters").
        problems.append(
            (
                "retraining.auto_deploy",
                "not with retraining.nomadml_image yet: Nomad refuses the job's workload "
                "identity for parsing and planning a job; deploy validated versions with "
                "nomadml deploy",
            )
        )
    if training["data_volume"] and not training["nomadml_image"]:
        problems.append(("retraining.data_volume", "needs retraining.nomadml_image"))
    for which in ("train", "evaluation") if training["data_volume"] else ():
        if data["data"][which].startswith("/"):
            problems.append(
                (f"data.{which}", "must be relative to retraining.data_volume (mounted at /data)")
            )
    return problems
