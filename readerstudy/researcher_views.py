"""The researcher's pages for running a study without a shell: settings and questions,
images, people (readers, invitations, co-researchers), opening and closing, the archive.
Every page is for the study's researchers (404 to anyone else, as on the study page)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Sum
from django.http import FileResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from readerstudy.archive import write_archive
from readerstudy.forms import (
    InvitationForm,
    QuestionFormSet,
    SignUpForm,
    StudySettingsForm,
    UsernameForm,
)
from readerstudy.metric_status import metric_failures
from readerstudy.models import Case, Invitation, InvitationError, Study


def _my_study(request, slug: str) -> Study:
    return get_object_or_404(Study.objects.run_by(request.user), slug=slug)


def _back_to(view: str, study: Study) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(view, args=[study.slug]))


@login_required
@require_http_methods(["GET", "POST"])
def study_setup(request, slug: str):
    """Title, instructions, presentation and the questions (fixed once any score exists)."""
    study = _my_study(request, slug)
    locked = study.has_scores()
    questions = study.questions.order_by("position", "pk")
    posted = request.POST if request.method == "POST" else None
    form = StudySettingsForm(posted, instance=study, locked=locked, prefix="study")
    formset = None if locked else QuestionFormSet(posted, queryset=questions, prefix="q")
    if posted is not None and form.is_valid() and (formset is None or formset.is_valid()):
        with transaction.atomic():
            form.save()
            if formset is not None:
                _save_questions(study, formset)  # brings the orders in line
            elif form.repeats_changed():
                study.extend_orders()
        messages.success(request, "Saved.")
        return _back_to("readerstudy:setup", study)
    return render(
        request,
        "readerstudy/study_setup.html",
        {
            "study": study,
            "form": form,
            "formset": formset,
            "locked": locked,
            "questions": questions,
        },
    )


def _save_questions(study: Study, formset) -> None:
    """Save the questions, then bring every reader's order in line with them: no score exists
    yet (else the questions are locked), so comparisons of a changed design are drawn again
    and items of a removed question leave the orders."""
    for form in formset.deleted_forms:
        if form.instance.pk:
            form.instance.delete()
    # ordered_forms: the kept forms (new blank ones aside) by their ORDER field.
    kept = [f for f in formset.ordered_forms if f.has_changed() or f.instance.pk]
    for position, form in enumerate(kept):
        if form.design_changed():
            form.instance.comparisons.all().delete()
        question = form.save(commit=False)
        question.study = study
        question.position = position
        question.save()
    study.extend_orders()


@login_required
@require_POST
def study_status(request, slug: str):
    """Open a study for reading, or close it (reading stops; everything stays)."""
    study = _my_study(request, slug)
    wanted = request.POST.get("status")
    if wanted == Study.Status.OPEN:
        problem = study.opening_problem()
        if problem:
            messages.error(request, f"The study cannot open: {problem}.")
            return _back_to("readerstudy:detail", study)
        study.status = Study.Status.OPEN
        messages.success(request, "The study is open: its readers can read.")
    elif wanted == Study.Status.CLOSED and study.status == Study.Status.OPEN:
        study.status = Study.Status.CLOSED
        messages.success(request, "The study is closed: reading has stopped; results stay.")
    else:
        messages.error(request, "That change of status is not possible.")
        return _back_to("readerstudy:detail", study)
    study.save(update_fields=["status"])
    return _back_to("readerstudy:detail", study)


@login_required
@require_POST
def retry_failed_metrics(request, slug: str):
    """Queue again every case with a failed metric value (a worker without its weights then,
    a transient fault); the new values overwrite the failures."""
    study = _my_study(request, slug)
    cases = Case.objects.filter(pk__in={row["case_pk"] for row in metric_failures(study)})
    for case in cases:
        case.queue_metrics()
    if cases:
        messages.success(
            request,
            f"Queued the metrics of {len(cases)} case{pluralize(len(cases))} again; "
            "reload to follow them.",
        )
    else:
        messages.info(request, "No metric has failed: nothing to retry.")
    return _back_to("readerstudy:detail", study)


@login_required
@require_GET
def study_images(request, slug: str):
    """Upload images (a zip, or a folder or several files) and follow their import."""
    study = _my_study(request, slug)
    return render(
        request,
        "readerstudy/study_images.html",
        {
            "study": study,
            "cases": study.cases.count(),
            "training_cases": study.cases.filter(training=True).count(),
            "max_bytes": settings.UPLOAD_MAX_BYTES,
            "max_files": settings.UPLOAD_MAX_FILES,
            "max_unpacked": settings.UPLOAD_MAX_UNPACKED_BYTES,
            "imports": study.imports.all()[:10],
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def study_people(request, slug: str):
    """Readers (add, remove, their progress and time), invitations and co-researchers."""
    study = _my_study(request, slug)
    action = request.POST.get("action") if request.method == "POST" else None
    reader_form = UsernameForm(
        request.POST if action == "add-reader" else None,
        prefix="reader",
        candidates=Study.objects.colleagues_of(request.user),
    )
    researcher_form = UsernameForm(
        request.POST if action == "add-researcher" else None,
        prefix="researcher",
        candidates=Study.objects.colleagues_of(request.user, researchers=True),
    )
    invitation_form = InvitationForm(
        request.POST if action == "invite" else None,
        prefix="invite",
        email_enabled=settings.EMAIL_ENABLED,
    )
    new_link = None
    if action == "add-reader" and reader_form.is_valid():
        user = reader_form.cleaned_data["username"]
        if study.researchers.filter(pk=user.pk).exists():
            messages.error(
                request, f"{user.username} runs this study and sees its results: not a reader."
            )
            return _back_to("readerstudy:people", study)
        study.assign_reader(user)
        messages.success(request, f"{user.username} reads this study, in an order of their own.")
        return _back_to("readerstudy:people", study)
    if action == "add-researcher" and researcher_form.is_valid():
        user = researcher_form.cleaned_data["username"]
        if study.readers.filter(user=user, removed_at__isnull=True).exists():
            # Blinding: a reader must never see the results of what they still read.
            messages.error(
                request,
                f"{user.username} reads this study: remove them as a reader first, so that "
                "they never see its results while reading.",
            )
            return _back_to("readerstudy:people", study)
        study.researchers.add(user)
        messages.success(request, f"{user.username} runs this study with you.")
        return _back_to("readerstudy:people", study)
    if action == "invite" and invitation_form.is_valid():
        invitation, token = Invitation.create(
            study,
            by=request.user,
            note=invitation_form.cleaned_data["note"],
            email=invitation_form.cleaned_data.get("email", ""),
        )
        new_link = request.build_absolute_uri(reverse("readerstudy:invitation", args=[token]))
        if invitation.email:
            send_mail(
                f"Invitation to read: {study.title}",
                f"{request.user.username} invites you to read the study “{study.title}”.\n\n"
                f"Open this link to set a password and start (usable once, until "
                f"{invitation.expires_at:%Y-%m-%d} UTC):\n{new_link}\n",
                settings.DEFAULT_FROM_EMAIL,
                [invitation.email],
            )
        invitation_form = InvitationForm(prefix="invite", email_enabled=settings.EMAIL_ENABLED)
    if action in ("remove-reader", "restore-reader"):
        reader = get_object_or_404(study.readers, pk=request.POST.get("reader"))
        if action == "remove-reader":
            reader.removed_at = timezone.now()
            reader.save(update_fields=["removed_at"])
            messages.success(request, f"{reader.user.username} reads no more; their scores stay.")
        else:
            study.assign_reader(reader.user)
            messages.success(request, f"{reader.user.username} reads again, where they stopped.")
        return _back_to("readerstudy:people", study)
    if action == "withdraw":
        study.invitations.filter(pk=request.POST.get("invitation")).update(
            revoked_at=timezone.now()
        )
        return _back_to("readerstudy:people", study)
    if action == "remove-researcher":
        others = study.researchers.exclude(pk=request.user.pk)
        user = get_object_or_404(others, pk=request.POST.get("researcher"))
        if user.pk == study.created_by_id:
            messages.error(
                request, f"{user.username} created this study and stays its researcher."
            )
            return _back_to("readerstudy:people", study)
        study.researchers.remove(user)
        return _back_to("readerstudy:people", study)
    # Time spent: what the reading room measured, summed in the same query for every reader.
    readers = study.readers.select_related("user").annotate(
        seconds=Sum("assignments__scores__seconds_spent")
    )
    orders = study.readers.reading_orders()
    rows = [
        (reader, orders[reader.pk].done, orders[reader.pk].total, reader.seconds or 0.0)
        for reader in readers
    ]
    return render(
        request,
        "readerstudy/study_people.html",
        {
            "study": study,
            "rows": rows,
            "reader_form": reader_form,
            "researcher_form": researcher_form,
            "invitation_form": invitation_form,
            "new_link": new_link,
            "pending": study.invitations.pending(),
            "researchers": study.researchers.order_by("username"),
        },
    )


@require_http_methods(["GET", "POST"])
def accept_invitation(request, token: str):
    """A radiologist's way in: set a user name and password (or use their account), then land
    in the study. Single use; an unusable link says why (410)."""
    try:
        invitation = Invitation.usable(token)
    except InvitationError as problem:
        return render(request, "registration/invitation.html", {"problem": problem}, status=410)
    study = invitation.study
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            return _join(request, invitation, request.user)
    else:
        form = SignUpForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                # The account only with the invitation: a link used by another browser in
                # the meantime rolls the new account back.
                with transaction.atomic():
                    user = form.save()
                    invitation.accept(user)
            except InvitationError as problem:
                messages.error(request, str(problem))
                return HttpResponseRedirect(reverse("readerstudy:home"))
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return _landing(request, invitation)
    return render(request, "registration/invitation.html", {"study": study, "form": form})


def _join(request, invitation: Invitation, user) -> HttpResponseRedirect:
    try:
        invitation.accept(user)
    except InvitationError as problem:
        messages.error(request, str(problem))
        return HttpResponseRedirect(reverse("readerstudy:home"))
    return _landing(request, invitation)


def _landing(request, invitation: Invitation) -> HttpResponseRedirect:
    study = invitation.study
    if study.status == Study.Status.OPEN:
        return HttpResponseRedirect(reverse("readerstudy:read", args=[study.slug]))
    messages.info(
        request,
        f"You are a reader of “{study.title}”. It is not open yet: it can be read here once "
        "the researcher opens it.",
    )
    return HttpResponseRedirect(reverse("readerstudy:home"))


@login_required
@require_GET
def study_archive(request, slug: str):
    """The whole study as one zip (settings, manifest and images, orders, scores, metric
    values) that `manage.py import_study ARCHIVE.zip` restores on another server."""
    study = _my_study(request, slug)
    handle = write_archive(study)
    return FileResponse(handle, as_attachment=True, filename=f"{study.slug}-archive.zip")
