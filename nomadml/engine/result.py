"""What a rollout (deploy, promote, rollback) ended in: the outcome, the numbers an
operator reads, and the exit code the CLI returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nomadml.core.decide import Action
from nomadml.core.rollout_series import fit_gates, series_record
from nomadml.errors import ExitCode

EXIT_CODES = {
    Action.SUCCEEDED: ExitCode.OK,
    Action.ROLLED_BACK: ExitCode.ROLLED_BACK,
    Action.FAILED: ExitCode.FAILED,
    Action.CANCELLED: ExitCode.FAILED,
    Action.AWAIT_PROMOTION: ExitCode.AWAITING_PROMOTION,
    Action.TIMEOUT: ExitCode.TIMEOUT,
}


@dataclass
class RolloutResult:
    action: Action
    job_id: str
    model_version: str
    reason: str
    job_version: int | None = None
    deployment_id: str | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    rollback_seconds: float | None = None
    watch_calls: int = 0  # Nomad API requests made while watching (benchmarks read it)
    operation: str = "deploy"  # deploy, promote or rollback

    @property
    def exit_code(self) -> ExitCode:
        return EXIT_CODES[self.action]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.action.value,
            "operation": self.operation,
            "job": self.job_id,
            "model_version": self.model_version,
            "job_version": self.job_version,
            "deployment": self.deployment_id,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "rollback_seconds": None
            if self.rollback_seconds is None
            else round(self.rollback_seconds, 2),
            "gates": self.gates,
        }

    def as_record(self) -> dict[str, Any]:
        """What the rollout record keeps: the same, with every look of the gates as a
        compact series (what `nomadml report` draws) and only the newest gate entries,
        so that one record stays well under Nomad's 64 KiB per variable. A watch without
        gate looks (a manual promotion of waiting canaries) leaves the looks recorded by
        the deploy before it as they are."""
        if not self.gates:
            return {k: v for k, v in self.as_dict().items() if k != "gates"}
        kept = fit_gates(self.gates)
        return {
            **self.as_dict(),
            "gates": kept,
            "gates_kept": f"{len(kept)} of {len(self.gates)}",
            "series": series_record(self.gates),
        }
