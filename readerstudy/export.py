"""The study's CSV exports (docs/interfaces.md sections 2-3, and the score audit trail), for researchers only.

Scores: one row per score. Metrics: one row per stored value at the metric's current version
(an older version of the same metric, e.g. before new weights, is not exported).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from django.db.models import Q

from metrics.models import MetricValue
from readerstudy.models import Assignment, Reconstruction, Score, ScoreRevision, Study

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
    "error",
    "computed_at",
]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Neutralise spreadsheet formulas in researcher-supplied text (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _shown(reconstruction: Reconstruction, escape: Callable[[str], str] = safe_text) -> dict:
    """The columns naming a reconstruction: its case, id, method and acceleration."""
    return {
        "case": escape(reconstruction.case.name),
        "reconstruction": reconstruction.public_id,
        "method": escape(reconstruction.method),
        "acceleration": reconstruction.acceleration,
    }


def _reconstructions_by_pk(study: Study, pks: set[int] | None = None) -> dict[int, Reconstruction]:
    """The study's reconstructions (those of `pks`, where given) with their cases, for rows
    that name them by pk."""
    chosen = Reconstruction.objects.filter(case__study=study)
    if pks is not None:
        chosen = chosen.filter(pk__in=pks)
    return {r.pk: r for r in chosen.select_related("case")}


def score_rows(study: Study) -> Iterator[dict]:
    """One row per Likert score (rank and forced-choice answers: ranking_rows)."""
    scores = (
        Score.objects.analysed()
        .filter(assignment__reader__study=study, value__isnull=False)
        .select_related("assignment__reader__user", "assignment__reconstruction__case", "question")
        .order_by(
            "assignment__reader__user__username", "assignment__position", "question__position"
        )
    )
    for score in scores.iterator():
        reconstruction = score.assignment.reconstruction
        assert reconstruction is not None  # a Likert value is about one reconstruction
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


# One row per rank position of a ranking or forced choice (docs/interfaces.md section 3): a
# forced choice is a ranking of two, "no difference" two rows of rank 1. `set` numbers the
# case's comparisons for the question; `position` is the place on the reader's screen, 1
# leftmost (their own random layout).
RANKING_COLUMNS = [
    "study",
    "reader",
    "question",
    "kind",
    "allow_ties",
    "case",
    "set",
    "position",
    "reconstruction",
    "method",
    "acceleration",
    "rank",
    "scored_at",
    "duration_s",
]


def ranking_rows(study: Study) -> Iterator[dict]:
    scores = (
        Score.objects.analysed()
        .filter(assignment__reader__study=study, ranks__isnull=False)
        .select_related("assignment__reader__user", "assignment__comparison__case", "question")
        .order_by("assignment__reader__user__username", "assignment__position")
    )
    reconstructions = _reconstructions_by_pk(study)
    for score in scores.iterator():
        assignment = score.assignment
        assert assignment.comparison is not None and score.ranks is not None
        number = assignment.comparison.number
        for position, (pk, rank) in enumerate(
            zip(assignment.layout, score.ranks, strict=True), start=1
        ):
            reconstruction = reconstructions[pk]
            yield {
                "study": safe_text(study.slug),
                "reader": safe_text(assignment.reader.user.username),
                "question": score.question.key,
                "kind": score.question.kind,
                "allow_ties": score.question.allow_ties,
                **_shown(reconstruction),
                "set": number,
                "position": position,
                "rank": rank,
                "scored_at": score.updated_at.isoformat(),
                "duration_s": round(score.seconds_spent, 3),
            }


# One row per repeat read's answer beside the same reader's first read of the item (Likert:
# the two scores; ranking or forced choice: one row per reconstruction, its rank in each
# read). `items_between` counts the items read in between.
REPEAT_COLUMNS = [
    "study",
    "reader",
    "question",
    "kind",
    "case",
    "set",
    "reconstruction",
    "method",
    "acceleration",
    "first",
    "repeat",
    "first_scored_at",
    "repeat_scored_at",
    "items_between",
]


def repeat_rows(study: Study, *, escape: Callable[[str], str] = safe_text) -> Iterator[dict]:
    """The repeats export; `escape` guards researcher text for a spreadsheet (the dashboard,
    which reads the rows itself, passes str)."""
    repeats = list(
        Assignment.objects.filter(reader__study=study, repeat_of__isnull=False)
        .select_related("reader__user", "repeat_of", "comparison")
        .order_by("reader__user__username", "position")
    )
    answers: dict[int, dict[int, Score]] = defaultdict(dict)  # item, question: answer
    for score in (
        Score.objects.filter(assignment__reader__study=study)
        .filter(Q(assignment__repeat__isnull=False) | Q(assignment__repeat_of__isnull=False))
        .select_related("question")
    ):
        answers[score.assignment_id][score.question_id] = score
    # Only the reconstructions the repeats show: loading the study's every one (3,600 model
    # instances) took a fifth of a second of each dashboard analysis, with no repeats at all.
    shown_pks = {pk for r in repeats for pk in [r.reconstruction_id, *(r.layout or [])]}
    reconstructions = _reconstructions_by_pk(study, shown_pks - {None})
    for repeat in repeats:
        first = repeat.repeat_of
        assert first is not None
        for question, second in answers[repeat.pk].items():
            earlier = answers[first.pk].get(question)
            if earlier is None:
                continue
            common = {
                "study": escape(study.slug),
                "reader": escape(repeat.reader.user.username),
                "question": second.question.key,
                "kind": second.question.kind,
                "first_scored_at": earlier.updated_at.isoformat(),
                "repeat_scored_at": second.updated_at.isoformat(),
                "items_between": repeat.position - first.position - 1,
            }
            shown: list[tuple[int, Any, Any, int | str]]
            if second.ranks is None:
                assert repeat.reconstruction_id is not None
                shown = [(repeat.reconstruction_id, earlier.value, second.value, "")]
            else:
                assert repeat.comparison is not None
                first_ranks = dict(zip(first.layout, earlier.ranks or [], strict=True))
                shown = [
                    (pk, first_ranks[pk], rank, repeat.comparison.number)
                    for pk, rank in sorted(zip(repeat.layout, second.ranks, strict=True))
                ]
            for pk, first_answer, repeat_answer, number in shown:
                reconstruction = reconstructions[pk]
                yield {
                    **common,
                    **_shown(reconstruction, escape),
                    "set": number,
                    "first": first_answer,
                    "repeat": repeat_answer,
                }


# Answers on training cases (never analysed) beside the researcher's reference answer: one
# row per Likert answer, or per place of a ranking or forced choice (`position` 1 leftmost).
TRAINING_COLUMNS = [
    "study",
    "reader",
    "question",
    "kind",
    "case",
    "position",
    "reconstruction",
    "method",
    "acceleration",
    "answer",
    "reference",
    "scored_at",
]


def training_rows(study: Study) -> Iterator[dict]:
    scores = (
        Score.objects.of_training()
        .filter(assignment__reader__study=study)
        .select_related(
            "assignment__reader__user",
            "assignment__reconstruction__case",
            "assignment__comparison__case",
            "question",
        )
        .order_by("assignment__reader__user__username", "assignment__position")
    )
    reconstructions = _reconstructions_by_pk(study)
    for score in scores:
        item = score.assignment
        reference = (item.training_reference() or {}).get("answers", {}).get(score.question.key)
        shown: list[tuple[int, int | str, Any, Any]]
        if score.ranks is None:
            assert item.reconstruction_id is not None
            shown = [(item.reconstruction_id, "", score.value, reference)]
        else:
            references = reference if isinstance(reference, list) else [None] * len(item.layout)
            shown = [
                (pk, place, rank, references[place - 1])
                for place, (pk, rank) in enumerate(zip(item.layout, score.ranks, strict=True), 1)
            ]
        for pk, position, answer, expected in shown:
            reconstruction = reconstructions[pk]
            yield {
                "study": safe_text(study.slug),
                "reader": safe_text(item.reader.user.username),
                "question": score.question.key,
                "kind": score.question.kind,
                **_shown(reconstruction),
                "position": position,
                "answer": answer,
                "reference": "" if expected is None else expected,
                "scored_at": score.updated_at.isoformat(),
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
            "score__assignment__comparison__case",
        )
        .order_by("-recorded_at", "-pk")
    )
    edits = Q(previous_value__isnull=False) | Q(previous_ranks__isnull=False)
    return revisions.filter(edits) if edits_only else revisions


def history_rows(study: Study) -> Iterator[dict]:
    """The audit trail. A ranking's row names the reconstructions in the reader's layout order
    (space-separated public ids, methods, accelerations) and its values are the ranks in that
    order ("2 1 3")."""
    reconstructions = Reconstruction.objects.filter(case__study=study).in_bulk()
    for revision in score_history(study).iterator():
        assignment = revision.score.assignment
        if assignment.reconstruction is not None:
            reconstruction = assignment.reconstruction
            shown = {
                "case": safe_text(reconstruction.case.name),
                "reconstruction": reconstruction.public_id,
                "method": safe_text(reconstruction.method),
                "acceleration": reconstruction.acceleration,
                "previous_value": revision.previous_value,
                "value": revision.value,
            }
        else:
            assert assignment.comparison is not None
            layout = [reconstructions[pk] for pk in assignment.layout]
            shown = {
                "case": safe_text(assignment.comparison.case.name),
                "reconstruction": " ".join(r.public_id for r in layout),
                "method": safe_text(" ".join(r.method for r in layout)),
                "acceleration": " ".join(f"{r.acceleration:g}" for r in layout),
                "previous_value": _ranks_text(revision.previous_ranks),
                "value": _ranks_text(revision.ranks),
            }
        yield {
            "study": safe_text(study.slug),
            "reader": safe_text(assignment.reader.user.username),
            **shown,
            "question": revision.score.question.key,
            "recorded_at": revision.recorded_at.isoformat(),
            "recorded_by": safe_text(
                revision.recorded_by.username if revision.recorded_by else ""
            ),
        }


def _ranks_text(ranks: list[int] | None) -> str:
    return "" if ranks is None else " ".join(map(str, ranks))


def metric_rows(study: Study) -> Iterator[dict]:
    """Every current value of the study, and every failure as a row with an empty value and
    its reason in `error` (which `analyze` reports as excluded)."""
    values = (
        MetricValue.objects.current()
        .filter(reconstruction__case__study=study)
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
            "value": "" if value.value is None else repr(value.value),
            "error": safe_text(value.error),
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
