"""Reader studies: studies, their questions, cases, blinded reconstructions, readers and scores."""

from __future__ import annotations

import io
import logging
import secrets
import uuid

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import MinValueValidator
from django.db import models, transaction
from django.db.models import Count, Max, Q
from django.urls import reverse
from django.utils import timezone

logger = logging.getLogger(__name__)

# Radiology anchors for a five-point Likert scale (1 worst, 5 best).
DEFAULT_QUESTIONS = [
    {
        "key": "overall",
        "label": "Overall image quality",
        "anchors": {
            "1": "Non-diagnostic",
            "2": "Poor",
            "3": "Adequate",
            "4": "Good",
            "5": "Excellent",
        },
    },
    {
        "key": "artifacts",
        "label": "Artifacts (aliasing, blurring, blocking)",
        "anchors": {
            "1": "Severe, non-diagnostic",
            "2": "Marked",
            "3": "Moderate",
            "4": "Mild",
            "5": "None",
        },
    },
    {
        "key": "snr",
        "label": "Signal-to-noise ratio",
        "anchors": {
            "1": "Non-diagnostic",
            "2": "Poor",
            "3": "Adequate",
            "4": "Good",
            "5": "Excellent",
        },
    },
    {
        "key": "sharpness",
        "label": "Sharpness of anatomical edges",
        "anchors": {
            "1": "Non-diagnostic",
            "2": "Blurred",
            "3": "Adequate",
            "4": "Sharp",
            "5": "Excellent",
        },
    },
]


def new_public_id() -> str:
    """An opaque, unguessable id for URLs that readers see (says nothing about the item)."""
    return secrets.token_urlsafe(12)


def image_upload_path(instance: models.Model, filename: str) -> str:
    # Random names: nothing about the method, case or original file survives in storage paths.
    return f"images/{uuid.uuid4().hex}.npy"


def array_file(array: np.ndarray) -> ContentFile:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return ContentFile(buffer.getvalue(), name="image.npy")


class StudyQuerySet(models.QuerySet):
    """Who may see which study: the one place every page and endpoint asks."""

    def run_by(self, user) -> StudyQuerySet:
        """The studies `user` is a researcher of, drafts included."""
        return self.filter(researchers=user)

    def read_by(self, user) -> StudyQuerySet:
        """The open studies `user` reads."""
        return self.filter(readers__user=user, status=Study.Status.OPEN)


