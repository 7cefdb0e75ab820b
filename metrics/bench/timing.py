"""Timing and reporting shared by the benchmarks: best-of-n wall clock, one printed and
returned row per measurement."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` wall-clock runs, in seconds (after one warm-up)."""
    function()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def report(
    label: str, pairs: int, seconds: float, baseline: float | None = None
) -> dict[str, Any]:
    row = {
        "what": label,
        "pairs": pairs,
        "seconds": round(seconds, 4),
        "pairs_per_s": float(f"{pairs / seconds:.3g}"),
    }
    if baseline is not None:
        row["speed-up"] = round(baseline / seconds, 2)
    print(
        f"  {label:<78} {pairs / seconds:>10.1f} pairs/s"
        + (f"   x{baseline / seconds:.2f}" if baseline else "")
    )
    return row
