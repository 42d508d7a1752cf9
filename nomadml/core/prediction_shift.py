"""Model-level signal: did the canary's predictions shift against stable's? Pure.

The serving contract's optional counter `nomadml_predictions_total{label=...}` gives,
per window, how many of each predicted class (or value bucket) canary and stable
answered. Two tests, chosen in the spec's `[gates.predictions]`:

- `chi2`: Pearson's chi-squared test of homogeneity on the 2 x k table (canary and
  stable by label), df = k - 1; the distributions differ when p < alpha. The p-value
  is the chi-squared survival function, the regularized upper incomplete gamma
  Q(df/2, x/2), computed here by its series (x < s + 1) or its continued fraction.
- `psi`: the population stability index, sum over labels of (c - s) ln(c / s) on the
  two label shares (each share floored at 0.5 / n so an absent label stays finite);
  the distributions differ when PSI > max_psi (0.1 small, 0.25 large, by convention).

Each window is one test: repeated looks raise the chance of a false alarm, which the
gates' two-failing-windows rule (fail_after) keeps in check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Counts = Mapping[str, float]


@dataclass(frozen=True)
class PredictionCheck:
    """The spec's `[gates.predictions]`."""

    enabled: bool
    test: str  # chi2 | psi
    alpha: float
    max_psi: float
    min_predictions: int


@dataclass(frozen=True)
class ShiftResult:
    test: str
    statistic: float
    p_value: float | None  # chi2 only
    canary_n: float
    stable_n: float
    enough: bool  # both sides saw min_predictions
    shifted: bool

    def describe(self, check: PredictionCheck) -> str:
        if self.test == "chi2":
            shown = f"chi2 {self.statistic:.1f}, p {self.p_value:.2g} < {check.alpha:g}"
        else:
            shown = f"PSI {self.statistic:.3f} > {check.max_psi:g}"
        return (
            f"predictions shifted against stable ({shown}; "
            f"{self.canary_n:.0f} canary vs {self.stable_n:.0f} stable predictions)"
        )


def _upper_gamma_q(s: float, x: float) -> float:
    """Q(s, x) = Gamma(s, x) / Gamma(s), for s > 0, x >= 0."""
    if x <= 0:
        return 1.0
    log_front = -x + s * math.log(x) - math.lgamma(s)
    if x < s + 1:
        # P(s, x) by its series; Q = 1 - P.
        term = total = 1.0 / s
        a = s
        for _ in range(10_000):
            a += 1
            term *= x / a
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Q by Lentz's continued fraction.
    tiny = 1e-300
    b = x + 1 - s
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_survival(statistic: float, df: int) -> float:
    """P(X >= statistic) for X ~ chi-squared with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _upper_gamma_q(df / 2.0, statistic / 2.0)


def chi2_homogeneity(canary: Counts, stable: Counts) -> tuple[float, int]:
    """Pearson's statistic and df for the 2 x k table (labels seen on either side)."""
    labels = sorted(k for k in set(canary) | set(stable) if canary.get(k, 0) + stable.get(k, 0) > 0)
    n_c, n_s = sum(canary.get(k, 0) for k in labels), sum(stable.get(k, 0) for k in labels)
    total = n_c + n_s
    if len(labels) < 2 or n_c <= 0 or n_s <= 0:
        return 0.0, max(1, len(labels) - 1)
    statistic = 0.0
    for label in labels:
        column = canary.get(label, 0) + stable.get(label, 0)
        for observed, row in ((canary.get(label, 0), n_c), (stable.get(label, 0), n_s)):
            expected = row * column / total
            statistic += (observed - expected) ** 2 / expected
    return statistic, len(labels) - 1


def psi(canary: Counts, stable: Counts) -> float:
    labels = sorted(set(canary) | set(stable))
    n_c, n_s = sum(canary.values()), sum(stable.values())
    if n_c <= 0 or n_s <= 0:
        return 0.0
    total = 0.0
    for label in labels:
        c = max(canary.get(label, 0) / n_c, 0.5 / n_c)
        s = max(stable.get(label, 0) / n_s, 0.5 / n_s)
        total += (c - s) * math.log(c / s)
    return total


def compare(canary: Counts, stable: Counts, check: PredictionCheck) -> ShiftResult:
    """One window's verdict on the two prediction distributions."""
    n_c, n_s = float(sum(canary.values())), float(sum(stable.values()))
    enough = n_c >= check.min_predictions and n_s >= check.min_predictions
    if check.test == "chi2":
        statistic, df = chi2_homogeneity(canary, stable)
        p = chi2_survival(statistic, df)
        return ShiftResult("chi2", statistic, p, n_c, n_s, enough, enough and p < check.alpha)
    statistic = psi(canary, stable)
    shifted = enough and statistic > check.max_psi
    return ShiftResult("psi", statistic, None, n_c, n_s, enough, shifted)
