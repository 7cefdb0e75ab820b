"""Spearman's rho in every bootstrap resample at once.

A resample of n units is held as how often each unit was drawn (a column of an (n, B) count
matrix) instead of the drawn indices. Average ranks with ties in a resample then follow from
cumulative counts over the variable's sorted distinct values, so one sort serves all B
resamples, and Spearman's rho is a count-weighted Pearson correlation of those ranks. The work
is done over the distinct (x, y) pairs, which for Likert scores and their means is far fewer
than the units. The result equals `scipy.stats.spearmanr` on each resample drawn by index
(tests/metrics/test_bootstrap.py); `make bench-analysis` times both. The sample's own rho
(every unit drawn once) comes from the same ranks (`point_spearman`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import sparse


def resample_indices(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, n) indices of B resamples of n units drawn with replacement."""
    return rng.integers(0, n, size=(resamples, n))


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """(n, B) float64: how often each unit appears in each resample."""
    resamples = indices.shape[0]
    flat = (indices * resamples + np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=n * resamples).reshape(n, resamples).astype(np.float64)


def cluster_counts(clusters: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n, B) counts of n units when whole clusters are drawn with replacement.

    `clusters` labels each unit 0..k-1; a resample draws k clusters, and every unit appears
    as often as its cluster was drawn. This is the bootstrap for units that are not
    independent, such as the reconstructions of one case, which share its reference (Davison
    and Hinkley 1997, section 3.8: resample at the top stage).
    """
    return ClusterCounts.draw(clusters, resamples, rng).dense()


class ClusterCounts:
    """The counts of `cluster_counts`, kept factored: (k, B) draws of the clusters and each
    unit's cluster. A sum of the counts over a group of units is then a sum over its clusters,
    k x B work instead of n x B: the dashboard's 3,600 reconstructions are 200 cases. The sums
    are of whole numbers, so they equal the dense ones exactly."""

    def __init__(self, drawn: np.ndarray, clusters: np.ndarray) -> None:
        self.drawn, self.clusters = drawn, np.asarray(clusters)
        self.shape = (len(self.clusters), drawn.shape[1])

    @classmethod
    def draw(cls, clusters: np.ndarray, resamples: int, rng: np.random.Generator) -> ClusterCounts:
        clusters = np.asarray(clusters)
        n_clusters = int(clusters.max()) + 1 if clusters.size else 0
        drawn = counts_from_indices(resample_indices(n_clusters, resamples, rng), n_clusters)
        return cls(drawn, clusters)

    def dense(self) -> np.ndarray:
        return self.drawn[self.clusters]

    def __array__(
        self, dtype: np.typing.DTypeLike | None = None, copy: bool | None = None
    ) -> np.ndarray:
        dense = self.dense()
        return dense if dtype is None else dense.astype(dtype)

    def __getitem__(self, units: np.ndarray) -> np.ndarray:
        return self.drawn[self.clusters[units]]


Counts = np.ndarray | ClusterCounts


def group_sums(counts: Counts, labels: np.ndarray, units: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, B): the counts of `units` summed by their `labels`."""
    if n_groups == len(units):
        # One unit per group (a metric's distinct values): a reordering, not a sum.
        in_group_order = units[np.argsort(labels)]
        if isinstance(counts, ClusterCounts):
            return counts.drawn[counts.clusters[in_group_order]]
        return counts[in_group_order]
    if isinstance(counts, ClusterCounts):
        clusters = counts.clusters[units]
        return _grouping(labels, clusters, n_groups, counts.drawn.shape[0]) @ counts.drawn
    return _grouping(labels, units, n_groups, counts.shape[0]) @ counts


def _grouping(
    labels: np.ndarray, columns: np.ndarray, n_groups: int, n_columns: int
) -> sparse.csr_matrix:
    """Sparse (groups x rows) matrix that sums rows `columns` into groups `labels`."""
    return sparse.csr_matrix(
        (np.ones(len(labels)), (labels, columns)), shape=(n_groups, n_columns)
    )


