"""What a researcher sets up: studies, their questions, cases and blinded reconstructions."""

from __future__ import annotations

import io
import logging
import secrets
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import MaxValueValidator, MinValueValidator, validate_slug
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from metrics.models import MetricValue
from metrics.stats.designs import comparison_pairs, rank_sets
from readerstudy.manifest import text_problem

if TYPE_CHECKING:
    from readerstudy.models.reading import Reader

logger = logging.getLogger(__name__)

# Radiology anchors for a five-point Likert scale (1 worst, 5 best).
DEFAULT_QUESTIONS: list[dict[str, Any]] = [
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


class ImageTracking(models.Model):
    """Knows whether its image file was replaced since it was read from the database: the
    metric values computed on the old file no longer describe it."""

    IMAGE_FIELD = ""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        stored = getattr(self, "_stored_image", None)
        current = getattr(self, self.IMAGE_FIELD)
        replaced = self.pk is not None and stored is not None and stored != current.name
        super().save(*args, **kwargs)
        self._stored_image = current.name
        if replaced:
            self.image_replaced()

    def image_replaced(self) -> None:
        raise NotImplementedError

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._stored_image = instance.__dict__.get(cls.IMAGE_FIELD)
        return instance


def image_upload_path(instance: models.Model | None, filename: str) -> str:
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

    def colleagues_of(self, user, *, researchers: bool = False):
        """The accounts `user` may add to a study by name: those who read or run a study
        `user` runs (and, for a co-researcher, those who may create studies here). Any
        other account is invited by link, so that adding by name tells nobody which user
        names exist on the server."""
        users = get_user_model().objects
        mine = self.run_by(user)
        known = Q(reader_memberships__study__in=mine) | Q(researched_studies__in=mine)
        if researchers:
            known |= Q(
                pk__in=users.with_perm(
                    "readerstudy.add_study", backend="django.contrib.auth.backends.ModelBackend"
                ).values("pk")
            )
        return users.filter(known).distinct()

    def read_by(self, user) -> StudyQuerySet:
        """The open studies `user` reads (and was not removed from)."""
        return self.filter(
            readers__user=user, readers__removed_at__isnull=True, status=Study.Status.OPEN
        )


SLUG_LENGTH = 50
TITLE_LENGTH = 200
# Beyond half the items a repeat read stops being a check on a study and becomes its design.
MAX_REPEAT_SHARE = 0.5


class Study(models.Model):
    """A reader study: what readers are asked, how images are shown, who reads and who runs it."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Presentation(models.TextChoices):
        SIDE_BY_SIDE = "side-by-side", "Reference beside the reconstruction"
        ALONE = "alone", "Reconstruction alone"

    slug = models.SlugField(unique=True, max_length=SLUG_LENGTH)
    title = models.CharField(max_length=TITLE_LENGTH)
    instructions = models.TextField(blank=True)
    end_message = models.TextField(
        blank=True, default="Thank you: every item of this study is scored."
    )
    presentation = models.CharField(
        max_length=20, choices=Presentation.choices, default=Presentation.SIDE_BY_SIDE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    window_presets = models.JSONField(
        default=list,
        blank=True,
        help_text="Named windows the reader switches with W: [{name, level, width}] in percent "
        "of each case's reference maximum (readerstudy.windows)",
    )
    repeat_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_REPEAT_SHARE)],
        help_text="Share of each reader's items shown a second time, later and under a new id "
        "(intra-reader agreement); the first read is the one analysed",
    )
    researchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="researched_studies", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who created it (or restored it): a co-researcher cannot remove them",
    )

    objects = StudyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("readerstudy:detail", kwargs={"slug": self.slug})

    @classmethod
    def slug_is_usable(cls, slug: str) -> bool:
        """A slug that is reachable on the web and harmless in a spreadsheet (it is the
        `study` column of every export): letters, digits, - and _, within the field's length,
        not starting with - or _. The one rule for import_study and the new-study form."""
        try:
            validate_slug(slug)
        except ValidationError:
            return False
        return len(slug) <= SLUG_LENGTH and not slug.startswith(("-", "_"))

    @classmethod
    def title_problem(cls, title: str) -> str | None:
        """Why `title` cannot name a study (empty, too long, control characters), or None."""
        if not title.strip():
            return "is empty"
        return text_problem(title, TITLE_LENGTH)

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
        """Make `user` a reader with their own random order of every reconstruction (drawn
        once and stored; Reader.extend_order). Safe to call again; a removed reader who is
        added again reads on where they stopped."""
        reader, _ = self.readers.get_or_create(user=user)
        self.build_comparisons()
        if reader.removed_at is not None:
            reader.removed_at = None
            reader.save(update_fields=["removed_at"])
        reader.extend_order()
        return reader

    def extend_orders(self) -> None:
        """Shuffle items added since (reconstructions, comparisons of new cases or of a
        changed design) into every reader's unscored rest."""
        self.build_comparisons()
        for reader in self.readers.all():
            reader.extend_order()

    def asks_likert(self) -> bool:
        """Whether single reconstructions are scored (a Likert question exists)."""
        return self.questions.filter(kind=Question.Kind.LIKERT).exists()

    @transaction.atomic
    def build_comparisons(self, rng: np.random.Generator | None = None) -> int:
        """Design the comparisons of every rank and forced-choice question for each case that
        has none yet (metrics.stats.designs); returns how many were made. Drawn once and
        stored, like the readers' orders: every reader sees the same sets and pairs, each in
        their own random left-to-right layout (Reader.extend_order)."""
        rng = rng if rng is not None else np.random.default_rng(secrets.randbits(64))
        made = 0
        for question in self.questions.exclude(kind=Question.Kind.LIKERT):
            designed = set(question.comparisons.values_list("case", flat=True))
            cases = self.cases.exclude(pk__in=designed).prefetch_related("reconstructions")
            for case in cases:
                members = sorted(r.pk for r in case.reconstructions.all())
                for number, chosen in enumerate(question.design(len(members), rng), start=1):
                    comparison = Comparison.objects.create(
                        question=question, case=case, number=number
                    )
                    comparison.members.set([members[k] for k in chosen])
                    made += 1
        return made

    def has_scores(self) -> bool:
        """Whether any reader answered anything: from then on the questions are fixed."""
        from readerstudy.models.reading import Score

        return Score.objects.filter(question__study=self).exists()

    def opening_problem(self) -> str | None:
        """Why the study cannot be opened for reading yet, or None."""
        if not self.questions.exists():
            return "it has no questions"
        if not Reconstruction.objects.filter(case__study=self).exists():
            return "it has no images yet: upload them first"
        return None

    def queue_metrics(self) -> None:
        """Queue the metrics of every case once the current transaction commits."""
        for case in self.cases.all():
            case.queue_metrics()


DEFAULT_RANK_SETS = 2  # sets each reconstruction of a split case is ranked in


class QuestionQuerySet(models.QuerySet):
    def likert(self) -> QuestionQuerySet:
        """The Likert questions in the order readers see them. Ordered on this table alone:
        the default ordering starts with the study, which joins it to sort by its date (a
        join on every request of the reading room)."""
        return self.filter(kind=Question.Kind.LIKERT).order_by("position", "pk")


class Question(models.Model):
    """What readers are asked: a Likert score of every reconstruction, or a ranking or forced
    choice between reconstructions of the same case (issue 20). A study may combine kinds."""

    class Kind(models.TextChoices):
        LIKERT = "likert", "Likert score of each reconstruction"
        RANK = "rank", "Rank a case's reconstructions"
        CHOICE = "choice", "Forced choice between two reconstructions"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LIKERT)
    scale_min = models.PositiveSmallIntegerField(default=1)
    scale_max = models.PositiveSmallIntegerField(default=5)
    anchors = models.JSONField(default=dict, blank=True, help_text='e.g. {"1": "Non-diagnostic"}')
    position = models.PositiveSmallIntegerField(default=0)
    allow_ties = models.BooleanField(
        default=False,
        help_text='Rank: equal ranks allowed. Forced choice: "no difference" allowed.',
    )
    set_size = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(2)],
        help_text="Rank: the most reconstructions on one screen; a case with more is split "
        "into balanced sets.",
    )
    comparisons_per_reconstruction = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(2)],
        help_text="Forced choice: empty for every pair of a case, else about this many "
        "comparisons per reconstruction (a balanced incomplete design). Rank: how many sets "
        f"each reconstruction of a split case is ranked in ({DEFAULT_RANK_SETS} when empty).",
    )

    objects = QuestionQuerySet.as_manager()

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

    @property
    def compares(self) -> bool:
        """Whether readers answer it about several reconstructions at once."""
        return self.kind != self.Kind.LIKERT

    def design(self, n: int, rng: np.random.Generator) -> list[list[int]]:
        """The comparisons of a case of n reconstructions, as positions 0..n-1."""
        if self.kind == self.Kind.CHOICE:
            pairs = comparison_pairs(n, self.comparisons_per_reconstruction, rng)
            return [list(pair) for pair in pairs]
        if self.kind == self.Kind.RANK:
            rounds = self.comparisons_per_reconstruction or DEFAULT_RANK_SETS
            return rank_sets(n, self.set_size, rounds, rng)
        return []

    def ranks_problem(self, ranks: object, shown: int) -> str | None:
        """Why `ranks` is not an answer to this question about `shown` reconstructions (one
        rank per reconstruction in their left-to-right order, 1 best), or None. A forced
        choice is a ranking of two: [1, 2] prefers the left one, [1, 1] is "no difference"."""
        if not isinstance(ranks, list) or len(ranks) != shown:
            return f"must be a list of {shown} ranks, one per reconstruction shown"
        if any(
            isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= shown for r in ranks
        ):
            return f"each rank must be a whole number from 1 to {shown}"
        if not self.allow_ties and sorted(ranks) != list(range(1, shown + 1)):
            what = "no difference" if self.kind == self.Kind.CHOICE else "equal ranks"
            return f"{what} is not allowed: give each reconstruction its own rank"
        return None


