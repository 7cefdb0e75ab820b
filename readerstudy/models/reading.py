"""What readers do: their memberships, their own order of items, and their scores with
every revision."""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.db.models import Count, F

from readerstudy.models.studies import Question, Reconstruction, Study, new_public_id


@dataclass(frozen=True)
class ReadingOrder:
    """One reader's items in their order with the answers each has: the one rule for a
    reader's progress and for which item comes next."""

    items: list[tuple[int, str, int]]  # (assignment pk, public id, answers stored)
    questions: int

    @property
    def answers_needed(self) -> int:
        """An item is done when every question is answered (at least one answer)."""
        return max(self.questions, 1)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def done(self) -> int:
        return sum(answered >= self.answers_needed for *_, answered in self.items)

    def next_index(self) -> int | None:
        """Where the first item with an unanswered question is; None when all are done."""
        needed = self.answers_needed
        return next((i for i, (*_, answered) in enumerate(self.items) if answered < needed), None)


def random_interleaving(kept: int, added: int, rng: np.random.Generator) -> set[int]:
    """The slots, among kept + added, of `added` new items merged into `kept` ones that keep
    their order: every such merge is equally likely (each of C(kept + added, added))."""
    return set(rng.choice(kept + added, size=added, replace=False).tolist())


def _items_by_reader(readers: list[int]) -> dict[int, list[tuple[int, str, int]]]:
    """(assignment pk, public id, answers stored) of each reader's items, in their order."""
    items: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    rows = (
        Assignment.objects.filter(reader__in=readers)
        .annotate(answered=Count("scores"))
        .order_by("reader", "position")
        .values_list("reader", "pk", "public_id", "answered")
    )
    for reader, pk, public_id, answered in rows:
        items[reader].append((pk, public_id, answered))
    return items


