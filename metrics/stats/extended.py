"""What the dashboard shows beyond the contract for one question: paired comparisons of
metrics with each other and with the readers (Holm-adjusted per family), results per method
and per acceleration, a sample-size hint and the reason behind every null."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from metrics.stats.agreement import agreement_reasons
from metrics.stats.bootstrap import percentile_interval, two_sided_p
from metrics.stats.question import QuestionData, RankCache

GROUP_COLUMNS = ("method", "acceleration")
TARGET_CI_WIDTH = 0.1


def _comparison(difference: float, resampled: np.ndarray) -> dict[str, Any]:
    ci = percentile_interval(resampled)
    return {
        "difference": float(difference),
        "ci": list(ci) if ci else None,
        "p": two_sided_p(resampled),
    }


def _sample_size_hint(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """How many more reconstructions would bring the widest Spearman CI under 0.1, assuming
    the width shrinks as 1/sqrt(n) (a planning figure, not a power analysis)."""
    widths = {
        name: (block["spearman_ci"][1] - block["spearman_ci"][0], block["n"])
        for name, block in metrics.items()
        if block["spearman_ci"]
    }
    if not widths:
        return None
    widest = max(widths, key=lambda name: widths[name][0])
    width, n = widths[widest]
    needed = math.ceil(n * (width / TARGET_CI_WIDTH) ** 2) if width > TARGET_CI_WIDTH else n
    return {
        "widest_metric": widest,
        "widest_ci_width": float(width),
        "target_ci_width": TARGET_CI_WIDTH,
        "n": int(n),
        "additional_reconstructions": int(max(0, needed - n)),
    }


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's (1979) step-down adjustment of one family of p-values: the i-th smallest of m
    times (m - i), running maximum, at most 1; None stays None and is not counted.

    Equal to statsmodels' `multipletests(method="holm")` (tested), which is not called here:
    its Holm branch runs gc.collect(), 0.14 s in a process holding Django and pandas, and an
    analysis adjusts eight families.
    """
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if present:
        raw = np.array([p_values[i] for i in present], dtype=float)
        order = np.argsort(raw, kind="stable")
        steps = raw[order] * (len(raw) - np.arange(len(raw)))
        corrected = np.empty_like(raw)
        corrected[order] = np.minimum(1.0, np.maximum.accumulate(steps))
        for index, value in zip(present, corrected.tolist(), strict=True):
            adjusted[index] = value
    return adjusted


def _paired_comparisons(
    per_metric: dict[str, Any],
    aligned_resampled: dict[str, np.ndarray],
    agreement: dict[str, Any],
    baseline: np.ndarray | None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], float | None]:
    """Metric against metric, and each metric against the reader-vs-rest baseline, on
    aligned coefficients: metrics of unknown direction take no part."""
    aligned = {name: per_metric[name]["aligned_spearman"] for name in aligned_resampled}
    comparisons = [
        {
            "a": a,
            "b": b,
            **_comparison(aligned[a] - aligned[b], aligned_resampled[a] - aligned_resampled[b]),
        }
        for a, b in combinations(sorted(aligned_resampled), 2)
    ]
    point_baseline = (
        agreement["reader_vs_rest"].get("mean") if agreement["reader_vs_rest"] else None
    )
    versus_readers = {}
    if baseline is not None and point_baseline is not None:
        versus_readers = {
            name: _comparison(aligned[name] - point_baseline, aligned_resampled[name] - baseline)
            for name in aligned_resampled
        }
    for family in (comparisons, list(versus_readers.values())):
        for entry, adjusted in zip(family, holm([e["p"] for e in family]), strict=True):
            entry["p_holm"] = adjusted
    return comparisons, versus_readers, point_baseline


def subgroups(
    questions: dict[str, QuestionData], groups: pd.DataFrame | None, metric_names: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per question, by_method and by_acceleration: each metric correlated within each label,
    on that question's resamples.

    Label by label and metric by metric across the questions: a metric's ranks within a label
    serve every question that has the same resamples and rows, and a question's mean-score
    ranks within a label serve every metric. Built per question and metric instead, the
    subgroups took 4.4 s of a 12 s dashboard refresh at 3,600 reconstructions x 8 metrics x
    4 questions (make bench-study); the values are the same.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {
        q: {f"by_{column}": {} for column in GROUP_COLUMNS} for q in questions
    }
    if groups is None:
        return out
    for column in GROUP_COLUMNS:
        labels = {
            question: groups.reindex(data.units)[column].astype("string").fillna("unknown")
            for question, data in questions.items()
        }
        for label in sorted({str(v) for values in labels.values() for v in values}, key=_in_order):
            members = {
                question: np.flatnonzero(labels[question].to_numpy() == label)
                for question in questions
            }
            present = [question for question in questions if len(members[question])]
            cells: dict[str, dict[str, Any]] = {question: {} for question in present}
            score_ranks: RankCache = {}
            for name in metric_names:
                metric_ranks: RankCache = {}
                for question in present:
                    data = questions[question]
                    rows = data.metric_rows_among(name, members[question])
                    cells[question][name] = data.correlate(
                        name,
                        rows,
                        metric_ranks=metric_ranks,
                        score_ranks=score_ranks,
                        score_key=question,
                    )[0]
            for question in present:
                out[question][f"by_{column}"][label] = cells[question]
    return out


def _in_order(label: str) -> tuple[int, float, str]:
    """Labels that are numbers (accelerations: "2x", "16x") by their value, before the rest
    by their text: 2x, 4x, 16x rather than 16x, 2x, 4x."""
    try:
        return (0, float(label.removesuffix("x")), label)
    except ValueError:
        return (1, 0.0, label)


def extended_block(
    data: QuestionData,
    per_metric: dict[str, Any],
    aligned_resampled: dict[str, np.ndarray],
    agreement: dict[str, Any],
    baseline: np.ndarray | None,
    metric_names: list[str],
) -> dict[str, Any]:
    """The dashboard's additions to one question's block (its subgroups come from
    `subgroups`, for every question at once)."""
    comparisons, versus_readers, point_baseline = _paired_comparisons(
        per_metric, aligned_resampled, agreement, baseline
    )
    baseline_ci = percentile_interval(baseline) if baseline is not None else None
    return {
        "n_scored": int(len(data.units)),
        "readers": data.readers,
        "agreement_reasons": (
            agreement_reasons(data.wide.to_numpy(dtype=float))
            if len(data.readers) >= 2
            else dict.fromkeys(
                ("icc2_1", "icc2_k", "krippendorff_alpha"), "needs at least two readers"
            )
        ),
        "baseline": {
            "mean": point_baseline,
            "ci": list(baseline_ci) if baseline_ci else None,
            "reason": None if point_baseline is not None else "fewer than two readers overlap",
        },
        "comparisons": comparisons,
        "versus_readers": versus_readers,
        # The metrics whose p-values are adjusted together (every pair of them in
        # `comparisons`, each of them in `versus_readers`): the same for the dashboard and
        # `analyze` on any export of the study, since both take the study's stored metrics.
        "holm_family": sorted(aligned_resampled),
        "sample_size": _sample_size_hint(per_metric),
    }
