"""Pages: a user's studies, the researcher's view of one study and its live dashboard."""

import io
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.generic import CreateView, DetailView, TemplateView
from PIL import Image

from fixtures.perturbations import PERTURBATIONS
from metrics.image import central_slice
from readerstudy.dashboard import TABLE_COLUMNS, table_rows
from readerstudy.dashboard_store import stored_payload
from readerstudy.dicom import blinded_dicom, to_stored_values
from readerstudy.export import (
    HISTORY_COLUMNS,
    METRIC_COLUMNS,
    RANKING_COLUMNS,
    REPEAT_COLUMNS,
    SCORE_COLUMNS,
    TRAINING_COLUMNS,
    history_rows,
    metric_rows,
    ranking_rows,
    repeat_rows,
    score_history,
    score_rows,
    training_rows,
    write_csv,
)
from readerstudy.forms import MOST_ON_ONE_SCREEN, MetricLabForm, NewStudyForm
from readerstudy.metric_status import (
    current_metric_values,
    metric_failures,
    metric_progress,
)
from readerstudy.models import Assignment, Case, Reader, Reconstruction, Study
from readerstudy.models.lab import MAX_LAB_REFERENCES


class StudyList(LoginRequiredMixin, TemplateView):
    """The studies I read (with my progress) and the studies I run."""

    template_name = "readerstudy/study_list.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        memberships = Reader.objects.of_user(user).select_related("study")
        orders = memberships.reading_orders()
        # Drafts I was invited to: not readable yet, but mine (the page told an invitee both
        # "it appears here once opened" and "ask the researcher to add you").
        waiting = [
            m.study
            for m in Reader.objects.of_drafts_for(user)
            .select_related("study")
            .order_by("study__title")
        ]
        return super().get_context_data(
            reading=[(m.study, orders[m.pk].done, orders[m.pk].total) for m in memberships],
            waiting=waiting,
            running=Study.objects.run_by(user),
            **kwargs,
        )


class NewStudy(LoginRequiredMixin, PermissionRequiredMixin, CreateView):
    """Create a study: a draft with the default questions, run by its creator. Who may create
    studies is Django's `add_study` permission (staff grant it, or a group that has it)."""

    permission_required = "readerstudy.add_study"
    form_class = NewStudyForm
    template_name = "readerstudy/new_study.html"

    def handle_no_permission(self):
        if self.request.user.is_authenticated:  # signed in, not allowed: 403, not the login page
            raise PermissionDenied
        return super().handle_no_permission()

    def form_valid(self, form):
        with transaction.atomic():
            form.instance.created_by = self.request.user
            study = form.save()
            study.add_default_questions()
            study.researchers.add(self.request.user)
        return HttpResponseRedirect(study.get_absolute_url())


class ReadingPage(LoginRequiredMixin, DetailView):
    """The reading room: my next item of an open study, in the viewer, scored by keyboard."""

    template_name = "readerstudy/read.html"
    context_object_name = "study"

    def get_queryset(self):
        return Study.objects.read_by(self.request.user)

    def get_context_data(self, **kwargs):
        # One viewport per reconstruction a screen can show (a ranking's set size at most).
        return super().get_context_data(slots=range(1, MOST_ON_ONE_SCREEN + 1), **kwargs)


class StudyDetail(LoginRequiredMixin, DetailView):
    """A study for its researchers: cases, reconstructions, metric values, readers' progress.

    Anyone else, readers included, gets 404: the page shows methods and metric values.
    """

    template_name = "readerstudy/study_detail.html"
    context_object_name = "study"

    def get_queryset(self):
        return Study.objects.run_by(self.request.user)

    def get_context_data(self, **kwargs):
        study = self.object
        names, values = current_metric_values(study)
        cases = Case.objects.filter(study=study).prefetch_related(
            Prefetch(
                "reconstructions",
                queryset=Reconstruction.objects.prefetch_related(
                    Prefetch("metric_values", queryset=values, to_attr="current_values")
                ),
            )
        )
        for case in cases:
            for reconstruction in case.reconstructions.all():
                # current_values: the Prefetch's to_attr; metric_cells: one per column, for the page.
                by_name = {v.metric: v for v in reconstruction.current_values}  # type: ignore[attr-defined]
                reconstruction.metric_cells = [by_name.get(name) for name in names]  # type: ignore[attr-defined]
        readers = study.readers.select_related("user")
        orders = readers.reading_orders()
        readers = [
            (r.user.username, orders[r.pk].done, orders[r.pk].total, r.removed_at is not None)
            for r in readers
        ]
        return super().get_context_data(
            cases=cases,
            metric_names=names,
            progress=metric_progress(study),
            failures=metric_failures(study),
            not_queued=list(study.cases.exclude(metrics_queue_error="")),
            readers=readers,
            lab_form=MetricLabForm(),
            latest_lab=study.labs.first(),
            lab_max_references=MAX_LAB_REFERENCES,
            perturbations=PERTURBATIONS.items(),
            **kwargs,
        )


