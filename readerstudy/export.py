"""The study's CSV exports (docs/interfaces.md sections 2-3, and the score audit trail), for researchers only.

Scores: one row per score. Metrics: one row per stored value at the metric's current version
(an older version of the same metric, e.g. before new weights, is not exported).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Protocol

from metrics.models import MetricValue
from readerstudy.models import Score, ScoreRevision, Study

# Which reader's answer to which question about which reconstruction (method shown: these
# files are for researchers only).
_ANSWER_COLUMNS = [
    "study",
    "reader",
    "case",
    "reconstruction",
    "method",
    "acceleration",
    "question",
]
SCORE_COLUMNS = [*_ANSWER_COLUMNS, "score", "scored_at", "duration_s"]
METRIC_COLUMNS = [
    "study",
    "case",
    "reconstruction",
    "method",
    "acceleration",
    "metric",
    "value",
    "computed_at",
]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Neutralise spreadsheet formulas in researcher-supplied text (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def score_rows(study: Study) -> Iterator[dict]:
    scores = (
        Score.objects.filter(assignment__reader__study=study)
        .select_related("assignment__reader__user", "assignment__reconstruction__case", "question")
        .order_by(
            "assignment__reader__user__username", "assignment__position", "question__position"
        )
    )
    for score in scores.iterator():
        reconstruction = score.assignment.reconstruction
        yield {
            "study": safe_text(study.slug),
            "reader": safe_text(score.assignment.reader.user.username),
            "case": safe_text(reconstruction.case.name),
            "reconstruction": reconstruction.public_id,
            "method": safe_text(reconstruction.method),
            "acceleration": reconstruction.acceleration,
            "question": score.question.key,
            "score": score.value,
            "scored_at": score.updated_at.isoformat(),
            "duration_s": round(score.seconds_spent, 3),
        }


HISTORY_COLUMNS = [*_ANSWER_COLUMNS, "previous_value", "value", "recorded_at", "recorded_by"]


def score_history(study: Study, *, edits_only: bool = False):
    """The study's audit trail, newest first: every value every score has had."""
    revisions = (
        ScoreRevision.objects.filter(score__assignment__reader__study=study)
        .select_related(
            "recorded_by",
            "score__question",
            "score__assignment__reader__user",
            "score__assignment__reconstruction__case",
        )
        .order_by("-recorded_at", "-pk")
    )
    return revisions.filter(previous_value__isnull=False) if edits_only else revisions


def history_rows(study: Study) -> Iterator[dict]:
    for revision in score_history(study).iterator():
        assignment = revision.score.assignment
        reconstruction = assignment.reconstruction
        yield {
            "study": safe_text(study.slug),
            "reader": safe_text(assignment.reader.user.username),
            "case": safe_text(reconstruction.case.name),
            "reconstruction": reconstruction.public_id,
            "method": safe_text(reconstruction.method),
            "acceleration": reconstruction.acceleration,
            "question": revision.score.question.key,
            "previous_value": revision.previous_value,
            "value": revision.value,
            "recorded_at": revision.recorded_at.isoformat(),
            "recorded_by": safe_text(
                revision.recorded_by.username if revision.recorded_by else ""
            ),
        }


def metric_rows(study: Study) -> Iterator[dict]:
    values = (
        MetricValue.objects.current()
        .filter(reconstruction__case__study=study, value__isnull=False)
        .select_related("reconstruction__case")
        .order_by("reconstruction__case__name", "reconstruction__pk", "metric")
    )
    for value in values.iterator():
        reconstruction = value.reconstruction
        yield {
            "study": safe_text(study.slug),
            "case": safe_text(reconstruction.case.name),
            "reconstruction": reconstruction.public_id,
            "method": safe_text(reconstruction.method),
            "acceleration": reconstruction.acceleration,
            "metric": value.metric,
            "value": repr(value.value),
            "computed_at": value.computed_at.isoformat(),
        }


class TextSink(Protocol):
    """Where CSV text goes: an open file, or an HttpResponse."""

    def write(self, text: str, /) -> object: ...


def write_csv(rows: Iterable[dict], columns: list[str], handle: TextSink) -> int:
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count
