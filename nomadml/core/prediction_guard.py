"""After the promotion: does the promoted version still predict like stable did during the
rollout? The guard's test of the predicted labels, for a rollout that had the sequential
prediction gate. Pure.

Why not the rollout's own test (core/prediction_sequential.py): it compares two arms
block by block, and each block's null point mixes both arms' new predictions. After the
promotion stable serves no one: with no stable predictions in a block its null point is
the promoted arm's own alternative and every e-value is 1 - the test can never fire.

What the guard has instead: stable's label counts S from the rollout (a fixed sample) and
the promoted version's counts Y since the promotion (growing). Under the null, S and Y
come from one label distribution q, whatever q is. The e-value (universal inference with
mixture likelihoods, Wasserman, Ramdas & Balakrishnan 2020):

    E_t = KT(S) KT(Y_t) / max_q q(S) q(Y_t)

KT is the Krichevsky-Trofimov mixture (Dirichlet(1/2) over the labels): a probability of
each sample whatever its order; the denominator is the pooled maximum likelihood, at least
q(S) q(Y_t) for the true q. So E_t <= KT(S)/q(S) * KT(Y_t)/q(Y_t), a nonnegative
martingale in t with mean 1 (its first factor's mean over S is 1), and by Ville's
inequality the chance that E_t ever reaches 1 / alpha is at most alpha: the guard may
look as often as it likes and resume after a restart (E depends only on the counts).

The labels (the alphabet of both mixtures) must be fixed without looking at S or Y: they
are the labels the promoted version itself predicted during the rollout (its canary
counts: a third sample, independent of S and Y under the null), plus "other" for any
label outside them. What it costs: KT pays about (K - 1) / 2 ln N nats for not knowing
stable's shares exactly (K labels), so a small stable sample only finds a large shift.
What is assumed, as in the rollout's test: predictions independent given the traffic's
mix, and the mix after the promotion like the mix during the rollout (a change in the
traffic itself looks like a shift). And the rollout passed: the baseline is stable's
sample from a rollout that the prediction gate let through; that selection is not
accounted for (it makes the test, if anything, more eager).

It is a test, not a change detector like the guard's error and latency signals: a shift
that starts late must outweigh the promoted version's good predictions before it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nomadml.errors import BadInput

__all__ = ["PredictionBaseline", "PredictionCheck", "check_predictions", "decoded_label"]

_CONCENTRATIONS = (1.0, 10.0, 100.0, 1000.0, 10000.0)
OTHER = "(other)"  # any label the promoted version did not predict during the rollout


@dataclass(frozen=True)
class PredictionBaseline:
    """What the rollout's prediction gate leaves for the guard: stable's label counts, the
    labels the promoted version predicted (the alphabet), and the gate's alpha."""

    stable: Mapping[str, float]
    labels: tuple[str, ...]
    alpha: float

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise BadInput(f"guard record: prediction alpha {self.alpha:g} is outside (0, 0.5)")

    def as_dict(self) -> dict[str, Any]:
        return {"stable": dict(self.stable), "labels": list(self.labels), "alpha": self.alpha}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionBaseline:
        try:
            stable = {str(k): float(v) for k, v in dict(data["stable"]).items()}
            return cls(stable, tuple(str(k) for k in data["labels"]), float(data["alpha"]))
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f"guard record: not a prediction baseline ({err})") from None

    @classmethod
    def from_gate(
        cls, shown: Mapping[str, Any], encoded: bool = False
    ) -> PredictionBaseline | None:
        """From a gate record's `predictions` (the sequential test's state at that look);
        None when it is not one or either arm predicted nothing. `encoded`: counted by a
        router from the servers' X-Nomadml-Predictions header, whose labels are percent-
        encoded; the guard reads the servers' own counters, so they are decoded here."""
        if shown.get("test") != "sequential":
            return None
        name = decoded_label if encoded else str
        try:
            stable: dict[str, float] = {}
            for k, v in dict(shown["stable"]).items():
                if v > 0:
                    stable[name(k)] = stable.get(name(k), 0.0) + float(v)
            labels = tuple(sorted({name(k) for k, v in dict(shown["canary"]).items() if v > 0}))
            alpha = float(shown["alpha"])
        except (KeyError, TypeError, ValueError):
            return None
        if not stable or not labels or not 0.0 < alpha < 0.5:
            return None
        return cls(stable, labels, alpha)


