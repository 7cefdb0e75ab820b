"""The dashboard's payload: a study's data (readerstudy.dashboard_data) handed to the
statistics engine (`metrics.stats.analysis`), with the points behind the scatter plots and each
reader's progress, built in a low-priority thread (by a worker: readerstudy.dashboard_store
queues, stores and serves it); and the metric table as CSV rows.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.utils import timezone
from threadpoolctl import threadpool_limits

from metrics.polarity import registry_polarity
from metrics.stats.analysis import AnalysisInputError, analyze, ranked_metrics
from metrics.stats.preference import preference_analysis
from metrics.stats.reliability import drift_analysis, repeat_agreement
from readerstudy.dashboard_data import ranking_frame, study_frames
from readerstudy.export import REPEAT_COLUMNS, repeat_rows, safe_text
from readerstudy.models import Study


def _points(scores: pd.DataFrame, metrics: pd.DataFrame, recons: pd.DataFrame) -> dict:
    """The scatter plots' data, column by column: each scored reconstruction once (its case,
    method, acceleration and every metric value), and per question the reconstructions it
    has, as indices into those columns, with their mean score and number of readers.

    A metric missing for a reconstruction is null; an infinite one is null too and its index
    is listed under `infinite`. Written point by point with the reconstruction's labels and
    metrics repeated for every question, 3,600 reconstructions x 4 questions x 8 metrics
    were 6 MB of JSON per dashboard poll; columns once are a sixth of that."""
    wide = metrics.pivot_table(
        index="reconstruction", columns="metric", values="value", aggfunc="mean"
    )
    scored = pd.Index(sorted(scores["reconstruction"].unique()), name="reconstruction")
    info = recons.drop_duplicates("reconstruction").set_index("reconstruction").reindex(scored)
    values = wide.reindex(scored).to_numpy(dtype=float)
    finite, infinite = np.isfinite(values), np.isinf(values)
    columns = {"reconstruction": scored.tolist()}
    for column in ("case", "method", "acceleration"):
        labels = info[column].astype(object)
        columns[column] = labels.where(labels.notna(), None).tolist()
    per_question = {}
    for question, rows in scores.groupby("question"):
        summary = rows.groupby("reconstruction")["score"].agg(["mean", "count"])
        per_question[str(question)] = {
            "index": scored.get_indexer(summary.index).tolist(),
            "mean_score": summary["mean"].astype(float).tolist(),
            "readers": summary["count"].astype(int).tolist(),
        }
    return {
        "reconstructions": columns,
        "metrics": {
            str(name): [
                value if is_finite else None
                for value, is_finite in zip(
                    values[:, k].tolist(), finite[:, k].tolist(), strict=True
                )
            ]
            for k, name in enumerate(wide.columns)
        },
        "infinite": {
            str(name): np.flatnonzero(infinite[:, k]).tolist()
            for k, name in enumerate(wide.columns)
            if infinite[:, k].any()
        },
        "questions": per_question,
    }


def _progress(
    study: Study, scores: pd.DataFrame, rankings: pd.DataFrame, n_reconstructions: int
) -> dict:
    """Reconstructions scored (or ranked, or chosen between) per question, and each reader's
    items done and assigned (their ReadingOrder, the rule the reading room follows)."""
    questions = list(study.questions.all())
    scored: dict[str, int] = {}
    for answers in (scores, rankings):
        if len(answers):
            per_question = answers.groupby("question")["reconstruction"].nunique()
            scored |= {str(key): int(n) for key, n in per_question.items()}
    readers = study.readers.select_related("user")
    orders = readers.reading_orders()
    return {
        "reconstructions": n_reconstructions,
        "scored": {q.key: int(scored.get(q.key, 0)) for q in questions},
        "readers": [
            {
                "reader": reader.user.username,
                "done": orders[reader.pk].done,
                "total": orders[reader.pk].total,
            }
            for reader in readers
        ],
    }


def skeleton(study: Study, **fields) -> dict:
    """Every field of the dashboard's payload, with nothing analysed, and `fields` set."""
    return {
        "study": study.slug,
        "version": None,
        "computed_at": None,
        "questions": [
            {"key": q.key, "label": q.label, "kind": q.kind} for q in study.questions.all()
        ],
        "metrics": [],
        "progress": None,
        "analysis": None,
        "preferences": {},
        "repeats": {},
        "drift": {},
        "reason": None,
        "points": {},
        "failures": [],
        **fields,
    }


def build_payload(study: Study, version: str) -> dict:
    scores, every_metric_row, recons = study_frames(study)
    metrics = every_metric_row[every_metric_row["value"].notna()]
    rankings = ranking_frame(study)
    repeats = pd.DataFrame(list(repeat_rows(study, escape=str)), columns=REPEAT_COLUMNS)
    payload = skeleton(
        study,
        version=version,
        computed_at=timezone.now().isoformat(),
        metrics=sorted(metrics["metric"].unique().tolist()),
        progress=_progress(study, scores, rankings, len(recons)),
        failures=_failures(every_metric_row),
    )
    if scores.empty and rankings.empty:
        payload["reason"] = "No scores yet: the analysis starts with the first scored image."
    elif metrics.empty:
        payload["reason"] = "No metric values yet: the workers have not stored any."
    else:
        payload.update(run_at_low_priority(_analysis, scores, every_metric_row, recons, rankings))
    if len(scores) or len(repeats):
        payload.update(run_at_low_priority(_reliability, scores, repeats))
    return payload


