"""The statistics engine behind `manage.py analyze` and the dashboard (docs/interfaces.md section 5).

Takes long-format scores (reader, reconstruction, question, score) and metrics
(reconstruction, metric, value); returns, per question, each metric's correlation with the
mean reader score (Spearman with a bootstrap CI, Kendall tau-b, Pearson, per-reader Spearman)
and the readers' agreement (ICC(2,1), ICC(2,k), Krippendorff's ordinal alpha, reader-vs-rest).

With `extended=True` it adds what the dashboard shows beyond the contract: paired bootstrap
comparisons of metrics with each other and with the inter-reader baseline, results per method
and per acceleration, a sample-size hint, and the reason behind every null.

Direction: every metric has a polarity (+1 higher is better, -1 lower is better; the registry's,
`metrics.polarity`, unless the caller gives one). `aligned_spearman` = polarity x spearman says
how well a metric tracks the readers in its own direction; rankings and every comparison use
it, so a metric that runs against the readers is never credited as if it tracked them.

Bootstrap: one set of B resamples per question, seeded by `seed` and the reconstruction names
(so row order and reader names do not matter), shared by every metric, the reader-vs-rest
baseline and every subgroup of that question. Shared resamples are what make the comparisons
paired. Where the case of each reconstruction is known, whole cases are resampled: a case's
reconstructions share one reference and are not independent, and resampling them one by one
makes every interval too narrow (tests/metrics/test_coverage.py). A metric missing on some
reconstructions is correlated, in each resample, over the drawn reconstructions it has.
Comparisons between metrics, and of each metric with the readers, are Holm-adjusted within
their family (one question's k(k-1)/2 pairs; one question's k metrics against the readers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from metrics.polarity import registry_polarity
from metrics.stats.agreement import icc2, krippendorff_alpha
from metrics.stats.correlation import kendall, pearson
from metrics.stats.extended import GROUP_COLUMNS, extended_block, subgroups
from metrics.stats.question import QuestionData, SharedResamples, resample_rng

__all__ = ["AnalysisInputError", "analyze", "ranked_metrics", "resample_rng"]

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
    frame[numeric] = values.astype(float)
    return frame.dropna(subset=[numeric])


def _groups_by_reconstruction(groups: pd.DataFrame | None) -> pd.DataFrame | None:
    if groups is None:
        return None
    missing = [c for c in ("reconstruction", *GROUP_COLUMNS) if c not in groups.columns]
    if missing:
        raise AnalysisInputError(f"groups: missing column(s) {', '.join(missing)}")
    return (
        groups.astype(dict.fromkeys(("reconstruction", *GROUP_COLUMNS), str))
        .drop_duplicates("reconstruction")
        .set_index("reconstruction")
    )


def analyze(
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: pd.DataFrame | None = None,
    extended: bool = False,
    cases: pd.DataFrame | None = None,
    polarities: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The contract's JSON object for `scores` against `metrics`.

    `groups` (reconstruction, method, acceleration), when given with `extended`, adds results
    per method and per acceleration. `cases` (reconstruction, case) makes the bootstrap
    resample whole cases. `polarities` gives or overrides a metric's direction (+1 or -1);
    other metrics take the registry's, and a metric known to neither has a null polarity.
    """
    scores = _check(scores, SCORE_COLUMNS, "scores", "score")
    failed = _failures(metrics)
    metrics = _check(metrics, METRIC_COLUMNS, "metrics", "value")
    if not scores["reconstruction"].isin(metrics["reconstruction"].unique()).any():
        raise AnalysisInputError("no reconstruction appears in both the scores and the metrics")
    if bootstrap < 1:
        raise AnalysisInputError("bootstrap must be at least 1 resample")
    groups = _groups_by_reconstruction(groups)
    case_of = _case_of(cases)
    metric_table = metrics.pivot_table(
        index="reconstruction", columns="metric", values="value", aggfunc="mean"
    )
    metric_names = sorted(metric_table.columns)
    polarity = {
        name: (polarities or {}).get(name, registry_polarity(name)) for name in metric_names
    }
    shared = SharedResamples(bootstrap, seed)
    result: dict[str, Any] = {
        "n_readers": int(scores["reader"].nunique()),
        "n_reconstructions": int(scores["reconstruction"].nunique()),
        "resampling": "cases" if case_of is not None else "reconstructions",
        "questions": {},
    }
    if failed:
        result["excluded"] = failed
    if extended:
        result["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 0.95}
    datas = {}
    for question, rows in scores.groupby("question"):
        data = datas[str(question)] = QuestionData(rows, metric_table, shared, case_of)
        per_metric, resampled = _metric_blocks(data, metric_names, polarity, extended)
        agreement, baseline = _agreement(data)
        block = {"metrics": per_metric, "agreement": agreement}
        for entry in per_metric.values():
            if entry["n"] < len(data.units):
                entry["coverage"] = (
                    f"computed on {entry['n']} of the {len(data.units)} reconstructions "
                    "the readers scored"
                )
        if extended:
            aligned_resampled = {
                name: polarity[name] * rho
                for name, rho in resampled.items()
                if polarity[name] is not None
            }
            block.update(
                extended_block(
                    data, per_metric, aligned_resampled, agreement, baseline, metric_names
                )
            )
        result["questions"][str(question)] = block
    if extended:
        for question, extra in subgroups(datas, groups, metric_names).items():
            result["questions"][question].update(extra)
    return result


def _failures(metrics: pd.DataFrame) -> dict[str, list[dict[str, str]]]:
    """{metric: [{reconstruction, reason}]} for the rows of an export that carry an `error`
    (a metric that could not be computed for that reconstruction): excluded, and said."""
    if "error" not in metrics.columns or not {"reconstruction", "metric"} <= set(metrics):
        return {}
    errors = metrics["error"].fillna("").astype(str).str.strip()
    rows = (
        metrics.assign(error=errors)[errors != ""]
        .astype({"reconstruction": str, "metric": str})
        .sort_values(["metric", "reconstruction"])
    )
    return {
        str(name): [
            {"reconstruction": reconstruction, "reason": reason}
            for reconstruction, reason in zip(group["reconstruction"], group["error"], strict=True)
        ]
        for name, group in rows.groupby("metric", sort=True)
    }


def _metric_blocks(
    data: QuestionData, metric_names: list[str], polarity: dict[str, Any], extended: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Each metric's block for one question, and its resampled Spearman where it has one."""
    per_metric, resampled = {}, {}
    per_reader = data.per_reader(metric_names)
    for name in metric_names:
        metric_rows = data.metric_rows(name)
        block, rho = data.correlate(name, metric_rows)
        x, y = data.metrics[name].to_numpy()[metric_rows], data.mean_score[metric_rows]
        entry = {
            "n": block["n"],
            "spearman": block["spearman"],
            "spearman_ci": block["spearman_ci"],
            "kendall": kendall(x, y),
            "pearson": pearson(x, y),
            "per_reader": per_reader[name],
            **_aligned(block, polarity[name]),
        }
        if extended and "reason" in block:
            entry["reason"] = block["reason"]
        per_metric[name] = entry
        if rho is not None:
            resampled[name] = rho
    return per_metric, resampled


def _agreement(data: QuestionData) -> tuple[dict[str, Any], np.ndarray | None]:
    """The readers' agreement for one question, and the resampled reader-vs-rest mean."""
    if len(data.readers) < 2:
        empty = {"icc2_1": None, "icc2_k": None, "krippendorff_alpha": None}
        return {**empty, "reader_vs_rest": {}}, None
    matrix = data.wide.to_numpy(dtype=float)
    icc21, icc2k = icc2(matrix)
    point_baseline, baseline = data.baseline()
    agreement = {
        "icc2_1": icc21,
        "icc2_k": icc2k,
        "krippendorff_alpha": krippendorff_alpha(matrix),
        "reader_vs_rest": point_baseline,
    }
    return agreement, baseline


def ranked_metrics(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, block) best first by aligned Spearman; metrics without one come last."""
    return sorted(
        metrics.items(),
        key=lambda item: (
            item[1]["aligned_spearman"] is None,
            -(item[1]["aligned_spearman"] or 0),
        ),
    )


def _case_of(cases: pd.DataFrame | None) -> pd.Series | None:
    """reconstruction -> case, checked: one case per reconstruction."""
    if cases is None:
        return None
    missing = [c for c in ("reconstruction", "case") if c not in cases.columns]
    if missing:
        raise AnalysisInputError(f"cases: missing column(s) {', '.join(missing)}")
    pairs = cases[["reconstruction", "case"]].dropna().astype(str).drop_duplicates()
    clash = pairs[pairs["reconstruction"].duplicated(keep=False)]
    if len(clash):
        name = clash["reconstruction"].iloc[0]
        found = sorted(clash.loc[clash["reconstruction"] == name, "case"])
        raise AnalysisInputError(
            f"reconstruction {name!r} belongs to more than one case ({', '.join(found)})"
        )
    return pairs.set_index("reconstruction")["case"]


def _aligned(block: dict[str, Any], polarity: int | None) -> dict[str, Any]:
    """polarity, aligned_spearman and its CI: the coefficient in the metric's own direction."""
    if polarity is None:
        return {
            "polarity": None,
            "aligned_spearman": None,
            "aligned_spearman_ci": None,
            "aligned_spearman_reason": (
                "unknown direction: give --polarity NAME=+1 (higher is better) or NAME=-1"
            ),
        }
    rho, ci = block["spearman"], block["spearman_ci"]
    return {
        "polarity": polarity,
        "aligned_spearman": None if rho is None else polarity * rho,
        "aligned_spearman_ci": None if ci is None else sorted(polarity * c for c in ci),
    }
