"""Percentiles, CDF points and rates from samples (pure functions)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

CDF_POINTS = 400


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted samples, nearest rank."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """count, mean, p50/p95/p99/p99.9, max of durations given in seconds, in ms."""
    ordered = sorted(seconds)
    if not ordered:
        return {"count": 0}

    def ms(value: float) -> float:
        return round(1000 * value, 3)

    return {
        "count": len(ordered),
        "mean_ms": ms(sum(ordered) / len(ordered)),
        "p50_ms": ms(percentile(ordered, 50)),
        "p95_ms": ms(percentile(ordered, 95)),
        "p99_ms": ms(percentile(ordered, 99)),
        "p999_ms": ms(percentile(ordered, 99.9)),
        "max_ms": ms(ordered[-1]),
    }


def cdf_ms(seconds: Sequence[float], points: int = CDF_POINTS) -> list[list[float]]:
    """[[latency_ms, fraction], ...]: evenly spaced in rank, denser in the tail."""
    ordered = sorted(seconds)
    if not ordered:
        return []
    n = len(ordered)
    fractions = sorted(
        {i / points for i in range(1, points + 1)}
        | {1 - 10 ** (-k / 4) for k in range(8, 17)}  # 0.99 ... 0.9999
    )
    out = []
    for fraction in fractions:
        index = min(n - 1, max(0, math.ceil(fraction * n) - 1))
        out.append([round(1000 * ordered[index], 3), round(fraction, 5)])
    return out


def rate(series: Sequence[dict[str, Any]], key: str, start: float, end: float) -> float | None:
    """Growth per second of ``series[i][key]`` between the samples nearest ``start`` and ``end``."""
    window = [s for s in series if start <= s["t"] <= end]
    if len(window) < 2 or window[-1]["t"] <= window[0]["t"]:
        return None
    return float((window[-1][key] - window[0][key]) / (window[-1]["t"] - window[0]["t"]))


def per_second(series: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    """[[t, rate], ...]: the rate of ``key`` between consecutive samples."""
    out = []
    for before, after in itertools.pairwise(series):
        dt = after["t"] - before["t"]
        if dt > 0:
            out.append([round(after["t"], 2), round((after[key] - before[key]) / dt, 1)])
    return out


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)
