"""Agreement between readers: ICC(2,1) and ICC(2,k), Krippendorff's alpha, reader-vs-rest.

Inputs are (units x readers) matrices of scores with NaN where a reader did not score a unit.

References:
    Shrout and Fleiss, "Intraclass correlations: uses in assessing rater reliability",
    Psychological Bulletin 86(2), 1979, doi:10.1037/0033-2909.86.2.420.
    Krippendorff, "Computing Krippendorff's alpha-reliability", 2011 (the `krippendorff`
    package implements it).
"""

from __future__ import annotations

from typing import Literal

import krippendorff
import numpy as np

from metrics.stats.correlation import spearman


def icc2(matrix: np.ndarray) -> tuple[float | None, float | None]:
    """Shrout-Fleiss ICC(2,1) and ICC(2,k) (two-way random, absolute agreement) on the units
    every reader scored."""
    complete = matrix[~np.isnan(matrix).any(axis=1)]
    n, k = complete.shape
    if n < 2 or k < 2:
        return None, None
    grand = complete.mean()
    ss_rows = k * ((complete.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((complete.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((complete - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    single_denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    average_denominator = ms_rows + (ms_cols - ms_error) / n
    # A denominator that cancels to zero leaves rounding noise (1e-17), and dividing by it
    # gives a huge coefficient that depends on row order: treat it as the undefined it is.
    scale = max(ms_rows, ms_cols, ms_error)
    numerator = ms_rows - ms_error

    def ratio(denominator: float) -> float | None:
        if abs(denominator) <= 1e-12 * scale:
            return None
        return float(numerator / denominator)

    return ratio(single_denominator), ratio(average_denominator)


def agreement_reasons(matrix: np.ndarray) -> dict[str, str]:
    """Why each agreement figure that `icc2` and `krippendorff_alpha` leave null is null."""
    reasons = {}
    complete = int((~np.isnan(matrix).any(axis=1)).sum())
    single, average = icc2(matrix)
    for key, value in (("icc2_1", single), ("icc2_k", average)):
        if value is None:
            reasons[key] = (
                f"needs at least 2 reconstructions scored by every reader ({complete} so far)"
                if complete < 2 or matrix.shape[1] < 2
                else "undefined: the variance components cancel (zero denominator)"
            )
    if krippendorff_alpha(matrix) is None:
        reasons["krippendorff_alpha"] = (
            "needs a reconstruction scored by two readers and at least two distinct scores"
        )
    return reasons


def krippendorff_alpha(
    matrix: np.ndarray, level: Literal["nominal", "ordinal", "interval", "ratio"] = "ordinal"
) -> float | None:
    """Krippendorff's alpha over all units, missing scores allowed."""
    pairable = (~np.isnan(matrix)).sum(axis=1) >= 2
    values = matrix[pairable]
    if values.shape[0] < 1 or np.unique(values[~np.isnan(values)]).size < 2:
        return None
    return float(krippendorff.alpha(reliability_data=values.T, level_of_measurement=level))


def reader_and_rest(matrix: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, own scores, mean of the others) of reader `index`, over the units that reader
    and at least one other scored."""
    own = matrix[:, index]
    others = np.delete(matrix, index, axis=1)
    counted = (~np.isnan(others)).sum(axis=1)
    rows = np.flatnonzero(~np.isnan(own) & (counted > 0))
    return rows, own[rows], np.nansum(others[rows], axis=1) / counted[rows]


def reader_vs_rest(matrix: np.ndarray, readers: list[str]) -> dict[str, float | None]:
    """Spearman of each reader against the mean of the others, on the units that reader and
    at least one other scored; `mean` is the mean of the computable ones."""
    result: dict[str, float | None] = {}
    for index, reader in enumerate(readers):
        _, own, rest = reader_and_rest(matrix, index)
        result[reader] = spearman(own, rest)
    computed = [v for v in result.values() if v is not None]
    result["mean"] = float(np.mean(computed)) if computed else None
    return result
