"""Correlations of a metric with reader scores, and their percentile bootstrap CIs.

A coefficient that cannot be computed (fewer than three pairs, a constant input) is None,
never an exception or a NaN. Signed: a distance that tracks quality correlates negatively.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MIN_PAIRS = 3


def _usable(x: np.ndarray, y: np.ndarray) -> bool:
    return len(x) >= MIN_PAIRS and np.ptp(x) > 0 and np.ptp(y) > 0


def spearman(x, y) -> float | None:
    """Spearman's rho with average ranks for ties (scipy.stats.spearmanr)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.spearmanr(x, y).statistic) if _usable(x, y) else None


def kendall(x, y) -> float | None:
    """Kendall's tau-b (scipy.stats.kendalltau)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.kendalltau(x, y, variant="b").statistic) if _usable(x, y) else None


def pearson(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.pearsonr(x, y).statistic) if _usable(x, y) else None


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman of each row pair of (B, n) arrays: Pearson of average ranks, vectorised."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / denominator  # NaN where a resample is constant


def spearman_bootstrap_ci(
    x, y, *, resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of Spearman's rho, resampling pairs with replacement.

    All resamples are ranked and correlated at once; resamples that came out constant are
    dropped. None when the point estimate itself cannot be computed.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not _usable(x, y):
        return None
    index = rng.integers(0, len(x), size=(resamples, len(x)))
    rho = _rowwise_spearman(x[index], y[index])
    rho = rho[np.isfinite(rho)]
    if rho.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(rho, [tail, 100 - tail])
    return float(low), float(high)
