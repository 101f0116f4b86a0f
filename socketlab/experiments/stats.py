"""The statistics every measurement shares: a proportion's interval, a percentile, a model.

    low, high = wilson(212, 2000)          # 95% interval of a loss rate, as fractions
    p99(rtts)                              # the 99th percentile of a sample
    mathis_bps(1448, 0.02, 0.01)           # Mathis et al. (1997): Reno's rate under loss
    fit = loglog_fit(losses, goodputs)     # slope of log(y) on log(x), with its 95% interval

Pure functions, used by the experiments' judges and the benchmarks alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MATHIS_C = math.sqrt(1.5)  # ≈ 1.22: periodic loss, delayed ACKs off (Mathis et al. 1997)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion k/n, as fractions."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank); 0 for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


def mathis_bps(mss: float, rtt_s: float, loss: float, c: float = MATHIS_C) -> float:
    """Mathis et al. (1997): rate ≈ (MSS/RTT)·(C/√p), here in bits per second."""
    if mss <= 0 or rtt_s <= 0 or loss <= 0:
        raise ValueError("the model needs MSS, RTT and loss greater than 0")
    return 8 * mss / rtt_s * c / math.sqrt(loss)


# Student's t, two-sided 95% (the 0.975 quantile), for 1-30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The t distribution's 0.975 quantile for `df` degrees of freedom (a table to 30, then
    1.96 + 2.5/df, within 0.002 of the exact value)."""
    if df < 1:
        raise ValueError("a t quantile needs at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.5 / df


@dataclass(frozen=True)
class Fit:
    """A least-squares line's slope with its 95% interval, over `n` points."""

    slope: float
    low: float
    high: float
    n: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def loglog_fit(xs: Sequence[float], ys: Sequence[float]) -> Fit | None:
    """The least-squares slope of log(y) on log(x) and its 95% interval (t, n-2 degrees of
    freedom); None with fewer than three usable points (no interval from two) or one x."""
    pairs = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    n = len(pairs)
    if n < 3:
        return None
    mx = sum(x for x, _ in pairs) / n
    my = sum(y for _, y in pairs) / n
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    if not sxx:
        return None
    slope = sum((x - mx) * (y - my) for x, y in pairs) / sxx
    residual = sum((y - my - slope * (x - mx)) ** 2 for x, y in pairs)
    half = t975(n - 2) * math.sqrt(residual / (n - 2) / sxx)
    return Fit(round(slope, 3), round(slope - half, 3), round(slope + half, 3), n)
