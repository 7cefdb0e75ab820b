"""What readers do: their memberships, their own order of items, and their scores with
every revision."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Count, Q

from readerstudy.models.studies import (
    Case,
    Comparison,
    Question,
    Reconstruction,
    Study,
    new_public_id,
)


@dataclass(frozen=True)
class ReadingOrder:
    """One reader's items in their order with the answers each has: the one rule for a
    reader's progress and for which item comes next."""

    # (assignment pk, public id, answers stored, whether it compares reconstructions)
    items: list[tuple[int, str, int, bool]]
    questions: int  # Likert questions: each is asked of every single-reconstruction item

    @property
    def answers_needed(self) -> int:
        """A single reconstruction is done when every Likert question is answered."""
        return max(self.questions, 1)

    def is_done(self, index: int) -> bool:
        """A comparison has one question, its own; a reconstruction has the Likert ones."""
        _, _, answered, compares = self.items[index]
        return answered >= (1 if compares else self.answers_needed)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def done(self) -> int:
        return sum(self.is_done(i) for i in range(len(self.items)))

    def next_index(self) -> int | None:
        """Where the first item with an unanswered question is; None when all are done."""
        return next((i for i in range(len(self.items)) if not self.is_done(i)), None)


def _items_by_reader(readers: list[int]) -> dict[int, list[tuple[int, str, int, bool]]]:
    """(assignment pk, public id, answers stored, compares) of each reader's items, in order."""
    items: dict[int, list[tuple[int, str, int, bool]]] = defaultdict(list)
    if not readers:
        return items
    # Every next-item request runs this over the reader's whole order, so it is written as
    # SQL: the ORM's version (the same subquery) took 1.5 ms to build and read 237 rows
    # against 0.5 ms. Each item's answers are counted through the (assignment, question)
    # index; a join and GROUP BY made PostgreSQL hash the study's whole score table.
    placeholders = ", ".join(["%s"] * len(readers))
    query = (
        f"SELECT a.reader_id, a.id, a.public_id, a.comparison_id,"
        f" (SELECT COUNT(*) FROM {Score._meta.db_table} s WHERE s.assignment_id = a.id)"
        f" FROM {Assignment._meta.db_table} a WHERE a.reader_id IN ({placeholders})"
        " ORDER BY a.reader_id, a.position"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, readers)
        for reader, pk, public_id, comparison, answered in cursor.fetchall():
            items[reader].append((pk, public_id, answered, comparison is not None))
    return items


def _likert_counts(studies) -> dict[int, int]:
    return dict(
        Question.objects.filter(study__in=studies, kind=Question.Kind.LIKERT)
        .order_by()
        .values("study")
        .annotate(n=Count("pk"))
        .values_list("study", "n")
    )


class ReaderQuerySet(models.QuerySet):
    def of_user(self, user) -> ReaderQuerySet:
        """`user`'s memberships of studies that are no longer drafts (a draft is not read),
        except those a researcher removed them from."""
        return self.filter(user=user, removed_at__isnull=True).exclude(
            study__status=Study.Status.DRAFT
        )

    def of_drafts_for(self, user) -> ReaderQuerySet:
        """`user`'s memberships of studies still in draft: theirs, not readable yet."""
        return self.filter(user=user, removed_at__isnull=True, study__status=Study.Status.DRAFT)

    def reading_orders(self) -> dict[int, ReadingOrder]:
        """Each reader's ReadingOrder by reader pk, in three queries however many readers."""
        studies = dict(self.values_list("pk", "study_id"))
        questions = _likert_counts(set(studies.values()))
        items = _items_by_reader(list(studies))
        return {
            reader: ReadingOrder(items[reader], questions.get(study, 0))
            for reader, study in studies.items()
        }


