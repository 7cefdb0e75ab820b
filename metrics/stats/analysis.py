"""The statistics engine behind `manage.py analyze` and the dashboard (CONTRACTS.md section 3).

Takes long-format scores (reader, reconstruction, question, score) and metrics
(reconstruction, metric, value); returns, per question, each metric's correlation with the
mean reader score (Spearman with a bootstrap CI, Kendall tau-b, Pearson, per-reader Spearman)
and the readers' agreement (ICC(2,1), ICC(2,k), Krippendorff's ordinal alpha, reader-vs-rest).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.stats.agreement import icc2, krippendorff_alpha, reader_vs_rest
from metrics.stats.correlation import kendall, pearson, spearman, spearman_bootstrap_ci

SCORE_COLUMNS = ("reader", "reconstruction", "question", "score")
METRIC_COLUMNS = ("reconstruction", "metric", "value")


class AnalysisInputError(ValueError):
    """Scores or metrics that cannot be analysed (the message says why)."""


def _check(frame: pd.DataFrame, columns: tuple[str, ...], name: str, numeric: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisInputError(
            f"{name}: missing column(s) {', '.join(missing)}; need {','.join(columns)}"
        )
    frame = frame[list(columns)].copy()
    for column in columns:
        if column != numeric:
            frame[column] = frame[column].astype(str)
    values = pd.to_numeric(frame[numeric], errors="coerce")
    bad = frame[numeric][values.isna() & frame[numeric].notna()]
    if len(bad):
        raise AnalysisInputError(
            f"{name}: non-numeric {numeric} {bad.iloc[0]!r} (row {bad.index[0] + 2})"
        )
    frame[numeric] = values
    return frame.dropna(subset=[numeric])


def analyze(
    scores: pd.DataFrame, metrics: pd.DataFrame, *, bootstrap: int = 1000, seed: int = 0
) -> dict:
    """The contract's JSON object for `scores` against `metrics`."""
    scores = _check(scores, SCORE_COLUMNS, "scores", "score")
    metrics = _check(metrics, METRIC_COLUMNS, "metrics", "value")
    if not set(scores["reconstruction"]) & set(metrics["reconstruction"]):
        raise AnalysisInputError("no reconstruction appears in both the scores and the metrics")
    rng = np.random.default_rng(seed)
    metric_tables = {
        name: group.groupby("reconstruction")["value"].mean()
        for name, group in metrics.groupby("metric")
    }
    result = {
        "n_readers": int(scores["reader"].nunique()),
        "n_reconstructions": int(scores["reconstruction"].nunique()),
        "questions": {},
    }
    for question, rows in scores.groupby("question"):
        wide = rows.pivot_table(
            index="reconstruction", columns="reader", values="score", aggfunc="mean"
        )
        mean_score = wide.mean(axis=1)
        per_metric = {}
        for name, values in metric_tables.items():
            common = mean_score.index.intersection(values.index)
            x, y = values[common].to_numpy(), mean_score[common].to_numpy()
            ci = spearman_bootstrap_ci(x, y, resamples=bootstrap, rng=rng)
            per_reader = {}
            for reader in wide.columns:
                own = wide[reader].dropna()
                shared = own.index.intersection(values.index)
                per_reader[str(reader)] = spearman(
                    values[shared].to_numpy(), own[shared].to_numpy()
                )
            per_metric[name] = {
                "n": int(len(common)),
                "spearman": spearman(x, y),
                "spearman_ci": list(ci) if ci else None,
                "kendall": kendall(x, y),
                "pearson": pearson(x, y),
                "per_reader": per_reader,
            }
        matrix = wide.to_numpy(dtype=float)
        readers = [str(r) for r in wide.columns]
        if len(readers) >= 2:
            icc21, icc2k = icc2(matrix)
            agreement = {
                "icc2_1": icc21,
                "icc2_k": icc2k,
                "krippendorff_alpha": krippendorff_alpha(matrix),
                "reader_vs_rest": reader_vs_rest(matrix, readers),
            }
        else:
            agreement = {
                "icc2_1": None,
                "icc2_k": None,
                "krippendorff_alpha": None,
                "reader_vs_rest": {},
            }
        result["questions"][str(question)] = {"metrics": per_metric, "agreement": agreement}
    return result
