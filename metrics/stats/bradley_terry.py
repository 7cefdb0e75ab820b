"""A Bradley-Terry scale of a case's reconstructions from readers' preference pairs, and the
Spearman of a metric with it (issue 20). Pure NumPy/pandas; `preference.py` turns rankings and
choices into the pairs this reads (case, better, worse).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# A weak Gaussian prior on each log-strength keeps a reconstruction that every reader
# preferred at a finite, very uncertain strength instead of infinity. As choix 0.4.1 defines
# it (opt.PairwiseFcts): a penalty of alpha * sum(theta**2), a prior variance of 1 / (2 alpha).
BRADLEY_TERRY_PRIOR = 0.01


def _bradley_terry_map(
    n: int, winners: np.ndarray, losers: np.ndarray, counts: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The penalised maximum-likelihood log-strengths of n items and the Hessian there, by
    Newton's method on choix's objective (sum over comparisons of log(1 + exp(-(t_w - t_l)))
    plus alpha * sum(t**2)); `counts` says how often each (winner, loser) occurred. Strictly
    convex for alpha > 0. choix.opt_pairwise solves the same problem with a Python loop per
    comparison, which at a study's scale (hundreds of cases, thousands of comparisons) took
    20 s where this takes well under one; tests/metrics/test_preference.py checks they agree."""

    def objective(theta: np.ndarray) -> float:
        losses = np.logaddexp(0, -(theta[winners] - theta[losers]))
        return float(counts @ losses + alpha * theta @ theta)

    def hessian_at(theta: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-(theta[winners] - theta[losers])))
        weight = counts * p * (1 - p)
        hessian = 2 * alpha * np.eye(n)
        np.add.at(hessian, (winners, winners), weight)
        np.add.at(hessian, (losers, losers), weight)
        np.add.at(hessian, (winners, losers), -weight)
        np.add.at(hessian, (losers, winners), -weight)
        return hessian

    theta = np.zeros(n)
    value = objective(theta)
    for _ in range(100):
        missed = counts / (1 + np.exp(theta[winners] - theta[losers]))  # x (1 - P(win))
        gradient = 2 * alpha * theta
        gradient -= np.bincount(winners, weights=missed, minlength=n)
        gradient += np.bincount(losers, weights=missed, minlength=n)
        step = np.linalg.solve(hessian_at(theta), gradient)
        scale = 1.0
        while True:  # halve a step that does not lower the objective (rarely needed)
            candidate = theta - scale * step
            candidate_value = objective(candidate)
            if candidate_value <= value or scale < 1e-6:
                break
            scale /= 2
        theta, value = candidate, candidate_value
        if np.abs(scale * step).max() < 1e-10:
            break
    return theta, hessian_at(theta)


def bradley_terry(
    pairs: pd.DataFrame, *, alpha: float = BRADLEY_TERRY_PRIOR, level: float = 0.95
) -> pd.DataFrame:
    """A Bradley-Terry scale per reconstruction from the readers' pairs, one case at a time.

    Readers only compare reconstructions of the same case, so strengths are identified within
    a case only, up to a constant: each case's log-strengths are centred to mean 0 (0 is the
    case's average reconstruction). Fitted as choix.opt_pairwise defines it (maximum a
    posteriori with the prior above; `_bradley_terry_map`); the interval is Wald's, from the
    inverse of the penalised Hessian projected onto the centred parameters. Returns case,
    reconstruction, strength, se, low, high, n_pairs (the pairs it took part in); a case whose
    pairs do not connect all its reconstructions still gets a scale, and its items' intervals
    are then very wide.
    """
    from scipy import stats

    z = float(stats.norm.ppf((1 + level) / 2))
    columns = ["case", "reconstruction", "strength", "se", "low", "high", "n_pairs"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    # Each case's distinct (winner, loser) with how often it occurred, in one pass; cases and
    # items sorted, so that the scale and its floating-point sums do not depend on the order
    # of the rows (the dashboard's, an export's, a restored study's).
    pairs = pairs.astype({"case": str, "better": str, "worse": str})
    tally = pairs.groupby(["case", "better", "worse"], sort=True).size().reset_index(name="n")
    frames = []
    for case, group in tally.groupby("case", sort=True):
        items = np.unique(np.concatenate([group["better"].to_numpy(), group["worse"].to_numpy()]))
        index = pd.Index(items)
        winners = index.get_indexer(group["better"])
        losers = index.get_indexer(group["worse"])
        counts = group["n"].to_numpy(dtype=np.float64)
        n = len(items)
        strengths, hessian = _bradley_terry_map(n, winners, losers, counts, alpha)
        strengths = strengths - strengths.mean()
        centring = np.eye(n) - 1 / n
        covariance = centring @ np.linalg.inv(hessian) @ centring
        se = np.sqrt(np.clip(np.diag(covariance), 0, None))
        involved = np.bincount(winners, weights=counts, minlength=n) + np.bincount(
            losers, weights=counts, minlength=n
        )
        frames.append((case, items, strengths, se, involved))
    return pd.DataFrame(
        {
            "case": np.concatenate([[case] * len(items) for case, items, *_ in frames]),
            "reconstruction": np.concatenate([items for _, items, *_ in frames]),
            "strength": np.concatenate([f[2] for f in frames]),
            "se": np.concatenate([f[3] for f in frames]),
            "low": np.concatenate([f[2] - z * f[3] for f in frames]),
            "high": np.concatenate([f[2] + z * f[3] for f in frames]),
            "n_pairs": np.concatenate([f[4] for f in frames]).astype(int),
        }
    )


def spearman_with_scale(scale: pd.DataFrame, values: pd.Series, polarity: int) -> dict[str, Any]:
    """Spearman of a metric with the Bradley-Terry scale, in the metric's direction. Both are
    centred within each case first: readers never compared reconstructions of different
    cases, so only a metric's order within a case can agree or disagree with them."""
    from scipy import stats

    frame = scale[["case", "reconstruction", "strength"]].copy()
    frame["value"] = frame["reconstruction"].map(values).astype(np.float64)
    frame = frame[np.isfinite(frame["value"])]
    if len(frame) < 3:
        return {"n": len(frame), "spearman": None, "reason": "fewer than 3 scaled values"}
    centred_value = frame["value"] - frame.groupby("case")["value"].transform("mean")
    centred_strength = frame["strength"]  # already centred per case
    if np.ptp(centred_value) == 0 or np.ptp(centred_strength) == 0:
        return {"n": len(frame), "spearman": None, "reason": "constant within every case"}
    rho = stats.spearmanr(polarity * centred_value, centred_strength).statistic
    return {"n": len(frame), "spearman": float(rho)}