def _failures(metrics: pd.DataFrame) -> list[dict]:
    """Per metric that failed somewhere: on how many reconstructions, and the commonest reason."""
    failed = metrics[metrics["error"] != ""]
    return [
        {
            "metric": str(name),
            "reconstructions": len(group),
            "reason": str(group["error"].mode().iloc[0]),
        }
        for name, group in failed.groupby("metric", sort=True)
    ]


def _analysis(
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    recons: pd.DataFrame,
    rankings: pd.DataFrame,
) -> dict:
    """The statistics and the scatter points (pure computation: no database here). `metrics`
    holds the failures too (NaN values): `analyze` reports them as excluded."""
    computed = metrics[metrics["value"].notna()]
    out: dict[str, Any] = {"points": _points(scores, computed, recons) if len(scores) else {}}
    if len(rankings):
        names = computed["metric"].unique()
        out["preferences"] = preference_analysis(
            rankings,
            computed,
            {name: registry_polarity(name) for name in names},
            bootstrap=settings.DASHBOARD_BOOTSTRAP,
            seed=0,
        )
    if scores.empty:
        return out
    try:
        out["analysis"] = analyze(
            scores,
            metrics,
            bootstrap=settings.DASHBOARD_BOOTSTRAP,
            seed=0,
            groups=recons[["reconstruction", "method", "acceleration"]],
            extended=True,
            cases=recons[["reconstruction", "case"]],
        )
    except AnalysisInputError as error:
        out["reason"] = str(error)
    return out


def _reliability(scores: pd.DataFrame, repeats: pd.DataFrame) -> dict:
    """Each reader against their own repeat reads, and their drift (metrics not needed)."""
    return {
        "repeats": repeat_agreement(repeats, scores) if len(repeats) else {},
        "drift": drift_analysis(scores) if len(scores) else {},
    }


def _lower_this_threads_priority() -> None:
    # On Linux the nice value belongs to each thread; elsewhere this thread keeps the
    # process's priority (and a process already nicer than this stays as it is).
    with contextlib.suppress(AttributeError, OSError):
        native_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, native_id)
        os.setpriority(os.PRIO_PROCESS, native_id, max(current, settings.DASHBOARD_ANALYSIS_NICE))


# One analysis thread per process, started on first use (so none exists when gunicorn forks).
_analysis_thread = ThreadPoolExecutor(
    max_workers=1,
    thread_name_prefix="dashboard-analysis",
    initializer=_lower_this_threads_priority,
)


def run_at_low_priority(function, *args):
    """`function(*args)` in this process's analysis thread: at DASHBOARD_ANALYSIS_NICE and
    with single-threaded BLAS, so that a bootstrap on a machine shared with web workers takes
    only CPU that readers' requests leave over (bench-load: it held a core for over a second
    per refresh). The caller waits for the result; exceptions come back to it."""

    def limited():
        # Threaded BLAS is no faster on a few cores for these small matrices (measured), and
        # its threads would run at normal priority.
        with threadpool_limits(limits=1):
            return function(*args)

    return _analysis_thread.submit(limited).result()


TABLE_COLUMNS = [
    "question",
    "metric",
    "n",
    "polarity",
    "aligned_spearman",
    "aligned_ci_low",
    "aligned_ci_high",
    "spearman",
    "ci_low",
    "ci_high",
    "kendall",
    "pearson",
    "minus_readers",
    "minus_readers_ci_low",
    "minus_readers_ci_high",
    "minus_readers_p",
    "minus_readers_p_holm",
    "resampling",
    "reason",
]


def table_rows(payload: dict):
    """The metric table of every question, best first by aligned Spearman, as CSV rows."""
    analysis = payload.get("analysis") or {"questions": {}}
    for question, block in analysis["questions"].items():
        for name, row in ranked_metrics(block["metrics"]):
            versus = block["versus_readers"].get(name) or {}
            ci = row["spearman_ci"] or [None, None]
            aligned_ci = row["aligned_spearman_ci"] or [None, None]
            versus_ci = versus.get("ci") or [None, None]
            yield {
                "question": safe_text(question),
                "metric": name,
                "n": row["n"],
                "polarity": row["polarity"],
                "aligned_spearman": row["aligned_spearman"],
                "aligned_ci_low": aligned_ci[0],
                "aligned_ci_high": aligned_ci[1],
                "spearman": row["spearman"],
                "ci_low": ci[0],
                "ci_high": ci[1],
                "kendall": row["kendall"],
                "pearson": row["pearson"],
                "minus_readers": versus.get("difference"),
                "minus_readers_ci_low": versus_ci[0],
                "minus_readers_ci_high": versus_ci[1],
                "minus_readers_p": versus.get("p"),
                "minus_readers_p_holm": versus.get("p_holm"),
                "resampling": analysis.get("resampling", ""),
                "reason": row.get("reason") or row.get("aligned_spearman_reason") or "",
            }