class Study(models.Model):
    """A reader study: what readers are asked, how images are shown, who reads and who runs it."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Presentation(models.TextChoices):
        SIDE_BY_SIDE = "side-by-side", "Reference beside the reconstruction"
        ALONE = "alone", "Reconstruction alone"

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    end_message = models.TextField(
        blank=True, default="Thank you: every item of this study is scored."
    )
    presentation = models.CharField(
        max_length=20, choices=Presentation.choices, default=Presentation.SIDE_BY_SIDE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    researchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="researched_studies", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = StudyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("readerstudy:detail", kwargs={"slug": self.slug})

    def add_default_questions(self) -> None:
        for position, question in enumerate(DEFAULT_QUESTIONS):
            Question.objects.get_or_create(
                study=self,
                key=question["key"],
                defaults={
                    "label": question["label"],
                    "anchors": question["anchors"],
                    "position": position,
                },
            )

    @transaction.atomic
    def assign_reader(self, user) -> Reader:
        """Make `user` a reader and draw their own random order of every reconstruction.

        The order is drawn once and stored. Reconstructions added later are shuffled in after
        the reader's existing items, so what a reader has seen never moves. Safe to call again.
        """
        reader, _ = Reader.objects.get_or_create(study=self, user=user)
        assigned = reader.assignments.values_list("reconstruction_id", flat=True)
        new = list(
            Reconstruction.objects.filter(case__study=self)
            .exclude(pk__in=assigned)
            .values_list("pk", flat=True)
        )
        if new:
            order = np.random.default_rng(secrets.randbits(64)).permutation(len(new))
            start = (reader.assignments.aggregate(last=Max("position"))["last"] or 0) + 1
            Assignment.objects.bulk_create(
                Assignment(reader=reader, reconstruction_id=new[i], position=start + offset)
                for offset, i in enumerate(order)
            )
        return reader

    def queue_metrics(self) -> None:
        """Queue the metrics of every case once the current transaction commits."""
        for case in self.cases.all():
            case.queue_metrics()


class Question(models.Model):
    """One Likert question asked for every reconstruction of a study."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=200)
    scale_min = models.PositiveSmallIntegerField(default=1)
    scale_max = models.PositiveSmallIntegerField(default=5)
    anchors = models.JSONField(default=dict, blank=True, help_text='e.g. {"1": "Non-diagnostic"}')
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["study", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="unique_question_key_per_study"),
            models.CheckConstraint(
                condition=Q(scale_max__gt=models.F("scale_min")), name="question_scale_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}: {self.label}"


class Case(models.Model):
    """The reference image or volume of one subject or slice; its reconstructions are graded."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    name = models.CharField(
        max_length=200, help_text="The researcher's label (never shown to readers)"
    )
    anatomy = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=300, blank=True)
    reference = models.FileField(upload_to=image_upload_path)
    shape = models.JSONField()
    metrics_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its metric task last reached the broker"
    )
    metrics_queue_error = models.CharField(
        max_length=500, blank=True, help_text="Why its metric task could not be queued"
    )

    class Meta:
        ordering = ["study", "name"]
        constraints = [
            models.UniqueConstraint(fields=["study", "name"], name="unique_case_name_per_study"),
        ]

    def __str__(self) -> str:
        return self.name

    def load_reference(self) -> np.ndarray:
        with self.reference.open("rb") as handle:
            return np.load(handle, allow_pickle=False)

    def queue_metrics(self) -> None:
        """Send this case's metric task once the current transaction commits."""
        case_pk = self.pk
        transaction.on_commit(lambda: send_metrics_task(case_pk))


def send_metrics_task(case_pk: int) -> str | None:
    """Publish one case's metric task; returns why it could not be sent, or None.

    An unreachable broker is recorded on the case rather than raised: what the researcher
    imported stays stored, the study page says which cases wait, and `manage.py queue_metrics`
    sends them once the broker is back.
    """
    from kombu.exceptions import OperationalError as BrokerError

    from metrics.tasks import compute_case_metrics

    try:
        compute_case_metrics.apply_async(kwargs={"case_pk": case_pk})
    except (BrokerError, OSError) as error:
        reason = f"the task broker is unreachable ({error})"[:500]
        logger.warning("metrics of case %s not queued: %s", case_pk, reason)
        Case.objects.filter(pk=case_pk).update(metrics_queue_error=reason)
        return reason
    Case.objects.filter(pk=case_pk).update(
        metrics_queued_at=timezone.now(), metrics_queue_error=""
    )
    return None


class Reconstruction(models.Model):
    """One reconstruction of a case. Method, acceleration and parameters are hidden from readers."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reconstructions")
    method = models.CharField(max_length=100)
    acceleration = models.FloatField(validators=[MinValueValidator(1.0)])
    parameters = models.JSONField(default=dict, blank=True)
    source_name = models.CharField(
        max_length=500, blank=True, help_text="Original file, for the researcher only"
    )
    image = models.FileField(upload_to=image_upload_path)

    class Meta:
        ordering = ["case", "method", "acceleration", "pk"]

    def __str__(self) -> str:
        return f"{self.case.name} / {self.method} x{self.acceleration:g}"

    def load_image(self) -> np.ndarray:
        with self.image.open("rb") as handle:
            return np.load(handle, allow_pickle=False)


class ReaderQuerySet(models.QuerySet):
    def of_user(self, user) -> ReaderQuerySet:
        """`user`'s memberships of studies that are no longer drafts (a draft is not read)."""
        return self.filter(user=user).exclude(study__status=Study.Status.DRAFT)


class Reader(models.Model):
    """A user's membership of a study as a reader."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="readers")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader_memberships"
    )
    joined_at = models.DateTimeField(auto_now_add=True)

    objects = ReaderQuerySet.as_manager()

    class Meta:
        ordering = ["study", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="unique_reader_per_study"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.study.slug}"

    @staticmethod
    def answers_to_complete(questions: int) -> int:
        """Scores an item needs to count as done: one per question (at least one)."""
        return max(questions, 1)

    def progress(self, questions: int | None = None) -> tuple[int, int]:
        """(items with every question scored, items assigned); `questions`: the study's
        question count, when the caller has it."""
        if questions is None:
            questions = self.study.questions.count()
        complete = self.answers_to_complete(questions)
        counts = self.assignments.annotate(answered=Count("scores")).aggregate(
            total=Count("pk"), done=Count("pk", filter=Q(answered__gte=complete))
        )
        return counts["done"], counts["total"]


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
        saved, created, revisions = [], [], []
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


def current_metric_values(study: Study):
    """(configured metric names, the study's stored values of them at their current version)."""
    from metrics.models import MetricValue, configured_metrics

    names = configured_metrics()
    return names, MetricValue.objects.current(names).filter(reconstruction__case__study=study)


def metric_progress(study: Study) -> dict[str, int]:
    """How many of a study's configured metric values are computed, failed and expected."""
    names, values = current_metric_values(study)
    counts = values.aggregate(
        done=Count("pk", filter=Q(value__isnull=False)),
        failed=Count("pk", filter=~Q(error="")),
    )
    expected = Reconstruction.objects.filter(case__study=study).count() * len(names)
    return {**counts, "expected": expected}


def cases_missing_metrics(study: Study) -> list[Case]:
    """Cases with a configured metric not yet stored at its current version (new weights, a
    new convention, a worker that never ran)."""
    names, values = current_metric_values(study)
    stored = dict(
        values.values("reconstruction__case")
        .annotate(n=Count("pk"))
        .values_list("reconstruction__case", "n")
    )
    cases = Case.objects.filter(study=study).annotate(n=Count("reconstructions"))
    return [case for case in cases if stored.get(case.pk, 0) < case.n * len(names)]