class Case(ImageTracking):
    """The reference image or volume of one subject or slice; its reconstructions are graded."""

    IMAGE_FIELD = "reference"

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
    training = models.BooleanField(
        default=False,
        help_text="A training case: read first by every reader, the reference answers shown "
        "after each answer, never analysed",
    )
    training_note = models.TextField(
        blank=True, help_text="Shown with a training case's reference answers: what to look for"
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

    def image_replaced(self) -> None:
        """A new reference: every metric value of the case was computed against the old one."""
        MetricValue.objects.filter(reconstruction__case=self).delete()
        self.queue_metrics()

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


class Reconstruction(ImageTracking):
    """One reconstruction of a case. Method, acceleration and parameters are hidden from readers."""

    IMAGE_FIELD = "image"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reconstructions")
    method = models.CharField(max_length=100)
    acceleration = models.FloatField(validators=[MinValueValidator(1.0)])
    parameters = models.JSONField(default=dict, blank=True)
    source_name = models.CharField(
        max_length=500, blank=True, help_text="Original file, for the researcher only"
    )
    image = models.FileField(upload_to=image_upload_path)
    reference_answers = models.JSONField(
        default=dict,
        blank=True,
        help_text="A training case's answers the researcher gives, {question key: value}: a "
        "Likert score, or for a rank or choice question this reconstruction's rank in its "
        "case (1 best; equal numbers tie)",
    )

    class Meta:
        ordering = ["case", "method", "acceleration", "pk"]

    def __str__(self) -> str:
        return f"{self.case.name} / {self.method} x{self.acceleration:g}"

    def reference_answer(self, question: Question) -> int | None:
        value = self.reference_answers.get(question.key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def image_replaced(self) -> None:
        """A new image: its metric values described the old one."""
        self.metric_values.all().delete()
        self.case.queue_metrics()

    def load_image(self) -> np.ndarray:
        with self.image.open("rb") as handle:
            return np.load(handle, allow_pickle=False)


class Comparison(models.Model):
    """Reconstructions of one case that a rank or forced-choice question shows together: one
    set of a ranking design or one pair of a forced-choice design (Study.build_comparisons)."""

    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="comparisons")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="comparisons")
    number = models.PositiveSmallIntegerField(
        help_text="Its number among the case's comparisons for the question (the `set` column)"
    )
    members = models.ManyToManyField(Reconstruction, related_name="comparisons")

    class Meta:
        ordering = ["question", "case", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["question", "case", "number"], name="unique_comparison_number"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question.key}: {self.case.name} #{self.number}"
