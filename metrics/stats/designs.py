"""Which reconstructions of a case a reader compares on one screen (issue 20's designs).

A **forced choice** shows two reconstructions: either every pair of a case, or a balanced
incomplete design in which every reconstruction meets about `per_item` others. The incomplete
design is a circulant graph on a random labelling: items on a random cycle, each joined to its
neighbours at offsets 1..k (and to the opposite item when the degree is odd and n even). Every
item then has the same number of comparisons, and the graph is connected (offset 1 is a
Hamiltonian cycle), which a Bradley-Terry scale of the case needs.

A **ranking** shows all reconstructions of a case when they fit the screen (`size`); a larger
case is split into sets of at most `size`, in `per_item` rounds, each round a random partition
into near-equal sets, so every reconstruction is ranked `per_item` times. Of many random
draws the one that brings the most distinct pairs together, with the most even pair counts,
is kept; a disconnected draw (two groups never compared) is never kept.

Pure NumPy: positions 0..n-1 stand for the case's reconstructions; the study app maps them.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

DRAWS = 200  # random rank-set designs tried per case; cheap (n is a handful)


def comparison_pairs(
    n: int, per_item: int | None, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """The pairs of a forced-choice design on n items: all of them when `per_item` is None or
    at least n - 1, else the circulant design with about `per_item` comparisons per item
    (exactly `per_item` unless it and n are both odd, when it is `per_item` + 1)."""
    if n < 2:
        return []
    if per_item is None or per_item >= n - 1:
        return list(combinations(range(n), 2))
    if per_item < 2:
        raise ValueError("a connected incomplete design needs at least 2 comparisons per item")
    cycle = rng.permutation(n)
    offsets = list(range(1, per_item // 2 + 1))
    if per_item % 2:
        # Odd degree: the opposite item when n is even (a perfect matching); else one more ring.
        offsets.append(n // 2 if n % 2 == 0 else per_item // 2 + 1)
    pairs: set[tuple[int, int]] = set()
    for offset in offsets:
        for i in range(n):
            a, b = int(cycle[i]), int(cycle[(i + offset) % n])
            pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def _connected(n: int, sets: list[list[int]]) -> bool:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in sets:
        for other in members[1:]:
            parent[root(other)] = root(members[0])
    return len({root(i) for i in range(n)}) == 1


def _partition(n: int, size: int, rng: np.random.Generator) -> list[list[int]]:
    blocks = -(-n // size)
    order = rng.permutation(n).tolist()
    return [sorted(order[k::blocks]) for k in range(blocks)]


def rank_sets(n: int, size: int, per_item: int, rng: np.random.Generator) -> list[list[int]]:
    """The sets a case of n items is ranked in: one set of all when n <= size, else `per_item`
    rounds of near-equal sets of at most `size` (see the module's docstring)."""
    if size < 2:
        raise ValueError("a ranking shows at least 2 reconstructions")
    if n <= size:
        return [list(range(n))] if n >= 2 else []
    if per_item < 2:
        raise ValueError("a split case needs every reconstruction in at least 2 sets")
    best: tuple[tuple[int, float], list[list[int]]] | None = None
    for _ in range(DRAWS):
        sets = [members for _ in range(per_item) for members in _partition(n, size, rng)]
        if not _connected(n, sets):
            continue
        together = np.zeros((n, n))
        for members in sets:
            for a, b in combinations(members, 2):
                together[a, b] += 1
        counts = together[np.triu_indices(n, 1)]
        quality = (int((counts > 0).sum()), -float(counts.var()))
        if best is None or quality > best[0]:
            best = (quality, sets)
    if best is None:  # pragma: no cover - per_item >= 2 random rounds connect almost surely
        raise RuntimeError(f"no connected design of {n} items in sets of {size}")
    return best[1]
