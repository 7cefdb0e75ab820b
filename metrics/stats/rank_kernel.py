"""The bootstrap's inner loop, compiled: a variable without ties (a metric) against one with few
distinct values (a mean score), over every resample in one pass.

Through numpy this took an argsort, an (n, B) matrix of counts in value order, its cumulative
sum, their product and a sparse sum by the other variable's groups: five passes over n x B
numbers per metric, row set and question, most of the dashboard's analysis (3,600
reconstructions x 1,000 resamples x 8 metrics x 4 questions x 12 row sets). Here each unit's
counts are read once and its cumulative count, rank and product are formed in registers.

Numba compiles it on first use and caches it beside this file (as `metrics.pixel_cpu`).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def distinct_covariance(
    drawn: np.ndarray,
    rows: np.ndarray,
    total: np.ndarray,
    few_group: np.ndarray,
    few_centred: np.ndarray,
) -> np.ndarray:
    """(B,) sum over units of count x centred rank x the other variable's centred rank.

    `rows[i]` is the row of `drawn` (B counts) of the i-th unit in the variable's value
    order (its own row, or its cluster's); `total` is each resample's size; `few_group[i]`
    the other variable's group of that unit and `few_centred` (G, B) that group's midrank
    minus the resample's mean rank. A unit drawn w times after P - w others has midrank
    P - (w - 1) / 2, so its centred rank is P - w / 2 - T / 2.

    The terms are multiples of 1/4 below 2^51 for any resample under about 100,000 units,
    so the float64 sums are exact and equal numpy's integer ones.
    """
    resamples = drawn.shape[1]
    covariance = np.zeros(resamples)
    cumulative = np.zeros(resamples)
    for i in range(rows.shape[0]):
        count = drawn[rows[i]]
        other = few_centred[few_group[i]]
        for b in range(resamples):
            cumulative[b] += count[b]
            covariance[b] += count[b] * (cumulative[b] - 0.5 * (count[b] + total[b])) * other[b]
    return covariance
