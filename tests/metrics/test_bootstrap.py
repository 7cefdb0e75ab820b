"""The vectorised bootstrap against scipy, one resample at a time, on the same resamples."""

import numpy as np
import pytest
from scipy import stats

from metrics.stats.bootstrap import (
    RankedResamples,
    counts_from_indices,
    percentile_interval,
    resample_indices,
    resampled_spearman,
    spearman_between,
    two_sided_p,
)


def scipy_per_resample(x, y, indices, units=None):
    """What a plain loop computes: Spearman of each resample's drawn pairs."""
    rho = []
    for drawn in indices:
        if units is not None:
            drawn = drawn[np.isin(drawn, units)]
            lookup = {unit: position for position, unit in enumerate(units)}
            drawn = np.array([lookup[d] for d in drawn])
        xs, ys = x[drawn], y[drawn]
        constant = np.ptp(xs) == 0 or np.ptp(ys) == 0
        rho.append(np.nan if constant else stats.spearmanr(xs, ys).statistic)
    return np.array(rho)


@pytest.mark.parametrize(
    "kind", ["continuous", "continuous vs likert mean", "likert vs likert", "heavy ties"]
)
def test_equals_scipy_on_every_resample(kind):
    rng = np.random.default_rng(0)
    n = 300
    latent = rng.normal(size=n)
    x = {
        "continuous": latent + rng.normal(size=n),
        "continuous vs likert mean": latent + rng.normal(size=n),
        "likert vs likert": np.clip(np.rint(3 + latent + rng.normal(size=n)), 1, 5),
        "heavy ties": rng.integers(0, 2, size=n).astype(float),
    }[kind]
    y = {
        "continuous": latent,
        "continuous vs likert mean": np.round(np.clip(3 + latent, 1, 5) * 3) / 3,
        "likert vs likert": np.clip(np.rint(3 + latent), 1, 5),
        "heavy ties": np.rint(latent),
    }[kind]
    indices = resample_indices(n, 200, np.random.default_rng(1))
    counts = counts_from_indices(indices, n)
    np.testing.assert_allclose(
        resampled_spearman(x, y, counts), scipy_per_resample(x, y, indices), atol=1e-12
    )


def test_a_subset_of_units_is_the_drawn_units_it_contains():
    rng = np.random.default_rng(2)
    n = 120
    x, y = rng.normal(size=n), rng.integers(1, 6, size=n).astype(float)
    units = np.flatnonzero(rng.random(n) < 0.6)
    indices = resample_indices(n, 100, np.random.default_rng(3))
    counts = counts_from_indices(indices, n)
    got = resampled_spearman(x[units], y[units], counts, units)
    np.testing.assert_allclose(
        got, scipy_per_resample(x[units], y[units], indices, units), atol=1e-12
    )


def test_constant_resamples_are_nan_not_errors():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 1.0, 2.0])
    indices = np.array([[0, 0, 0], [0, 1, 2], [1, 0, 1]])
    rho = resampled_spearman(x, y, counts_from_indices(indices, 3))
    assert np.isnan(rho[0]) and np.isnan(rho[2])
    assert rho[1] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert percentile_interval(np.array([np.nan, np.nan])) is None


def test_ranked_variables_must_cover_the_same_units():
    counts = counts_from_indices(resample_indices(5, 4, np.random.default_rng(0)), 5)
    a = RankedResamples([1, 2, 3], [0, 1, 2], counts)
    b = RankedResamples([1, 2, 3], [1, 2, 3], counts)
    with pytest.raises(ValueError, match="same units"):
        spearman_between(a, b)


def test_two_sided_p():
    assert two_sided_p(np.full(999, 0.2)) == pytest.approx(2 / 1000), "never exactly zero"
    symmetric = np.linspace(-1, 1, 1001)
    assert two_sided_p(symmetric) == pytest.approx(1.0)
    assert two_sided_p(np.array([np.nan])) is None


