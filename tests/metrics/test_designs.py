"""Comparison designs (metrics/stats/designs.py): every property a study relies on, checked
over many seeds and sizes."""

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from metrics.stats.designs import comparison_pairs, rank_sets


def components(n, groups):
    edges = [(a, b) for members in groups for a, b in combinations(members, 2)]
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[0]


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_all_pairs(n):
    pairs = comparison_pairs(n, None, np.random.default_rng(0))
    assert pairs == list(combinations(range(n), 2))
    assert comparison_pairs(n, n - 1, np.random.default_rng(0)) == pairs


@pytest.mark.parametrize("n", [5, 6, 9, 12, 18])
@pytest.mark.parametrize("per_item", [2, 3, 4])
def test_balanced_incomplete_pairs_give_every_item_the_same_number_of_comparisons(n, per_item):
    for seed in range(20):
        pairs = comparison_pairs(n, per_item, np.random.default_rng(seed))
        assert len(set(pairs)) == len(pairs) and all(a < b for a, b in pairs)
        degree = Counter(item for pair in pairs for item in pair)
        expected = per_item + 1 if per_item % 2 and n % 2 else per_item
        assert set(degree.values()) == {min(expected, n - 1)}, (n, per_item, degree)
        assert components(n, pairs) == 1, "a Bradley-Terry scale needs a connected design"


def test_incomplete_pairs_differ_between_seeds_and_repeat_for_one():
    first = comparison_pairs(10, 2, np.random.default_rng(1))
    assert first == comparison_pairs(10, 2, np.random.default_rng(1))
    assert first != comparison_pairs(10, 2, np.random.default_rng(2))


def test_a_case_that_fits_is_ranked_whole():
    assert rank_sets(4, 4, 2, np.random.default_rng(0)) == [[0, 1, 2, 3]]
    assert rank_sets(1, 4, 2, np.random.default_rng(0)) == []


@pytest.mark.parametrize(("n", "size", "per_item"), [(5, 4, 2), (6, 4, 2), (9, 4, 3), (12, 5, 2)])
def test_split_cases_are_balanced_connected_and_within_the_screen(n, size, per_item):
    for seed in range(10):
        sets = rank_sets(n, size, per_item, np.random.default_rng(seed))
        assert all(2 <= len(members) <= size for members in sets)
        appearances = Counter(item for members in sets for item in members)
        assert appearances == dict.fromkeys(range(n), per_item)
        rounds = -(-n // size)
        for start in range(0, len(sets), rounds):
            sizes = [len(members) for members in sets[start : start + rounds]]
            assert max(sizes) - min(sizes) <= 1
        assert components(n, sets) == 1


def test_the_kept_split_brings_more_pairs_together_than_a_typical_draw():
    """6 items in sets of 4, twice: the design keeps a draw that covers at least as many
    distinct pairs as the median random one."""
    from metrics.stats.designs import _partition

    def covered(sets):
        return len({pair for members in sets for pair in combinations(members, 2)})

    rng = np.random.default_rng(3)
    random_draws = [covered(_partition(6, 4, rng) + _partition(6, 4, rng)) for _ in range(200)]
    kept = covered(rank_sets(6, 4, 2, np.random.default_rng(4)))
    assert kept >= np.median(random_draws) and kept == max(random_draws)


def test_designs_refuse_what_cannot_be_connected():
    with pytest.raises(ValueError):
        comparison_pairs(6, 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        rank_sets(6, 4, 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        rank_sets(6, 1, 2, np.random.default_rng(0))
