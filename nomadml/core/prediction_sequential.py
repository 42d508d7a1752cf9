"""The prediction gate with the sequential judge: do the canary's predicted labels come
from another distribution than stable's? An anytime-valid test, looked at as often as the
judge looks. Pure.

The counts are the serving contract's predictions by label (nomadml_predictions_total
{label}, or the router's count of the X-Nomadml-Predictions header), since the canary
started, for both arms. The traffic between two looks is a block: n_c canary and n_s
stable predictions, x_ck and x_sk of label k.

The e-value of a block. Before the block, the alternative is fixed from the counts so
far: each arm's label shares, smoothed (a_ck = (count_ck + 1/2) / (N_c + K/2) over the K
labels seen so far on either side; a_sk likewise). The null point is their average
weighted by the block's sizes, q*_k = (n_c a_ck + n_s a_sk) / (n_c + n_s), and

    e = prod_k (a_ck / q*_k)^x_ck (a_sk / q*_k)^x_sk.

Validity (the multinomial form of the judge's block e-values; Turner, Ly & Grünwald's
k-sample e-variables): under the null both arms' predictions in the block come from one
distribution q, whatever q is. Given the block sizes, E_q[e] = (sum_k q_k a_ck / q*_k)^n_c
(sum_k q_k a_sk / q*_k)^n_s; its log is concave in q, is 0 at q = q* (each sum is 1), and
its gradient there is n_c a_ck / q*_k + n_s a_sk / q*_k = n_c + n_s for every k, so q*
is its maximum on the simplex: E_q[e] <= 1 for every q. A label neither arm had shown
before the block gets the same (any) share in both alternatives, so its factor is 1. The
alternative of each block depends only on earlier blocks, so the product of the blocks'
e-values is a nonnegative supermartingale under the null and, by Ville's inequality, the
chance it ever reaches 1 / alpha is at most alpha: the caller may look after every scrape
and stop at the first crossing.

What holds: a canary that predicts like stable is called shifted with probability at most
`alpha` over the whole rollout, however often the judge looks — on top of the judge's own
alpha for errors and latency (a union bound: at most judge alpha + prediction alpha). q
may change from block to block (the traffic's mix of inputs changes during the day):
only within a block must both arms see the same mix, which random routing gives. What
is assumed: predictions are independent given the block's mix (a batch request of
related rows counts each row; many near-identical rows in one request make the test
too eager). There is no effect bound: the test has no pass direction; `min_predictions`
canary predictions are required before a pass, so that it had a chance to see a shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nomadml.errors import BadInput

__all__ = ["SequentialShift", "sequential_shift"]

Counts = Mapping[str, float]
_PRIOR = 0.5  # pseudo-count per label in the smoothed alternatives


@dataclass(frozen=True)
class SequentialShift:
    """Where the test stands after a look: the counts so far (the next block starts from
    them), the running log e-value, and the level it is compared with."""

    alpha: float
    canary: Mapping[str, float] = field(default_factory=dict)
    stable: Mapping[str, float] = field(default_factory=dict)
    log_e: float = 0.0
    looks: int = 0

    @property
    def log_threshold(self) -> float:
        return math.log(1.0 / self.alpha)

    @property
    def shifted(self) -> bool:
        return self.log_e >= self.log_threshold

    @property
    def canary_n(self) -> float:
        return float(sum(self.canary.values()))

    @property
    def stable_n(self) -> float:
        return float(sum(self.stable.values()))

    def describe(self) -> str:
        return (
            f"predictions shifted against stable (sequential: log e {self.log_e:.2f} >= "
            f"{self.log_threshold:.2f}, alpha {self.alpha:g}; {self.canary_n:.0f} canary vs "
            f"{self.stable_n:.0f} stable predictions)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": "sequential",
            "alpha": self.alpha,
            "log_e": round(self.log_e, 6),
            "log_threshold": round(self.log_threshold, 6),
            "shifted": self.shifted,
            "looks": self.looks,
            "canary": dict(self.canary),
            "stable": dict(self.stable),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialShift:
        try:
            return cls(
                float(data["alpha"]),
                {str(k): float(v) for k, v in dict(data["canary"]).items()},
                {str(k): float(v) for k, v in dict(data["stable"]).items()},
                float(data["log_e"]),
                int(data["looks"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f"prediction test state: not one ({err})") from None


def _block(now: Counts, before: Mapping[str, float], arm: str) -> dict[str, float]:
    out = {}
    for label in set(now) | set(before):
        n = float(now.get(label, 0.0)) - float(before.get(label, 0.0))
        if n < 0 or math.isnan(n):
            raise BadInput(
                f"prediction counts: {arm} {label!r} went from {before.get(label, 0.0):g} to "
                f"{now.get(label, 0.0):g}: counts since the start must not go down"
            )
        if n > 0:
            out[label] = n
    return out


def _shares(counts: Mapping[str, float], labels: list[str]) -> dict[str, float]:
    total = sum(counts.get(k, 0.0) for k in labels) + _PRIOR * len(labels)
    return {k: (counts.get(k, 0.0) + _PRIOR) / total for k in labels}


def _log_e_block(
    block_c: Mapping[str, float],
    block_s: Mapping[str, float],
    before_c: Mapping[str, float],
    before_s: Mapping[str, float],
) -> float:
    labels = sorted(
        k for k in set(before_c) | set(before_s) if before_c.get(k, 0.0) + before_s.get(k, 0.0) > 0
    )
    n_c, n_s = sum(block_c.values()), sum(block_s.values())
    if len(labels) < 2 or n_c + n_s <= 0:
        return 0.0
    a_c, a_s = _shares(before_c, labels), _shares(before_s, labels)
    out = 0.0
    for k in labels:
        q = (n_c * a_c[k] + n_s * a_s[k]) / (n_c + n_s)
        out += block_c.get(k, 0.0) * math.log(a_c[k] / q) + block_s.get(k, 0.0) * math.log(
            a_s[k] / q
        )
    return out  # labels first seen in this block: factor 1


def sequential_shift(
    canary: Counts, stable: Counts, alpha: float, previous: SequentialShift | None = None
) -> SequentialShift:
    """One look: `canary` and `stable` are the predictions by label since the canary
    started; `previous` the test's state after the last look (None: the first look)."""
    if not 0.0 < alpha < 0.5:
        raise BadInput(f"prediction test: alpha {alpha:g} is outside (0, 0.5)")
    before = previous or SequentialShift(alpha)
    if before.alpha != alpha:
        raise BadInput("prediction test: the previous look was made at another alpha")
    block_c = _block(canary, before.canary, "canary")
    block_s = _block(stable, before.stable, "stable")
    log_e = before.log_e + _log_e_block(block_c, block_s, before.canary, before.stable)
    return SequentialShift(
        alpha,
        {k: float(v) for k, v in canary.items() if v > 0},
        {k: float(v) for k, v in stable.items() if v > 0},
        log_e,
        before.looks + 1,
    )
