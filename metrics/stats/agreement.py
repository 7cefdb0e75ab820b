"""Agreement between readers: ICC(2,1) and ICC(2,k), Krippendorff's alpha, reader-vs-rest.

Inputs are (units x readers) matrices of scores with NaN where a reader did not score a unit.

References:
    Shrout and Fleiss, "Intraclass correlations: uses in assessing rater reliability",
    Psychological Bulletin 86(2), 1979, doi:10.1037/0033-2909.86.2.420.
    Krippendorff, "Computing Krippendorff's alpha-reliability", 2011 (the `krippendorff`
    package implements it).
"""

from __future__ import annotations

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
    if single_denominator == 0 or average_denominator == 0:
        return None, None
    return (
        float((ms_rows - ms_error) / single_denominator),
        float((ms_rows - ms_error) / average_denominator),
    )


def krippendorff_alpha(matrix: np.ndarray, level: str = "ordinal") -> float | None:
    """Krippendorff's alpha over all units, missing scores allowed."""
    pairable = (~np.isnan(matrix)).sum(axis=1) >= 2
    values = matrix[pairable]
    if values.shape[0] < 1 or np.unique(values[~np.isnan(values)]).size < 2:
        return None
    return float(krippendorff.alpha(reliability_data=values.T, level_of_measurement=level))


def reader_vs_rest(matrix: np.ndarray, readers: list[str]) -> dict[str, float | None]:
    """Spearman of each reader against the mean of the others, on the units that reader and
    at least one other scored; `mean` is the mean of the computable ones."""
    result: dict[str, float | None] = {}
    for index, reader in enumerate(readers):
        own = matrix[:, index]
        others = np.delete(matrix, index, axis=1)
        counted = (~np.isnan(others)).sum(axis=1)
        usable = ~np.isnan(own) & (counted > 0)
        with np.errstate(invalid="ignore"):
            rest = np.nansum(others[usable], axis=1) / counted[usable]
        result[reader] = spearman(own[usable], rest)
    computed = [v for v in result.values() if v is not None]
    result["mean"] = float(np.mean(computed)) if computed else None
    return result
