"""The researcher's forms: validated on the server, each message beside its field."""

from __future__ import annotations

from django import forms
from django.utils.text import slugify

from readerstudy.models import Study


class NewStudyForm(forms.ModelForm):
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

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        problem = Study.title_problem(title)
        if problem:
            raise forms.ValidationError(f"The title {problem}.")
        return title

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