@require_GET
@login_required
def item_image(request, public_id: str, which: str):
    """One of my items as blinded DICOM; anyone else's item is 404."""
    item = get_object_or_404(
        Assignment.objects.of_reader(request.user).select_related(
            "reconstruction__case", "comparison__case", "reader__study"
        ),
        public_id=public_id,
    )
    if item.reader.study.status != Study.Status.OPEN:
        raise Http404("the study is not open for reading")
    side_by_side = item.reader.study.presentation == Study.Presentation.SIDE_BY_SIDE
    if which == "reference":
        if not side_by_side:
            raise Http404
        shown = None
    elif which == "reconstruction" and item.reconstruction_id:
        shown = item.reconstruction
    else:
        # A comparison's images by their place in this reader's layout: slot-1 is leftmost.
        slots = {f"slot-{k}": pk for k, pk in enumerate(item.layout, start=1)}
        if which not in slots:
            raise Http404
        shown = get_object_or_404(Reconstruction, pk=slots[which], case=item.case)
    # All images of a case share the reference's scale, so neither range nor window tells.
    reference = item.case.load_reference()
    image = reference if shown is None else shown.load_image()
    body = blinded_dicom(
        image,
        reference_max=float(reference.max()),
        uid_entropy=[settings.SECRET_KEY, public_id, which],
    )
    response = HttpResponse(body, content_type="application/dicom")
    response["Cache-Control"] = "private, max-age=3600"
    return response


EXPORTS: dict[str, tuple[Callable[[Study], Iterable[dict]], list[str]]] = {
    "scores": (score_rows, SCORE_COLUMNS),
    "metrics": (metric_rows, METRIC_COLUMNS),
    "score-history": (history_rows, HISTORY_COLUMNS),
    "rankings": (ranking_rows, RANKING_COLUMNS),
    "repeats": (repeat_rows, REPEAT_COLUMNS),
    "training": (training_rows, TRAINING_COLUMNS),
}


class ScoreHistory(LoginRequiredMixin, DetailView):
    """The audit trail of a study's scores for its researchers (404 to anyone else): who
    submitted which value when, and what it replaced. Edits only unless ?all=1."""

    template_name = "readerstudy/score_history.html"
    context_object_name = "study"
    per_page = 100

    def get_queryset(self):
        return Study.objects.run_by(self.request.user)

    def get_context_data(self, **kwargs):
        show_all = self.request.GET.get("all") == "1"
        history = score_history(self.object, edits_only=not show_all)
        page = Paginator(history, self.per_page).get_page(self.request.GET.get("page"))
        return super().get_context_data(
            page=page,
            show_all=show_all,
            edit_count=score_history(self.object, edits_only=True).count(),
            **kwargs,
        )


@require_GET
@login_required
def study_export(request, slug: str, kind: str):
    """A study's scores or metrics as CSV, for its researchers; 404 for anyone else."""
    study = get_object_or_404(Study.objects.run_by(request.user), slug=slug)
    if kind not in EXPORTS:
        raise Http404
    rows, columns = EXPORTS[kind]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{kind}.csv"'
    write_csv(rows(study), columns, response)
    return response


class Dashboard(LoginRequiredMixin, DetailView):
    """Which metric agrees with the readers: live, for the study's researchers (404 to anyone
    else). The page draws what /api/studies/<slug>/analysis/ returns and polls it."""

    template_name = "readerstudy/dashboard.html"
    context_object_name = "study"

    def get_queryset(self):
        return Study.objects.run_by(self.request.user)

    def get_context_data(self, **kwargs):
        return super().get_context_data(poll_ms=settings.DASHBOARD_POLL_MS, **kwargs)


@require_GET
@login_required
def dashboard_table(request, slug: str):
    """Every question's ranked metric table as CSV (the dashboard's download)."""
    study = get_object_or_404(Study.objects.run_by(request.user), slug=slug)
    payload = stored_payload(study)
    if payload is None:
        response = HttpResponse(
            "The first analysis of this study is being computed; try again in a few seconds.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = "5"
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-metric-agreement.csv"'
    write_csv(table_rows(payload), TABLE_COLUMNS, response)
    return response


@require_GET
@login_required
def reconstruction_preview(request, slug: str, public_id: str, which: str):
    """A reconstruction or its reference as PNG, for the researchers who open a point of the
    dashboard's scatter plot. Scaled by the reference's maximum, as readers see it."""
    reconstruction = get_object_or_404(
        Reconstruction.objects.select_related("case"),
        public_id=public_id,
        case__study__in=Study.objects.run_by(request.user).filter(slug=slug),
    )
    if which not in ("reconstruction", "reference"):
        raise Http404
    reference = reconstruction.case.load_reference()
    image = reference if which == "reference" else reconstruction.load_image()
    stored = to_stored_values(central_slice(image), float(reference.max()))
    buffer = io.BytesIO()
    Image.fromarray((stored // 16).astype("uint8")).save(buffer, format="PNG")
    response = HttpResponse(buffer.getvalue(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer to a throttled sign-in: 429 and a page saying how long to wait."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {
        "username": username,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cooloff_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }
    return render(request, "registration/locked_out.html", context, status=429)
