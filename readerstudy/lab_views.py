"""The metric lab on the study page: start one (POST) and follow it (JSON, polled by lab.js).
For the study's researchers only (404 to anyone else, as on the study page)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from fixtures.perturbations import PERTURBATIONS
from readerstudy.dashboard_store import stored_payload
from readerstudy.forms import MetricLabForm
from readerstudy.models import MetricLab, Study


def _section(study: Study) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("readerstudy:detail", args=[study.slug]) + "#metric-lab")


@login_required
@require_POST
def start_lab(request, slug: str):
    """Queue a lab; while one is queued or running, a second request adds nothing."""
    study = get_object_or_404(Study.objects.run_by(request.user), slug=slug)
    form = MetricLabForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, f"The metric lab did not start: {error}")
        return _section(study)
    if not study.cases.exists():
        messages.error(request, "The metric lab needs images: import some first.")
        return _section(study)
    try:
        with transaction.atomic():
            lab = MetricLab.objects.create(
                study=study,
                created_by=request.user,
                kinds=[k for k in PERTURBATIONS if k in form.cleaned_data["kinds"]],
                levels=form.cleaned_data["levels"],
            )
            lab.queue()
    except IntegrityError:
        messages.info(request, "A metric lab is already running for this study.")
        return _section(study)
    # Tagged so that the page's script can keep it true as the lab goes on (js/lab.js).
    messages.success(
        request, "The metric lab is queued; this section follows it.", extra_tags="lab-notice"
    )
    return _section(study)


def reader_agreement(study: Study) -> dict:
    """The dashboard's aligned Spearman of each metric with the readers, per Likert question
    (the dashboard's latest finished analysis; none before the first)."""
    payload = stored_payload(study) or {}
    analysis = payload.get("analysis") or {}
    return {
        question: {
            name: block["metrics"][name].get("aligned_spearman") for name in block["metrics"]
        }
        for question, block in (analysis.get("questions") or {}).items()
    }


@login_required
@require_GET
def lab_status(request, slug: str):
    """The latest lab of the study (state, progress) and the latest finished one's result, with
    the readers' verdict: a new lab running leaves the last curves on the page. A page that
    already shows the result finished at `?shown=` gets it no more (`last_result` null): the
    result is sent, and the dashboard's analysis read, once, not on every poll."""
    study = get_object_or_404(Study.objects.run_by(request.user), slug=slug)
    lab = study.labs.first()
    if lab is None:
        return JsonResponse({"lab": None, "last_result": None})
    done = (
        lab
        if lab.state == MetricLab.State.DONE
        else study.labs.filter(state=MetricLab.State.DONE).first()
    )
    body = {
        "lab": {
            "state": lab.state,
            "state_label": lab.get_state_display(),
            "kinds": lab.kinds,
            "levels": lab.levels,
            "references_done": lab.references_done,
            "references_total": lab.references_total,
            "created_at": lab.created_at.isoformat(),
            "finished_at": lab.finished_at.isoformat() if lab.finished_at else None,
            "problem": lab.problem,
        },
        "last_result": None,
    }
    if done is not None and done.finished_at.isoformat() != request.GET.get("shown"):
        body["last_result"] = {
            "finished_at": done.finished_at.isoformat(),
            "result": done.result,
            "reader_agreement": reader_agreement(study),
            "questions": {q.key: q.label for q in study.questions.filter(kind="likert")},
        }
    return JsonResponse(body)