def test_factored_cluster_counts_give_the_dense_counts_results_exactly():
    """Whole-case resamples kept as (cases, B) draws (ClusterCounts) rank and correlate as the
    dense (units, B) counts do, bit for bit: the sums are of whole numbers."""
    from metrics.stats.bootstrap import ClusterCounts, cluster_counts

    rng = np.random.default_rng(5)
    clusters = np.repeat(np.arange(30), 6)
    factored = ClusterCounts.draw(clusters, 300, np.random.default_rng(9))
    dense = cluster_counts(clusters, 300, np.random.default_rng(9))
    assert np.array_equal(np.asarray(factored), dense)
    metric = rng.normal(size=180)
    score = rng.integers(1, 6, size=180).astype(float)  # ties, as Likert scores have
    units = np.flatnonzero(rng.random(180) < 0.8)  # a subgroup of the units
    for x, y in ((metric, score), (score, score[::-1].copy()), (metric, metric**3)):
        ours = spearman_between(
            RankedResamples(x[units], units, factored), RankedResamples(y[units], units, factored)
        )
        plain = spearman_between(
            RankedResamples(x[units], units, dense), RankedResamples(y[units], units, dense)
        )
        assert np.array_equal(ours, plain, equal_nan=True)


@pytest.mark.parametrize("kind", ["continuous", "ties in both", "infinite values"])
def test_the_point_estimate_is_scipys_spearman(kind):
    """The sample's own rho, from the ranks the resamples were built on, against
    scipy.stats.spearmanr, over all units and over a subgroup of them."""
    from metrics.stats.bootstrap import point_spearman

    rng = np.random.default_rng(11)
    n = 250
    latent = rng.normal(size=n)
    x = {
        "continuous": latent + rng.normal(size=n),
        "ties in both": np.rint(latent + rng.normal(size=n)),
        "infinite values": np.where(rng.random(n) < 0.05, np.inf, latent + rng.normal(size=n)),
    }[kind]
    y = np.clip(np.rint(3 + latent), 1, 5)
    counts = counts_from_indices(resample_indices(n, 20, np.random.default_rng(12)), n)
    for units in (np.arange(n), np.flatnonzero(rng.random(n) < 0.4)):
        a = RankedResamples(x[units], units, counts)
        b = RankedResamples(y[units], units, counts)
        assert point_spearman(a, b) == pytest.approx(
            stats.spearmanr(x[units], y[units]).statistic, abs=1e-12
        )
    constant = RankedResamples(np.ones(n), np.arange(n), counts)
    assert point_spearman(constant, RankedResamples(y, np.arange(n), counts)) is None


def test_counts_of_one_unit_per_group_are_reordered_exactly_as_summed():
    """group_sums with every group holding one unit (a metric's distinct values), from
    factored and from dense counts, is the sparse sum of the dense counts."""
    from metrics.stats.bootstrap import ClusterCounts, _grouping, group_sums

    rng = np.random.default_rng(13)
    clusters = np.repeat(np.arange(20), 5)
    factored = ClusterCounts.draw(clusters, 50, rng)
    dense = np.asarray(factored)
    units = np.flatnonzero(rng.random(100) < 0.7)
    labels = rng.permutation(len(units))
    for counts in (factored, dense):
        expected = _grouping(labels, units, len(units), 100) @ dense
        assert np.array_equal(group_sums(counts, labels, units, len(units)), expected)


@pytest.mark.parametrize("largest_count", [3, 5000])
def test_ranks_without_ties_in_int32_and_int64_equal_scipy_on_the_expanded_resample(
    largest_count,
):
    """A metric's ranks are whole numbers in int32, or int64 where a resample holds over
    46,340 units; either way rho equals scipy's on the resample written out unit by unit."""
    rng = np.random.default_rng(14)
    n = 24
    x = rng.normal(size=n)  # no ties
    y = np.clip(np.rint(3 + x + rng.normal(size=n)), 1, 5)
    counts = rng.integers(0, largest_count + 1, size=(n, 6)).astype(np.float64)
    ranked = RankedResamples(x, np.arange(n), counts)
    assert ranked.integer == (np.int64 if largest_count == 5000 else np.int32)
    rho = spearman_between(ranked, RankedResamples(y, np.arange(n), counts))
    for b in range(counts.shape[1]):
        drawn = np.repeat(np.arange(n), counts[:, b].astype(int))
        assert rho[b] == pytest.approx(stats.spearmanr(x[drawn], y[drawn]).statistic, abs=1e-12)