def decoded_label(label: object) -> str:
    """A label as the server wrote it before percent-encoding it for the header; the
    router's own "other" (the labels past its 64 per version) is the guard's OTHER."""
    if label == "other":
        return OTHER
    raw = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), str(label).encode())
    return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class PredictionCheck:
    log_e: float
    log_threshold: float
    promoted: Mapping[str, float]  # on the baseline's alphabet
    stable: Mapping[str, float]

    @property
    def shifted(self) -> bool:
        return self.log_e >= self.log_threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": "guard-sequential",
            "log_e": round(self.log_e, 3),
            "log_threshold": round(self.log_threshold, 3),
            "shifted": self.shifted,
            "promoted": dict(self.promoted),
            "stable": dict(self.stable),
        }

    def describe(self) -> str:
        keys = sorted(set(self.stable) | set(self.promoted))

        def shares(counts: Mapping[str, float]) -> str:
            total = sum(counts.values()) or 1.0
            return "/".join(f"{100 * counts.get(k, 0.0) / total:.0f}" for k in keys)

        labels = "/".join(keys)
        return (
            f"predictions shifted: {sum(self.promoted.values()):.0f} since promotion "
            f"{shares(self.promoted)} % vs stable's {sum(self.stable.values()):.0f} during the "
            f"rollout {shares(self.stable)} % ({labels}), log e {self.log_e:.2f} >= "
            f"{self.log_threshold:.2f}"
        )


def _on(labels: tuple[str, ...], counts: Mapping[str, float]) -> dict[str, float]:
    out = dict.fromkeys((*labels, OTHER), 0.0)
    for label, n in counts.items():
        if n < 0 or math.isnan(n):
            raise BadInput(f"prediction counts: {label!r} is {n:g}")
        out[label if label in out else OTHER] += float(n)
    return out


def _log_kt(counts: Mapping[str, float]) -> float:
    """log of the Krichevsky-Trofimov probability of any one sequence with these counts."""
    k = len(counts)
    n = sum(counts.values())
    return (
        math.lgamma(k / 2)
        - math.lgamma(n + k / 2)
        + sum(math.lgamma(c + 0.5) - math.lgamma(0.5) for c in counts.values())
    )


def _log_ml(counts: Mapping[str, float]) -> float:
    n = sum(counts.values())
    return sum(c * math.log(c / n) for c in counts.values() if c > 0)


def _log_dm(counts: Mapping[str, float], prior: Mapping[str, float]) -> float:
    """log of the Dirichlet-multinomial probability of any one sequence with these counts."""
    a = sum(prior.values())
    n = sum(counts.values())
    return (
        math.lgamma(a)
        - math.lgamma(n + a)
        + sum(math.lgamma(counts[k] + prior[k]) - math.lgamma(prior[k]) for k in prior)
    )


def _log_mean_exp(parts: list[float]) -> float:
    top = max(parts)
    return top + math.log(sum(math.exp(p - top) for p in parts) / len(parts))


def check_predictions(
    baseline: PredictionBaseline, promoted: Mapping[str, float]
) -> PredictionCheck:
    """The test after a look: `promoted` = the promoted version's predictions by label
    since the promotion."""
    s = _on(baseline.labels, baseline.stable)
    y = _on(baseline.labels, promoted)
    pooled = {k: s[k] + y[k] for k in s}
    # The promoted arm's mixture: Dirichlets centred on stable's smoothed shares (a prior
    # that depends on S only, so KT(S) times it is one joint probability), averaged over
    # a few concentrations: a small shift is found with a tight one, a large with a loose.
    total = sum(s.values()) + 0.5 * len(s)
    centre = {k: (v + 0.5) / total for k, v in s.items()}
    log_y = _log_mean_exp([_log_dm(y, {k: c * centre[k] for k in centre}) for c in _CONCENTRATIONS])
    log_e = _log_kt(s) + log_y - _log_ml(pooled)
    shown_s = {k: v for k, v in s.items() if v > 0}
    shown_y = {k: v for k, v in y.items() if v > 0}
    return PredictionCheck(log_e, math.log(1.0 / baseline.alpha), shown_y, shown_s)