class RankedResamples:
    """Average ranks of one variable in every resample of `counts` (rows `units`).

    Kept per distinct value: `centred` is (G, B), the midrank of each tied group minus the
    resample's mean rank. Build it once per variable and pair it with several others.
    """

    def __init__(self, values: ArrayLike, units: ArrayLike, counts: Counts) -> None:
        values = np.asarray(values, float)
        self.units = np.asarray(units)
        self.counts = counts
        distinct, self.group = np.unique(values, return_inverse=True)
        self.n_groups = len(distinct)
        group_counts = group_sums(counts, self.group, self.units, self.n_groups)
        total = group_counts.sum(axis=0)
        centred = np.empty_like(group_counts)
        centred[0] = group_counts[0]
        for row in range(1, self.n_groups):  # row-wise adds beat np.cumsum on axis 0 here
            np.add(centred[row - 1], group_counts[row], out=centred[row])
        # cumulative count - (count - 1) / 2 is the tied group's average rank
        half_counts = np.multiply(group_counts, 0.5, out=group_counts)
        centred -= half_counts
        centred += 0.5 - (total + 1) / 2
        self.centred = centred
        self.sum_squares = 2 * np.einsum("gb,gb,gb->b", half_counts, centred, centred)
        self._weighted: np.ndarray | None = None
        # With one unit per group (no ties), a group's count is its unit's: the product of
        # count and rank, wanted when this variable meets one with few values, is then formed
        # in group order from what is here, without gathering either by unit.
        self._half_counts = half_counts if self.n_groups == len(self.units) else None
        # The same ranks in the sample itself (every unit drawn once): the point estimate.
        sizes = np.bincount(self.group, minlength=self.n_groups).astype(np.float64)
        self.point_centred = np.cumsum(sizes) - (sizes - 1) / 2 - (len(self.units) + 1) / 2
        self.point_sum_squares = float(sizes @ self.point_centred**2)

    @property
    def weighted(self) -> np.ndarray:
        """(units, or groups where each holds one unit; B): each count times its centred rank."""
        if self._weighted is None:
            if self._half_counts is not None:
                self._weighted = np.multiply(self._half_counts, self.centred)
                self._weighted *= 2
                self._half_counts = None
            else:
                self._weighted = self.counts[self.units] * self.centred[self.group]
        return self._weighted

    def sum_by_group_of(self, other: RankedResamples) -> np.ndarray:
        """(other's groups, B): `weighted` summed by the group each unit has in `other`."""
        k = len(self.units)
        # With one unit per group, `weighted` is in this variable's group order.
        labels = other.group[np.argsort(self.group)] if self.n_groups == k else other.group
        return _grouping(labels, np.arange(k), other.n_groups, k) @ self.weighted


def spearman_between(a: RankedResamples, b: RankedResamples) -> np.ndarray:
    """(B,) Spearman's rho of two variables over the same units; NaN for constant resamples."""
    if not np.array_equal(a.units, b.units):
        raise ValueError("both variables must cover the same units")
    if a.n_groups * b.n_groups <= len(a.units) // 4:
        # Both nearly discrete (Likert scores, their means): sum over distinct (a, b) pairs.
        pairs, joint = np.unique(a.group * b.n_groups + b.group, return_inverse=True)
        pair_counts = group_sums(a.counts, joint, a.units, len(pairs))
        covariance = np.einsum(
            "jb,jb,jb->b",
            pair_counts,
            a.centred[pairs // b.n_groups],
            b.centred[pairs % b.n_groups],
        )
    else:
        few, many = (a, b) if a.n_groups <= b.n_groups else (b, a)
        covariance = np.einsum("gb,gb->b", few.centred, many.sum_by_group_of(few))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = covariance / np.sqrt(a.sum_squares * b.sum_squares)
    # A constant resample has zero variance; rounding can leave it a hair above zero.
    rho[(a.sum_squares < 1e-9) | (b.sum_squares < 1e-9)] = np.nan
    return rho


def point_spearman(a: RankedResamples, b: RankedResamples) -> float | None:
    """Spearman's rho of the two variables in the sample itself (scipy.stats.spearmanr's
    value, from the ranks already at hand); None where either is constant."""
    if not np.array_equal(a.units, b.units):
        raise ValueError("both variables must cover the same units")
    if a.point_sum_squares < 1e-9 or b.point_sum_squares < 1e-9:
        return None
    covariance = a.point_centred[a.group] @ b.point_centred[b.group]
    return float(covariance / np.sqrt(a.point_sum_squares * b.point_sum_squares))


def resampled_spearman(
    x: ArrayLike, y: ArrayLike, counts: Counts, units: ArrayLike | None = None
) -> np.ndarray:
    """Spearman's rho of x and y in each resample (column) of `counts`.

    `units` are the rows of `counts` that x and y belong to (default: all, in order); units
    outside them are left out of every resample. Returns (B,) with NaN where a resample is
    constant in x or y.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    units = np.arange(len(x)) if units is None else np.asarray(units)
    if len(units) == 0:
        return np.full(counts.shape[1], np.nan)
    return spearman_between(RankedResamples(x, units, counts), RankedResamples(y, units, counts))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the finite samples, or None when there are none."""
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def two_sided_p(differences: np.ndarray) -> float | None:
    """Bootstrap p-value of 'no difference': twice the smaller tail mass at zero, with the
    +1 correction so that it is never exactly zero (Davison and Hinkley 1997, eq. 4.11)."""
    differences = differences[np.isfinite(differences)]
    if differences.size == 0:
        return None
    below = (np.count_nonzero(differences <= 0) + 1) / (differences.size + 1)
    above = (np.count_nonzero(differences >= 0) + 1) / (differences.size + 1)
    return float(min(1.0, 2 * min(below, above)))
