"""Percentiles and rates for the benchmarks (standard library only, so matching.py runs without the venv)."""
from __future__ import annotations

import math
from typing import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` 0.5 for p50, 0.999 for p99.9): a value that was measured, never an
    interpolation, so with fewer than 1,000 samples p99.9 is simply the slowest one."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50, p99, p99.9 and max of samples in milliseconds."""
    return {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99),
            "p99.9": percentile(samples, 0.999), "max": max(samples)}
