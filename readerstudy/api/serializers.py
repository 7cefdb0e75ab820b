"""What a reader's browser receives: nothing about method, acceleration, case or file names."""

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from readerstudy.models import Assignment, Question, Study, StudyImport
from readerstudy.models.reading import VIEW_ACTIONS


class QuestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Question
        fields = ["key", "label", "kind", "scale_min", "scale_max", "anchors", "allow_ties"]


class ReaderStudySerializer(serializers.ModelSerializer):
    done = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = ["slug", "title", "instructions", "presentation", "status", "done", "total"]

    def _progress(self, study):
        return self.context["progress"][study.pk]

    def get_done(self, study) -> int:
        return self._progress(study)[0]

    def get_total(self, study) -> int:
        return self._progress(study)[1]


class ItemSerializer(serializers.ModelSerializer):
    """One item of a reader's own order: opaque id, position, questions, my answers, images."""

    study: serializers.SlugRelatedField[Study] = serializers.SlugRelatedField(
        source="reader.study", slug_field="slug", read_only=True
    )
    presentation = serializers.CharField(source="reader.study.presentation", read_only=True)
    kind = serializers.SerializerMethodField()
    total = serializers.SerializerMethodField()
    questions = serializers.SerializerMethodField()
    scores = serializers.SerializerMethodField()
    images = serializers.SerializerMethodField()
    previous = serializers.SerializerMethodField()
    slices = serializers.SerializerMethodField()
    training = serializers.SerializerMethodField()
    reference = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "public_id",
            "study",
            "position",
            "total",
            "presentation",
            "kind",
            "questions",
            "scores",
            "images",
            "previous",
            "slices",
            "training",
            "reference",
        ]

    def get_training(self, item) -> bool:
        """Whether this is a training item: its reference answers come after my answer."""
        return item.case.training

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_reference(self, item) -> dict[str, Any] | None:
        """A training item's reference answers and note, once I have answered it; else null."""
        if not item.case.training or not self.get_scores(item):
            return None
        return item.training_reference()

    def get_kind(self, item) -> str:
        """likert: one reconstruction to score; rank or choice: `len(images.reconstructions)`
        of them, to order or to choose between."""
        return item.comparison.question.kind if item.comparison_id else Question.Kind.LIKERT

    def get_slices(self, item) -> int:
        """How many slices the images have (1 for a 2-D image; volumes are multi-frame)."""
        shape = item.case.shape
        return shape[0] if len(shape) == 3 else 1

    # The next-item view already knows "previous", "total", "questions" and "scores" (from
    # its one pass over the reader's order) and passes them in the context: the reading
    # room's hot path makes no query here.
    def get_previous(self, item) -> str | None:
        """The item before this one in my order (for going back), or null."""
        if "previous" in self.context:
            return self.context["previous"]
        earlier = item.reader.assignments.filter(position__lt=item.position).order_by("-position")
        return earlier.values_list("public_id", flat=True).first()

    def get_total(self, item) -> int:
        if "total" in self.context:
            return self.context["total"]
        return item.reader.assignments.count()

    def get_questions(self, item) -> list[dict]:
        """What this item asks: a comparison its own question, a reconstruction the study's
        Likert questions."""
        if item.comparison_id:
            questions = [item.comparison.question]
        elif "questions" in self.context:
            questions = self.context["questions"]
        else:
            questions = item.reader.study.questions.likert()
        return list(QuestionSerializer(questions, many=True).data)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_scores(self, item) -> dict[str, Any]:
        """My answers so far: a value per Likert question, or the ranks in layout order."""
        if "scores" in self.context:
            return self.context["scores"]
        return {
            s.question.key: s.value if s.ranks is None else s.ranks
            for s in item.scores.select_related("question")
        }

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_images(self, item) -> dict[str, Any]:
        """The reference (null when the study shows reconstructions alone) and the
        reconstructions, left to right; a comparison's are named by their place only."""

        def url(which):
            return reverse(
                "readerstudy:item-image", kwargs={"public_id": item.public_id, "which": which}
            )

        side_by_side = item.reader.study.presentation == Study.Presentation.SIDE_BY_SIDE
        if item.comparison_id:
            shown = [url(f"slot-{k}") for k in range(1, len(item.layout) + 1)]
        else:
            shown = [url("reconstruction")]
        return {
            "reconstruction": None if item.comparison_id else shown[0],
            "reconstructions": shown,
            "reference": url("reference") if side_by_side else None,
        }


class SavedScoresSerializer(serializers.Serializer):
    """The answer to a save: the item and the values now stored for the questions sent (the
    reading room asks for its next item anyway, so the whole item is not sent back)."""

    public_id = serializers.CharField()
    scores = serializers.DictField(child=serializers.JSONField())
    reference = serializers.JSONField(
        allow_null=True, help_text="A training item's reference answers and note; else null"
    )


# A study asks a handful of questions; a save naming more keys than this is not a reader's.
MAX_ANSWERS_PER_SAVE = 50


class AnswersField(serializers.DictField):
    """{question key: value}, bounded in size before any value is looked at."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and len(data) > MAX_ANSWERS_PER_SAVE:
            raise serializers.ValidationError(
                f"{len(data):,} answers in one save; at most {MAX_ANSWERS_PER_SAVE}"
            )
        return super().to_internal_value(data)


class SecondsField(serializers.FloatField):
    """A duration in seconds: a JSON number, not a boolean (true is not one second) nor a
    string (the state-machine fuzzer found "5" taken as five seconds)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class ViewActionsField(serializers.DictField):
    """{viewer tool: times used} for the tools of VIEW_ACTIONS, each a whole number."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.IntegerField(min_value=0, max_value=100_000), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in set(data) - set(VIEW_ACTIONS))[:5]
            if unknown:
                raise serializers.ValidationError(
                    f"unknown viewer tools {', '.join(unknown)}; known: {', '.join(VIEW_ACTIONS)}"
                )
        return super().to_internal_value(data)


class ScoresInputSerializer(serializers.Serializer):
    scores = AnswersField(child=serializers.JSONField(), allow_empty=False)
    seconds_spent = SecondsField(min_value=0, max_value=24 * 3600, default=0.0)
    view_actions = ViewActionsField(
        required=False,
        default=dict,
        help_text="How often each viewer tool was used on this item since its last save",
    )


class StudyImportSerializer(serializers.ModelSerializer):
    """One upload's import: where it is, and every problem or what it added."""

    state_label = serializers.CharField(source="get_state_display", read_only=True)
    finished = serializers.BooleanField(read_only=True)

    class Meta:
        model = StudyImport
        fields = [
            "id",
            "state",
            "state_label",
            "finished",
            "file_names",
            "upload_bytes",
            "steps_done",
            "steps_total",
            "problems",
            "notes",
            "cases_added",
            "reconstructions_added",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class UploadSerializer(serializers.Serializer):
    """What the upload form sends: files, and for each the path it had on the researcher's
    disk (a folder's structure; browsers send bare file names otherwise)."""

    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    paths = serializers.ListField(child=serializers.CharField(max_length=1000), required=False)
