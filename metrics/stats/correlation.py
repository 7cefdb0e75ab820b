"""Correlations of a metric with reader scores, and their percentile bootstrap CIs.

A coefficient that cannot be computed (fewer than three pairs, a constant input) is None,
never an exception or a NaN. Signed: a distance that tracks quality correlates negatively.

Infinite values are ranked where ranks are all that count: the infinite PSNR of a
reconstruction identical to its reference (a fully sampled control) ranks above every finite
one in Spearman and Kendall. Pearson needs finite values and is None otherwise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from metrics.stats.bootstrap import (
    counts_from_indices,
    percentile_interval,
    resample_indices,
    resampled_spearman,
)

MIN_PAIRS = 3


def _varies(x: np.ndarray) -> bool:
    # max > min rather than np.ptp, which is NaN for [inf, inf] (constant, but not zero).
    return bool(x.max() > x.min()) if len(x) else False


def _usable(x: np.ndarray, y: np.ndarray) -> bool:
    return len(x) >= MIN_PAIRS and _varies(x) and _varies(y)


def spearman(x: ArrayLike, y: ArrayLike) -> float | None:
    """Spearman's rho with average ranks for ties (scipy.stats.spearmanr)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.spearmanr(x, y).statistic) if _usable(x, y) else None


def kendall(x: ArrayLike, y: ArrayLike) -> float | None:
    """Kendall's tau-b (scipy.stats.kendalltau)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(stats.kendalltau(x, y, variant="b").statistic) if _usable(x, y) else None


def pearson(x: ArrayLike, y: ArrayLike) -> float | None:
    """Pearson's r (scipy.stats.pearsonr); None where a value is infinite."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    finite = np.isfinite(x).all() and np.isfinite(y).all()
    return float(stats.pearsonr(x, y).statistic) if finite and _usable(x, y) else None


def why_uncomputable(x: ArrayLike, y: ArrayLike) -> str | None:
    """Why a correlation of x and y cannot be computed, or None when it can."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < MIN_PAIRS:
        return f"fewer than {MIN_PAIRS} reconstructions ({len(x)})"
    if not _varies(x):
        return "the metric is constant"
    if not _varies(y):
        return "the scores are constant"
    return None


class RankedColumns:
    """The columns of `matrix` (NaN = missing) ranked once, for Spearman with several y
    (each reader's scores against every metric: ten readers ranked the metrics ten times)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, float)
        self.complete = ~np.isnan(self.matrix).any(axis=0)
        self._centred: np.ndarray | None = None

    def spearman(self, y: np.ndarray) -> list[float | None]:
        """Spearman of each column with y; columns with gaps take one pairwise call each."""
        matrix, y = self.matrix, np.asarray(y, float)
        result: list[float | None] = [None] * matrix.shape[1]
        if self.complete.any() and len(y) >= MIN_PAIRS and _varies(y):
            if self._centred is None:
                self._centred = stats.rankdata(matrix[:, self.complete], axis=0)
                self._centred -= self._centred.mean(axis=0)
            ranks = self._centred
            ranked_y = stats.rankdata(y)
            ranked_y -= ranked_y.mean()
            norms = np.sqrt((ranks**2).sum(axis=0) * (ranked_y**2).sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                rho = ranked_y @ ranks / norms
            for column, value, norm in zip(np.flatnonzero(self.complete), rho, norms, strict=True):
                result[column] = float(value) if norm > 0 else None  # zero norm: constant metric
        for column in np.flatnonzero(~self.complete):
            present = ~np.isnan(matrix[:, column])
            result[column] = spearman(matrix[present, column], y[present])
        return result


def spearman_bootstrap_ci(
    x: ArrayLike, y: ArrayLike, *, resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of Spearman's rho, resampling pairs with replacement.

    All resamples are ranked and correlated at once (metrics.stats.bootstrap); resamples that
    came out constant are dropped. None when the point estimate itself cannot be computed.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if not _usable(x, y):
        return None
    counts = counts_from_indices(resample_indices(len(x), resamples, rng), len(x))
    return percentile_interval(resampled_spearman(x, y, counts), level)