class Reader(models.Model):
    """A user's membership of a study as a reader."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="readers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader_memberships"
    )
    joined_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a researcher removed this reader: they read no more, their scores stay",
    )

    objects = ReaderQuerySet.as_manager()

    class Meta:
        ordering = ["study", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="unique_reader_per_study"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.study.slug}"

    def reading_order(self, questions: int | None = None) -> ReadingOrder:
        """This reader's ReadingOrder; `questions`: the study's Likert question count, when
        the caller has it (the next-item request, every reader's per image, then costs one
        query)."""
        if questions is None:
            questions = _likert_counts([self.study_id]).get(self.study_id, 0)
        return ReadingOrder(_items_by_reader([self.pk])[self.pk], questions)

    def progress(self) -> tuple[int, int]:
        """(items with every question answered, items assigned)."""
        order = self.reading_order()
        return order.done, order.total

    def extend_order(self, rng: np.random.Generator | None = None) -> int:
        """Give this reader every item of the study they do not have yet, training items
        first, and the study's share of repeat reads; returns how many items were added
        (readerstudy.models.ordering, which says how the order is drawn)."""
        from readerstudy.models.ordering import extend_order

        return extend_order(self, rng)


# What an item shows, by kind: a reconstruction with its case, or a comparison with its
# question and case. An item of known kind reads only its own (half the joins).
RECONSTRUCTION_RELATIONS = ("reconstruction__case",)
COMPARISON_RELATIONS = ("comparison__question", "comparison__case")
ITEM_RELATIONS = RECONSTRUCTION_RELATIONS + COMPARISON_RELATIONS


class AssignmentQuerySet(models.QuerySet):
    def for_scoring(self) -> AssignmentQuerySet:
        """Items with what scoring one reads (the study, the case, a comparison's question),
        each row locked until the transaction ends: two tabs saving the same item at once
        are serialised, not interleaved (Assignment.save_scores with `locked`)."""
        return self.select_related("reader__study", *ITEM_RELATIONS).select_for_update(
            of=("self",)
        )

    def of_reader(self, user) -> AssignmentQuerySet:
        """The items `user` may open: those of their memberships (`Reader.objects.of_user`),
        as conditions on the joined rows rather than a subquery (a semi-join that took
        PostgreSQL 3 ms to plan on every submission)."""
        return self.filter(reader__user=user, reader__removed_at__isnull=True).exclude(
            reader__study__status=Study.Status.DRAFT
        )


# The reading room's viewer tools a save reports the use of (Assignment.view_actions).
VIEW_ACTIONS = ("zoom", "pan", "window", "one_to_one", "flicker", "reset", "solo", "magnifier")


class Assignment(models.Model):
    """An item at its place in one reader's own random order: a reconstruction to score, or a
    comparison (several reconstructions of a case) to rank or choose between.

    `public_id` is what the reader's browser sees: random and per reader, so two readers
    cannot tell from URLs that they are looking at the same image. A comparison's images are
    addressed by their place in `layout`, this reader's left-to-right order, never by id.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="assignments")
    reconstruction = models.ForeignKey(
        Reconstruction,
        on_delete=models.CASCADE,
        related_name="assignments",
        null=True,
        blank=True,
    )
    comparison = models.ForeignKey(
        Comparison, on_delete=models.CASCADE, related_name="assignments", null=True, blank=True
    )
    layout = models.JSONField(
        default=list,
        blank=True,
        help_text="A comparison's reconstruction pks in this reader's left-to-right order",
    )
    position = models.PositiveIntegerField()
    view_actions = models.JSONField(
        default=dict,
        blank=True,
        help_text="How often the reader used each viewer tool on this item (VIEW_ACTIONS), "
        "summed over their saves",
    )
    repeat_of = models.OneToOneField(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="repeat",
        help_text="The first read of the same item, when this is its repeat read (shown later "
        "under its own id; analysed for intra-reader agreement only)",
    )

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["reader", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "reconstruction"],
                condition=Q(repeat_of__isnull=True),
                name="unique_reconstruction_per_reader",
            ),
            models.UniqueConstraint(
                fields=["reader", "position"], name="unique_position_per_reader"
            ),
            models.UniqueConstraint(
                fields=["reader", "comparison"],
                condition=Q(repeat_of__isnull=True),
                name="unique_comparison_per_reader",
            ),
            models.CheckConstraint(
                condition=Q(reconstruction__isnull=True) ^ Q(comparison__isnull=True),
                name="assignment_is_one_kind_of_item",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reader.user} #{self.position}"

    @property
    def case(self) -> Case:
        shown = self.comparison or self.reconstruction
        assert shown is not None  # the check constraint: one or the other
        return shown.case

    def training_reference(self) -> dict[str, object] | None:
        """For an item of a training case, the researcher's answers as this reader answers
        ({question key: value, or ranks in this item's layout}) and the case's note; None for
        a study item. A question without a reference answer is left out."""
        case = self.case
        if not case.training:
            return None
        answers: dict[str, object] = {}
        if self.comparison is not None:
            question = self.comparison.question
            given = {
                shown.pk: shown.reference_answer(question)
                for shown in Reconstruction.objects.filter(pk__in=self.layout)
            }
            values = [given.get(pk) for pk in self.layout]
            known = [v for v in values if v is not None]
            if len(known) == len(values):
                # Its rank among the images shown: 1 + how many the researcher put before it.
                answers[question.key] = [1 + sum(o < v for o in known) for v in known]
        else:
            assert self.reconstruction is not None
            for question in self.reader.study.questions.likert():
                value = self.reconstruction.reference_answer(question)
                if value is not None:
                    answers[question.key] = value
        return {"answers": answers, "note": case.training_note}

    def _check_answers(self, values: dict[str, object]) -> dict[str, Question]:
        """The questions this item asks by key, once `values` are found fit to store (else
        ValidationError naming each bad answer). A reconstruction is asked the study's Likert
        questions (a whole number on the scale each); a comparison its own rank or
        forced-choice question (a list of ranks in layout order, Question.ranks_problem)."""
        study = self.reader.study
        if study.status != Study.Status.OPEN:
            raise ValidationError(
                f"the study is {study.get_status_display().lower()}: scores are not accepted"
            )
        if self.comparison is not None:
            asked = [self.comparison.question]
        else:
            asked = list(study.questions.likert())
        questions = {q.key: q for q in asked}
        errors = {}
        for key, value in values.items():
            question = questions.get(key)
            if question is None:
                # Compared in Python, not in a query: a key is the client's text, and
                # PostgreSQL refuses a NUL byte in one (the fuzzers found a 500 there).
                known = key in study.questions.values_list("key", flat=True)
                errors[key] = (
                    f"{'not asked of this item' if known else 'not a question of this study'}"
                    f" (expected one of {', '.join(questions)})"
                )
            elif question.compares:
                problem = question.ranks_problem(value, len(self.layout))
                if problem:
                    errors[key] = problem
            elif isinstance(value, bool) or not isinstance(value, int):
                errors[key] = "must be a whole number"
            elif not question.scale_min <= value <= question.scale_max:
                errors[key] = f"must be between {question.scale_min} and {question.scale_max}"
        if errors:
            raise ValidationError(errors)
        return questions

    def save_scores(
        self,
        values: dict[str, object],
        *,
        seconds_spent: float = 0.0,
        by=None,
        locked=False,
        view_actions: dict[str, int] | None = None,
    ) -> list[Score]:
        """Store this reader's answers; idempotent, and every change is kept as a revision
        (who, when, old and new value: the audit trail). `by` is the signed-in user, the
        item's reader unless given. `locked`: the caller read this item with
        `AssignmentQuerySet.for_scoring` in the transaction it calls this in. `view_actions`
        (VIEW_ACTIONS: counts) are added to the item's own.

        Raises:
            django.core.exceptions.ValidationError: the study is not open, a question is not
                the study's, or a value is outside its scale. Nothing is stored then.
        """
        if locked:
            # Already in the caller's transaction: no savepoint (two more round trips).
            assert transaction.get_connection().in_atomic_block, "locked needs a transaction"
            return self._save_locked(values, seconds_spent, by, view_actions)
        with transaction.atomic():
            # Lock this item's row so two tabs saving at once are serialised, not interleaved.
            Assignment.objects.select_for_update().filter(pk=self.pk).order_by().first()
            return self._save_locked(values, seconds_spent, by, view_actions)

    def _save_locked(
        self,
        values: dict[str, object],
        seconds_spent: float,
        by,
        view_actions: dict[str, int] | None = None,
    ) -> list[Score]:
        questions = self._check_answers(values)
        by = by if by is not None else self.reader.user
        # One read of this item's scores and two bulk inserts instead of a get_or_create per
        # question: the row lock above already serialises writers of this item.
        existing = {
            score.question_id: score
            for score in Score.objects.filter(
                assignment=self, question__in=[questions[key] for key in values]
            )
        }
        saved: list[Score] = []
        created: list[Score] = []
        revisions: list[tuple[Score, int | None, list[int] | None]] = []
        for key, answer in values.items():
            question = questions[key]
            # A Likert answer is a value, a rank or choice answer a list of ranks.
            value, ranks = (None, answer) if question.compares else (answer, None)
            assert value is None or isinstance(value, int)  # _check_answers
            score = existing.get(question.pk)
            if score is None:
                score = Score(
                    assignment=self,
                    question=question,
                    value=value,
                    ranks=ranks,
                    seconds_spent=seconds_spent,
                )
                created.append(score)
                revisions.append((score, None, None))
            else:
                score.question = question  # already loaded: callers read score.question.key
                if (score.value, score.ranks) != (value, ranks):  # identical: not an edit
                    revisions.append((score, score.value, score.ranks))
                    score.value, score.ranks = value, ranks
                    score.seconds_spent += seconds_spent
                    score.save(update_fields=["value", "ranks", "seconds_spent", "updated_at"])
            saved.append(score)
        Score.objects.bulk_create(created)
        ScoreRevision.objects.bulk_create(
            ScoreRevision(
                score=score,
                previous_value=previous_value,
                value=score.value,
                previous_ranks=previous_ranks,
                ranks=score.ranks,
                seconds_spent=seconds_spent,
                recorded_by=by,
            )
            for score, previous_value, previous_ranks in revisions
        )
        if view_actions:  # a query only where a tool was used
            merged = {**self.view_actions}
            for name, count in view_actions.items():
                if count:
                    merged[name] = merged.get(name, 0) + count
            if merged != self.view_actions:
                Assignment.objects.filter(pk=self.pk).update(view_actions=merged)
                self.view_actions = merged
        return saved


