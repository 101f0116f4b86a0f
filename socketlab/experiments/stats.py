"""The statistics every measurement shares: a proportion's interval, a percentile, a model.

    low, high = wilson(212, 2000)          # 95% interval of a loss rate, as fractions
    p99(rtts)                              # the 99th percentile of a sample
    mathis_bps(1448, 0.02, 0.01)           # Mathis et al. (1997): Reno's rate under loss

Pure functions, used by the experiments' judges and the benchmarks alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
