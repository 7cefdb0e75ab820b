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

from functools import cached_property

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
        self._cubed: np.ndarray | None = None

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

    @property
    def cubed(self) -> np.ndarray:
        """The draws cubed (kept: every metric's sum of squared ranks needs them)."""
        if self._cubed is None:
            self._cubed = self.drawn**3
        return self._cubed


Counts = np.ndarray | ClusterCounts


def group_sums(counts: Counts, labels: np.ndarray, units: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, B): the counts of `units` summed by their `labels`."""
    if isinstance(counts, ClusterCounts):
        clusters = counts.clusters[units]
        return _grouping(labels, clusters, n_groups, counts.drawn.shape[0]) @ counts.drawn
    return _grouping(labels, units, n_groups, counts.shape[0]) @ counts


def _grouping(
    labels: np.ndarray,
    columns: np.ndarray,
    n_groups: int,
    n_columns: int,
    dtype: type = np.float64,
) -> sparse.csr_matrix:
    """Sparse (groups x rows) matrix that sums rows `columns` into groups `labels`."""
    return sparse.csr_matrix(
        (np.ones(len(labels), dtype=dtype), (labels, columns)), shape=(n_groups, n_columns)
    )


class RankedResamples:
    """Average ranks of one variable in every resample of `counts` (rows `units`).

    Kept per distinct value: `centred` is (G, B), the midrank of each tied group minus the
    resample's mean rank. Build it once per variable and pair it with several others.

    A variable without ties (a metric: one unit per value) is kept instead as its value order:
    its ranks are formed as they are paired (`metrics.stats.rank_kernel`), and the sum of
    squared ranks follows from the counts alone (see `_rank_distinct`).
    """

    def __init__(self, values: ArrayLike, units: ArrayLike, counts: Counts) -> None:
        values = np.asarray(values, float)
        self.units = np.asarray(units)
        self.counts = counts
        distinct, self.group = np.unique(values, return_inverse=True)
        self.n_groups = len(distinct)
        self.distinct = self.n_groups == len(self.units)
        self._centred: np.ndarray | None = None
        self._weighted: np.ndarray | None = None
        if self.distinct:
            self._rank_distinct()
        else:
            self._rank_tied()
        # The same ranks in the sample itself (every unit drawn once): the point estimate.
        sizes = np.bincount(self.group, minlength=self.n_groups).astype(np.float64)
        self.point_centred = np.cumsum(sizes) - (sizes - 1) / 2 - (len(self.units) + 1) / 2
        self.point_sum_squares = float(sizes @ self.point_centred**2)

    def _rank_tied(self) -> None:
        group_counts = group_sums(self.counts, self.group, self.units, self.n_groups)
        total = group_counts.sum(axis=0)
        centred = _cumulative_rows(group_counts, np.empty_like(group_counts))
        # cumulative count - (count - 1) / 2 is the tied group's average rank
        half_counts = np.multiply(group_counts, 0.5, out=group_counts)
        centred -= half_counts
        centred += 0.5 - (total + 1) / 2
        self._centred = centred
        self.sum_squares = 2 * np.einsum("gb,gb,gb->b", half_counts, centred, centred)

    def _rank_distinct(self) -> None:
        """Unit i's rank in a resample is its cumulative count P_i - (w_i - 1) / 2 for its
        count w_i; with the resample's size T the centred rank is P_i - w_i / 2 - T / 2, and
        the sum of count x squared centred rank is (T^3 - sum of w_i^3) / 12 (the midrank
        variance with ties of sizes w_i). The ranks themselves are formed only where they
        are paired (`covariance_with`, compiled), or asked for (`centred`)."""
        self.value_order = np.argsort(self.group)  # position in value order -> row of units
        if isinstance(self.counts, ClusterCounts):
            drawn, clusters = self.counts.drawn, self.counts.clusters[self.units]
            per_cluster = np.bincount(clusters, minlength=drawn.shape[0]).astype(np.float64)
            total, cubes = per_cluster @ drawn, per_cluster @ self.counts.cubed
        else:
            dense = self.counts[self.units]
            total, cubes = dense.sum(axis=0), (dense**3).sum(axis=0)
        self.integer = _integer_for(total)
        self.total = total
        self.sum_squares = (total**3 - cubes) / 12

    @cached_property
    def _drawn_in_value_order(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts matrix, its row for each unit in value order): the clusters' draws and
        each unit's cluster, or the dense counts and each unit's own row. Kept: a metric is
        paired with every question's mean score."""
        in_value_order = self.units[self.value_order]
        if isinstance(self.counts, ClusterCounts):
            return self.counts.drawn, self.counts.clusters[in_value_order].astype(np.intp)
        return np.ascontiguousarray(self.counts, dtype=np.float64), in_value_order.astype(np.intp)

    @property
    def centred(self) -> np.ndarray:
        """(G, B) float64: each group's midrank minus the resample's mean rank."""
        if self._centred is None:  # only a variable without ties gets here
            drawn, rows = self._drawn_in_value_order
            count = drawn[rows].astype(self.integer)
            cumulative = _cumulative_rows(count, np.empty_like(count))
            self._centred = cumulative - 0.5 * count - 0.5 * self.total
        return self._centred

    @property
    def weighted(self) -> np.ndarray:
        """Each count times its centred rank, (units, B), of a variable with ties."""
        if self._weighted is None:
            self._weighted = self.counts[self.units] * self.centred[self.group]
        return self._weighted

    def covariance_with(self, few: RankedResamples) -> np.ndarray:
        """(B,) sum over units of count x this centred rank x `few`'s centred rank, summing
        this variable's per-unit products within each of `few`'s (fewer) groups."""
        k = len(self.units)
        if not self.distinct:
            sums = _grouping(few.group, np.arange(k), few.n_groups, k) @ self.weighted
            return np.einsum("gb,gb->b", few.centred, sums)
        from metrics.stats.rank_kernel import distinct_covariance

        drawn, rows = self._drawn_in_value_order
        return distinct_covariance(
            drawn,
            rows,
            np.ascontiguousarray(self.total, dtype=np.float64),
            few.group[self.value_order].astype(np.intp),
            np.ascontiguousarray(few.centred, dtype=np.float64),
        )


def _integer_for(total: np.ndarray) -> type:
    """The integer type for ranks in resamples of `total` units: every sum of products of
    counts and cumulative counts is at most total^2, which int32 holds up to 46,340."""
    return np.int32 if total.max(initial=0) ** 2 < 2**31 - 1 else np.int64


def _cumulative_rows(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Cumulative sums down axis 0 into `out`; row-wise adds beat np.cumsum on axis 0 here."""
    out[0] = rows[0]
    for row in range(1, len(rows)):
        np.add(out[row - 1], rows[row], out=out[row])
    return out


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
        covariance = many.covariance_with(few)
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