class ReaderQuerySet(models.QuerySet):
    def of_user(self, user) -> ReaderQuerySet:
        """`user`'s memberships of studies that are no longer drafts (a draft is not read),
        except those a researcher removed them from."""
        return self.filter(user=user, removed_at__isnull=True).exclude(
            study__status=Study.Status.DRAFT
        )

    def reading_orders(self) -> dict[int, ReadingOrder]:
        """Each reader's ReadingOrder by reader pk, in three queries however many readers."""
        studies = dict(self.values_list("pk", "study_id"))
        questions = dict(
            Question.objects.filter(study__in=set(studies.values()))
            .values("study")
            .annotate(n=Count("pk"))
            .values_list("study", "n")
        )
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
        """This reader's ReadingOrder; `questions`: the study's question count, when the
        caller has it (the next-item request, every reader's per image, then costs one query)."""
        if questions is None:
            questions = self.study.questions.count()
        return ReadingOrder(_items_by_reader([self.pk])[self.pk], questions)

    def progress(self) -> tuple[int, int]:
        """(items with every question answered, items assigned)."""
        order = self.reading_order()
        return order.done, order.total

    @transaction.atomic
    def extend_order(self, rng: np.random.Generator | None = None) -> int:
        """Give this reader every reconstruction of the study they do not have yet, shuffled
        into the unscored rest of their order at random positions; returns how many.

        Items up to the last one with a score never move. New items are not appended as one
        block: a block would tell the reader which items arrived together (often one method
        or one batch of cases). The unscored rest keeps its relative order, and each new item
        is equally likely at every position among it.
        """
        rng = rng if rng is not None else np.random.default_rng(secrets.randbits(64))
        # Lock this reader's items: a score saved meanwhile cannot land on an item being moved.
        items = list(self.assignments.select_for_update().order_by("position"))
        new = list(
            Reconstruction.objects.filter(case__study=self.study_id)
            .exclude(pk__in=[item.reconstruction_id for item in items])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not new:
            return 0
        scored = set(
            Score.objects.filter(assignment__reader=self).values_list("assignment", flat=True)
        )
        last_scored = max((i for i, item in enumerate(items) if item.pk in scored), default=-1)
        rest = items[last_scored + 1 :]
        start = items[last_scored].position + 1 if last_scored >= 0 else 1
        slots = len(rest) + len(new)
        new_slots = random_interleaving(len(rest), len(new), rng)
        shuffled_new = iter(rng.permutation(new).tolist())
        rest_items = iter(rest)
        moved: list[Assignment] = []
        created: list[Assignment] = []
        if rest:
            # Out of the way first, so that no position is held twice at any moment (the
            # unique (reader, position) constraint is checked row by row).
            offset = max(item.position for item in items) + slots + 1
            Assignment.objects.filter(pk__in=[item.pk for item in rest]).update(
                position=F("position") + offset
            )
        for slot in range(slots):
            position = start + slot
            if slot in new_slots:
                created.append(
                    Assignment(
                        reader=self, reconstruction_id=next(shuffled_new), position=position
                    )
                )
            else:
                item = next(rest_items)
                item.position = position
                moved.append(item)
        Assignment.objects.bulk_update(moved, ["position"])
        Assignment.objects.bulk_create(created)
        return len(created)


class AssignmentQuerySet(models.QuerySet):
    def of_reader(self, user) -> AssignmentQuerySet:
        """The items `user` may open: those of their memberships (`Reader.objects.of_user`)."""
        return self.filter(reader__in=Reader.objects.of_user(user))


class Assignment(models.Model):
    """A reconstruction at its place in one reader's own random order.

    `public_id` is what the reader's browser sees: random and per reader, so two readers
    cannot tell from URLs that they are looking at the same image.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="assignments")
    reconstruction = models.ForeignKey(
        Reconstruction, on_delete=models.CASCADE, related_name="assignments"
    )
    position = models.PositiveIntegerField()

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        ordering = ["reader", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "reconstruction"], name="unique_reconstruction_per_reader"
            ),
            models.UniqueConstraint(
                fields=["reader", "position"], name="unique_position_per_reader"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reader.user} #{self.position}"

    def _check_answers(self, values: dict[str, int]) -> dict[str, Question]:
        """The study's questions by key, once `values` are found fit to store (else
        ValidationError naming each bad answer)."""
        study = self.reader.study
        if study.status != Study.Status.OPEN:
            raise ValidationError(
                f"the study is {study.get_status_display().lower()}: scores are not accepted"
            )
        questions = {q.key: q for q in study.questions.all()}
        errors = {}
        for key, value in values.items():
            question = questions.get(key)
            if question is None:
                errors[key] = (
                    f"not a question of this study (expected one of {', '.join(questions)})"
                )
            elif isinstance(value, bool) or not isinstance(value, int):
                errors[key] = "must be a whole number"
            elif not question.scale_min <= value <= question.scale_max:
                errors[key] = f"must be between {question.scale_min} and {question.scale_max}"
        if errors:
            raise ValidationError(errors)
        return questions

    @transaction.atomic
    def save_scores(
        self, values: dict[str, int], *, seconds_spent: float = 0.0, by=None
    ) -> list[Score]:
        """Store this reader's answers; idempotent, and every change is kept as a revision
        (who, when, old and new value: the audit trail). `by` is the signed-in user, the
        item's reader unless given.

        Raises:
            django.core.exceptions.ValidationError: the study is not open, a question is not
                the study's, or a value is outside its scale. Nothing is stored then.
        """
        questions = self._check_answers(values)
        # Lock this item's row so two tabs saving at once are serialised, not interleaved.
        Assignment.objects.select_for_update().filter(pk=self.pk).first()
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
        revisions: list[tuple[Score, int | None]] = []
        for key, value in values.items():
            question = questions[key]
            score = existing.get(question.pk)
            if score is None:
                score = Score(
                    assignment=self, question=question, value=value, seconds_spent=seconds_spent
                )
                created.append(score)
                revisions.append((score, None))
            else:
                score.question = question  # already loaded: callers read score.question.key
                if score.value != value:  # a resubmitted identical answer is not an edit
                    revisions.append((score, score.value))
                    score.value = value
                    score.seconds_spent += seconds_spent
                    score.save(update_fields=["value", "seconds_spent", "updated_at"])
            saved.append(score)
        Score.objects.bulk_create(created)
        ScoreRevision.objects.bulk_create(
            ScoreRevision(
                score=score,
                previous_value=previous,
                value=score.value,
                seconds_spent=seconds_spent,
                recorded_by=by,
            )
            for score, previous in revisions
        )
        return saved


class Score(models.Model):
    """A reader's Likert answer to one question for one assigned reconstruction."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="scores")
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="scores")
    value = models.PositiveSmallIntegerField()
    seconds_spent = models.FloatField(default=0.0, validators=[MinValueValidator(0.0)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # A double submit (two tabs, a retried request) can never create a second score.
            models.UniqueConstraint(
                fields=["assignment", "question"], name="one_score_per_question_and_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question.key}={self.value}"


class ScoreRevision(models.Model):
    """Every value a score has had: the audit trail of a reader changing their mind.

    Written only by `Assignment.save_scores` (the admin shows scores read-only), so the trail
    is complete: the first answer has no previous value, each edit names the old and new one.
    """

    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="revisions")
    previous_value = models.PositiveSmallIntegerField(null=True, blank=True)
    value = models.PositiveSmallIntegerField()
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
        return f"{self.score}: {self.value} at {self.recorded_at:%Y-%m-%d %H:%M:%S}"
