"""What the dashboard reads from the database: a study's Likert scores, rank and forced-choice
answers, current metric values and reconstructions in the statistics engine's long format, and
the data version that says when any of them, or a label shown with them, has changed.

The data version is a digest of counts and last-change times of the study's scores, current
metric values and readers, and of the labels themselves. It is cheap (three aggregate queries
and the labels), it changes whenever a score is saved or changed and whenever a metric value
arrives, and it is the dashboard API's ETag: a poll with an unchanged version is answered 304
without touching the statistics (readerstudy.dashboard).
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
from django.conf import settings
from django.db.models import CharField, Count, Max
from django.db.models.functions import Cast

from readerstudy.metric_status import current_metric_changes, current_metric_values
from readerstudy.models import Reconstruction, Score, Study


def data_version(study: Study) -> str:
    labels, questions = _labels_digest(study)
    # A score's question is its study's: filtered on the question ids, this reads one index
    # (half a millisecond for 4,000 scores) where a join through the study's assignments and
    # readers walked every assignment (21 ms), on every poll of every open dashboard.
    scores = Score.objects.filter(question__in=questions).aggregate(
        n=Count("pk"), last=Max("updated_at")
    )
    names, metric_values, metrics_last = current_metric_changes(study)
    parts = [
        study.pk,
        scores["n"],
        scores["last"],
        metric_values,
        metrics_last,
        ",".join(names),
        settings.DASHBOARD_BOOTSTRAP,
        labels,
    ]
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20]


def _labels_digest(study: Study) -> tuple[str, list[int]]:
    """A digest of everything the dashboard labels with, as it is now: each reconstruction's
    case, method and acceleration, the questions and the readers; and the question ids. An
    edit in the admin changes no count and no score time, so the version must see the labels
    themselves (one query each, a few milliseconds for thousands of reconstructions)."""
    digest = hashlib.sha256()
    questions = list(study.questions.order_by("pk").values_list("pk", "key", "label", "position"))
    for rows in (
        Reconstruction.objects.filter(case__study=study)
        .order_by("pk")
        .values_list("pk", "case_id", "case__name", "method", "acceleration"),
        questions,
        study.readers.order_by("pk").values_list("pk", "user__username"),
        [(study.title,)],
    ):
        for row in rows:
            digest.update(repr(row).encode())
        digest.update(b"\0")
    return digest.hexdigest(), [row[0] for row in questions]


def ranking_frame(study: Study) -> pd.DataFrame:
    """The study's rank and forced-choice answers in the rankings export's long format (one
    row per rank position; metrics.stats.preference reads it)."""
    public = dict(Reconstruction.objects.filter(case__study=study).values_list("pk", "public_id"))
    rows = []
    for reader, question, kind, allow_ties, case, number, layout, ranks in (
        Score.objects.analysed()
        .filter(assignment__reader__study=study, ranks__isnull=False)
        .values_list(
            "assignment__reader__user__username",
            "question__key",
            "question__kind",
            "question__allow_ties",
            "assignment__comparison__case__name",
            "assignment__comparison__number",
            "assignment__layout",
            "ranks",
        )
        .iterator()
    ):
        for pk, rank in zip(layout, ranks or [], strict=True):
            rows.append((reader, question, kind, allow_ties, case, str(number), public[pk], rank))
    return pd.DataFrame(
        rows,
        columns=[
            "reader",
            "question",
            "kind",
            "allow_ties",
            "case",
            "set",
            "reconstruction",
            "rank",
        ],
    )


def study_frames(study: Study) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(Likert scores, metrics, reconstructions) in the statistics engine's long format; the
    metrics include each failure, with a NaN value and its `error`."""
    # The answer times as the database's text, parsed by the drift analysis in one vectorised
    # call: Django's per-row datetime conversion took 0.7 s for 144,000 scores on SQLite.
    # Readers, reconstructions and questions as ids, named from three small tables: joining
    # their names into 144,000 rows took a third of the read.
    scores = pd.DataFrame.from_records(
        Score.objects.analysed()
        .filter(assignment__reader__study=study, value__isnull=False)
        .annotate(answered_text=Cast("created_at", CharField()))
        .values_list(
            "assignment__reader_id",
            "assignment__reconstruction_id",
            "question_id",
            "value",
            "answered_text",
        ),
        columns=["reader", "reconstruction", "question", "score", "answered_at"],
    )
    for column, names in (
        ("reader", study.readers.values_list("pk", "user__username")),
        (
            "reconstruction",
            Reconstruction.objects.filter(case__study=study).values_list("pk", "public_id"),
        ),
        ("question", study.questions.values_list("pk", "key")),
    ):
        scores[column] = scores[column].map(dict(names))
    _, values = current_metric_values(study)
    # Failures too (value NaN, `error` its reason): the analysis reports them as excluded.
    metrics = pd.DataFrame.from_records(
        values.values_list("reconstruction__public_id", "metric", "value", "error"),
        columns=["reconstruction", "metric", "value", "error"],
    )
    metrics["value"] = metrics["value"].astype(float)
    reconstructions = pd.DataFrame.from_records(
        Reconstruction.objects.filter(case__study=study, case__training=False).values_list(
            "public_id", "case__name", "method", "acceleration"
        ),
        columns=["reconstruction", "case", "method", "acceleration"],
    )
    reconstructions["acceleration"] = reconstructions["acceleration"].map(_acceleration_label)
    return scores, metrics, reconstructions


def _acceleration_label(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return f"{value:g}x"