class ScoreQuerySet(models.QuerySet):
    def analysed(self) -> ScoreQuerySet:
        """What the analysis and the scores and rankings exports hold: first reads of study
        cases. A repeat read is for intra-reader agreement only, a training case for
        training only."""
        return self.filter(assignment__repeat_of__isnull=True).filter(
            Q(assignment__reconstruction__case__training=False)
            | Q(assignment__comparison__case__training=False)
        )

    def of_training(self) -> ScoreQuerySet:
        return self.filter(
            Q(assignment__reconstruction__case__training=True)
            | Q(assignment__comparison__case__training=True)
        )


class Score(models.Model):
    """A reader's answer to one question about one item: a Likert `value` for a
    reconstruction, or `ranks` for a comparison (one per reconstruction in the item's
    layout order, 1 best; a forced choice is a ranking of two, [1, 1] "no difference")."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="scores")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="scores")
    value = models.PositiveSmallIntegerField(null=True, blank=True)
    ranks = models.JSONField(null=True, blank=True)
    seconds_spent = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScoreQuerySet.as_manager()

    class Meta:
        constraints = [
            # A double submit (two tabs, a retried request) can never create a second score.
            models.UniqueConstraint(
                fields=["assignment", "question"], name="one_score_per_question_and_item"
            ),
            models.CheckConstraint(
                condition=Q(value__isnull=True) ^ Q(ranks__isnull=True),
                name="score_is_a_value_or_ranks",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question.key}={self.value if self.ranks is None else self.ranks}"


class ScoreRevision(models.Model):
    """Every value a score has had: the audit trail of a reader changing their mind.

    Written only by `Assignment.save_scores` (the admin shows scores read-only), so the trail
    is complete: the first answer has no previous value, each edit names the old and new one.
    """

    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="revisions")
    previous_value = models.PositiveSmallIntegerField(null=True, blank=True)
    value = models.PositiveSmallIntegerField(null=True, blank=True)
    previous_ranks = models.JSONField(null=True, blank=True)
    ranks = models.JSONField(null=True, blank=True)
    seconds_spent = models.FloatField(default=0.0)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        # RESTRICT: deleting a reader's account deletes their scores and this trail with them,
        # but an account that entered someone else's scores cannot vanish from the trail.
        on_delete=models.RESTRICT,
        null=True,
        related_name="score_revisions",
        help_text="The signed-in user who submitted the value",
    )

    class Meta:
        ordering = ["score", "recorded_at", "pk"]

    def __str__(self) -> str:
        answer = self.value if self.ranks is None else self.ranks
        return f"{self.score}: {answer} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"
