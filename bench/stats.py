"""Percentiles in milliseconds (nearest rank), for the benchmark's tables."""

from __future__ import annotations

from collections.abc import Sequence


def percentiles(seconds: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[int, float]:
    ordered = sorted(seconds)
    if not ordered:
        return dict.fromkeys(points, float("nan"))
    return {
        p: ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000
        for p in points
    }
