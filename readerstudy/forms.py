"""The researcher's forms: validated on the server, each message beside its field."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils.text import slugify

from fixtures.perturbations import DEFAULT_KINDS, PERTURBATIONS
from readerstudy.manifest import text_problem
from readerstudy.models import Question, Study
from readerstudy.models.lab import MAX_LAB_LEVELS, MIN_LAB_LEVELS
from readerstudy.models.studies import MAX_REPEAT_SHARE
from readerstudy.windows import (
    MOST_PRESETS,
    PresetError,
    format_window_presets,
    parse_window_presets,
)


class StudyTitleMixin:
    """The title as Study.title_problem allows it (the one rule, shared with import_study)."""

    cleaned_data: dict

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        problem = Study.title_problem(title)
        if problem:
            raise forms.ValidationError(f"The title {problem}.")
        return title


class NewStudyForm(StudyTitleMixin, forms.ModelForm):
    """A new study: a draft with the default questions, run by the researcher who made it."""

    class Meta:
        model = Study
        fields = ["title", "slug", "instructions", "presentation"]
        widgets = {"instructions": forms.Textarea(attrs={"rows": 4})}
        help_texts = {
            "slug": "The study's address (/read/<slug>/); letters, digits, - and _. "
            "Left empty, it is made from the title.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["slug"].required = False

    def clean_slug(self) -> str:
        slug = self.cleaned_data.get("slug") or slugify(self.cleaned_data.get("title", ""))[:50]
        if not Study.slug_is_usable(slug):
            raise forms.ValidationError(
                "Give an address of letters and digits (it may not start with - or _)."
            )
        if Study.objects.filter(slug=slug).exists():
            raise forms.ValidationError(
                f"A study at /read/{slug}/ exists already; choose another."
            )
        return slug


class StudySettingsForm(StudyTitleMixin, forms.ModelForm):
    """What readers are told and shown. The presentation is fixed once any score exists:
    every answer of a study must have been given looking at the same thing."""

    class Meta:
        model = Study
        fields = ["title", "instructions", "end_message", "presentation"]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 4}),
            "end_message": forms.Textarea(attrs={"rows": 2}),
        }

    repeat_percent = forms.IntegerField(
        label="Repeat reads (% of each reader's items)",
        min_value=0,
        max_value=round(MAX_REPEAT_SHARE * 100),
        required=False,
        help_text="Shown a second time, later and under a new id, to measure each reader's "
        "agreement with themselves; only the first read is analysed. 10 is usual; 0 for none. "
        "May be changed at any time: new repeats go among the items not yet read.",
    )

    window_presets_text = forms.CharField(
        label="Window presets",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": "Soft tissue: 30/60\nBright: 60/80"}
        ),
        help_text="One per line, 'name: level/width' in percent of each case's reference "
        f"maximum; at most {MOST_PRESETS}. Readers switch them with W (Shift-W back); R "
        "returns to the image's own window.",
    )

    def __init__(self, *args, locked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["repeat_percent"].initial = round(self.instance.repeat_share * 100)
        self.fields["window_presets_text"].initial = format_window_presets(
            self.instance.window_presets
        )
        if locked:
            self.fields["presentation"].disabled = True
            self.fields["presentation"].help_text = "Fixed: readers have scored already."

    def clean_repeat_percent(self) -> int:
        # Left out of a post (an older form, a script): keep the study's share.
        value = self.cleaned_data.get("repeat_percent")
        return self.fields["repeat_percent"].initial if value is None else value

    def repeats_changed(self) -> bool:
        return self.cleaned_data["repeat_percent"] != self.fields["repeat_percent"].initial

    def clean_window_presets_text(self) -> list[dict]:
        if self.add_prefix("window_presets_text") not in self.data:
            return self.instance.window_presets  # left out of a post: kept as they are
        try:
            return parse_window_presets(self.cleaned_data.get("window_presets_text") or "")
        except PresetError as error:
            raise forms.ValidationError(str(error)) from None

    def save(self, commit: bool = True) -> Study:
        self.instance.repeat_share = self.cleaned_data["repeat_percent"] / 100
        self.instance.window_presets = self.cleaned_data["window_presets_text"]
        return super().save(commit)


# Readers answer with the number keys, so a scale lies within 0..9.
SCALE_LOWEST, SCALE_HIGHEST = 0, 9


def parse_anchors(text: str) -> dict[str, str]:
    """Lines `1 = Non-diagnostic` as {"1": "Non-diagnostic"}; ValidationError naming the line."""
    anchors: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        level, separator, words = line.partition("=")
        if not separator or not level.strip().isdigit() or not words.strip():
            raise forms.ValidationError(
                f"Line {number}: write each anchor as “level = text”, e.g. “1 = Non-diagnostic”."
            )
        key = str(int(level.strip()))
        if key in anchors:
            raise forms.ValidationError(f"Line {number}: level {key} has two anchors.")
        problem = text_problem(words.strip(), 100)
        if problem:
            raise forms.ValidationError(f"Line {number}: the anchor {problem}.")
        anchors[key] = words.strip()
    return anchors


def format_anchors(anchors: dict[str, str]) -> str:
    return "\n".join(
        f"{level} = {text}" for level, text in sorted(anchors.items(), key=lambda kv: int(kv[0]))
    )


# Rank keys are digits, and more viewports than this beside the reference get too small.
MOST_ON_ONE_SCREEN = 6
DESIGN_FIELDS = ("kind", "set_size", "comparisons_per_reconstruction")


class QuestionForm(forms.ModelForm):
    """One question: its label and kind; for a Likert question its range and the words of its
    levels, for a ranking the most reconstructions on one screen, for a forced choice the
    design (every pair, or about n comparisons per reconstruction); whether ties count."""

    anchors_text = forms.CharField(
        label="Anchors",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One level per line, e.g. “1 = Non-diagnostic”.",
    )

    class Meta:
        model = Question
        fields = [
            "label",
            "key",
            "kind",
            "scale_min",
            "scale_max",
            "allow_ties",
            "set_size",
            "comparisons_per_reconstruction",
        ]
        labels = {
            "scale_min": "Lowest",
            "scale_max": "Highest",
            "allow_ties": "Ties allowed",
            "set_size": "Most per screen",
            "comparisons_per_reconstruction": "Comparisons per reconstruction",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].required = False
        self.fields["key"].help_text = "Its column in the exports; made from the label if empty."
        # Fields a question of another kind does not use may be left empty, and a form
        # posted without them (older pages, scripts) keeps what the question has.
        for name in ("kind", "set_size", "scale_min", "scale_max"):
            self.fields[name].required = False
        if self.instance.pk:
            self.initial["anchors_text"] = format_anchors(self.instance.anchors or {})

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        problem = text_problem(label, 200) if label else "is empty"
        if problem:
            raise forms.ValidationError(f"The label {problem}.")
        return label

    def clean(self):
        data = super().clean()
        if data is None:
            return data
        if not data.get("key") and data.get("label"):
            data["key"] = slugify(data["label"])[:50] or "question"
        data["kind"] = data.get("kind") or self.instance.kind
        for name in ("set_size", "scale_min", "scale_max"):
            if data.get(name) is None:
                data[name] = getattr(self.instance, name)
        if data.get("kind") in (Question.Kind.RANK, Question.Kind.CHOICE):
            return self._clean_comparison(data)
        low, high = data.get("scale_min"), data.get("scale_max")
        if (
            low is not None
            and high is not None
            and not SCALE_LOWEST <= low < high <= SCALE_HIGHEST
        ):
            self.add_error(
                "scale_max",
                f"The scale runs from a lower to a higher level within {SCALE_LOWEST}-"
                f"{SCALE_HIGHEST} (readers answer with the number keys).",
            )
        try:
            anchors = parse_anchors(data.get("anchors_text", ""))
        except forms.ValidationError as error:
            self.add_error("anchors_text", error)
            return data
        if low is not None and high is not None:
            outside = [level for level in anchors if not low <= int(level) <= high]
            if outside:
                self.add_error(
                    "anchors_text", f"Level {outside[0]} is outside the scale {low}-{high}."
                )
        data["anchors"] = anchors
        return data

    def _clean_comparison(self, data: dict) -> dict:
        size = data.get("set_size")
        rank = data["kind"] == Question.Kind.RANK
        if rank and size is not None and not 2 <= size <= MOST_ON_ONE_SCREEN:
            self.add_error(
                "set_size",
                f"Show 2 to {MOST_ON_ONE_SCREEN} reconstructions on one screen; a case "
                "with more is split into balanced sets.",
            )
        per_item = data.get("comparisons_per_reconstruction")
        if per_item is not None and per_item < 2:
            self.add_error(
                "comparisons_per_reconstruction",
                "At least 2 (fewer leaves some reconstructions never compared with the "
                "rest); leave it empty for every pair.",
            )
        data["anchors"] = {}
        return data

    def posted_changes(self) -> list[str]:
        """The changed fields that the post holds: one it leaves out (a page or script of
        before the question kinds) keeps its value and is no change."""
        return [
            name
            for name in self.changed_data
            if not self.fields[name].widget.value_omitted_from_data(
                self.data, self.files, self.add_prefix(name)
            )
        ]

    def has_changed(self) -> bool:
        return bool(self.posted_changes())

    def design_changed(self) -> bool:
        """Whether the comparisons drawn for this question no longer fit it."""
        return bool(self.instance.pk) and any(f in self.posted_changes() for f in DESIGN_FIELDS)

    def save(self, commit: bool = True) -> Question:
        self.instance.key = self.cleaned_data["key"]
        self.instance.anchors = self.cleaned_data.get("anchors", {})
        return super().save(commit=commit)


class BaseQuestionFormSet(forms.BaseModelFormSet):
    def clean(self) -> None:
        super().clean()
        keys: set[str] = set()
        kept = 0
        for form in self.forms:
            if not form.has_changed() and not form.instance.pk:
                continue
            if (form.cleaned_data or {}).get("DELETE"):
                continue
            kept += 1
            key = str((form.cleaned_data or {}).get("key"))
            if key in keys:
                form.add_error("key", f"Two questions use the key “{key}”; give each its own.")
            keys.add(key)
        if kept == 0:
            raise forms.ValidationError("A study asks at least one question.")


QuestionFormSet = forms.modelformset_factory(
    Question,
    form=QuestionForm,
    formset=BaseQuestionFormSet,
    extra=1,
    can_delete=True,
    can_order=True,
)


class UsernameForm(forms.Form):
    """An account to add by user name, among `candidates` (Study.objects.colleagues_of): any
    other name, whether an account has it or not, gets the same answer."""

    username = forms.CharField(max_length=150, label="User name")

    def __init__(self, *args, candidates, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates = candidates

    def clean_username(self):
        name = self.cleaned_data["username"].strip()
        user = self.candidates.filter(username=name).first()
        if user is None:
            raise forms.ValidationError(
                f"“{name[:60]}” is not among the people of your studies. Create an invitation "
                "link instead: they choose a user name and password, or sign in with theirs."
            )
        return user


class InvitationForm(forms.Form):
    note = forms.CharField(
        max_length=200, required=False, label="For whom", help_text="e.g. Dr. Lee, MSK fellow"
    )
    email = forms.EmailField(
        required=False,
        label="Send it to (optional)",
        help_text="Mailed from this server; the link is shown to copy either way.",
    )

    def __init__(self, *args, email_enabled: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not email_enabled:
            del self.fields["email"]

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        problem = text_problem(note, 200)
        if problem:
            raise forms.ValidationError(f"The note {problem}.")
        return note


class SignUpForm(UserCreationForm):
    """A radiologist's account, made through an invitation link."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class MetricLabForm(forms.Form):
    """What a metric lab sweeps: which perturbations, at how many severities."""

    kinds = forms.MultipleChoiceField(
        label="Perturbations",
        choices=[(name, name) for name in PERTURBATIONS],
        initial=list(DEFAULT_KINDS),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one perturbation."},
    )
    levels = forms.IntegerField(
        label="Severities per perturbation",
        min_value=MIN_LAB_LEVELS,
        max_value=MAX_LAB_LEVELS,
        initial=10,
    )
