"""What a researcher does to a study over time: uploads of images and invitations of readers."""

from __future__ import annotations

import hashlib
import secrets
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from readerstudy.models.studies import Study


def token_digest(token: str) -> str:
    """Invitations are stored by the SHA-256 of their token: a copy of the database is no
    key to the study."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationError(Exception):
    """An invitation link that cannot be used (unknown, used, expired, revoked, study closed)."""


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> InvitationQuerySet:
        return self.filter(used_at__isnull=True, revoked_at__isnull=True).filter(
            expires_at__gt=timezone.now()
        )


class Invitation(models.Model):
    """A single-use link that lets one radiologist join a study as a reader."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="invitations")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    note = models.CharField(
        max_length=200, blank=True, help_text="Whom it is for (the researcher's note)"
    )
    email = models.EmailField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation to {self.study.slug} ({self.note or self.email or self.pk})"

    @classmethod
    def create(
        cls, study: Study, *, by, note: str = "", email: str = ""
    ) -> tuple[Invitation, str]:
        """A new invitation and its token (shown once: only its digest is stored)."""
        token = secrets.token_urlsafe(24)
        lifetime = timedelta(days=settings.INVITATION_LIFETIME_DAYS)
        invitation = cls.objects.create(
            study=study,
            digest=token_digest(token),
            note=note,
            email=email,
            created_by=by,
            expires_at=timezone.now() + lifetime,
        )
        return invitation, token

    @classmethod
    def usable(cls, token: str) -> Invitation:
        """The invitation of `token`, if it can still be used; else InvitationError saying why."""
        invitation = cls.objects.select_related("study").filter(digest=token_digest(token)).first()
        if invitation is None:
            raise InvitationError(
                "This invitation link is not valid. Ask the researcher for a new one."
            )
        if invitation.used_at is not None:
            raise InvitationError(
                "This invitation link was used already; each link admits one reader. Sign in, "
                "or ask the researcher for a new link."
            )
        if invitation.revoked_at is not None:
            raise InvitationError("This invitation was withdrawn by the researcher.")
        if invitation.expires_at <= timezone.now():
            raise InvitationError(
                f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Ask "
                "the researcher for a new one."
            )
        if invitation.study.status == Study.Status.CLOSED:
            raise InvitationError("This study is closed: reading has ended.")
        return invitation

    @transaction.atomic
    def accept(self, user):
        """Make `user` a reader of the study and use the invitation up (once, even when two
        tabs accept at the same moment). Returns the Reader."""
        # One conditional UPDATE: of two acceptances at once, exactly one changes the row.
        claimed = Invitation.objects.filter(pk=self.pk, used_at__isnull=True).update(
            used_at=timezone.now(), used_by=user
        )
        if not claimed:
            raise InvitationError("This invitation link was used already.")
        return self.study.assign_reader(user)


class StudyImport(models.Model):
    """One upload of images to a study and its import by a background task."""

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        UNPACKING = "unpacking", "Unpacking"
        CHECKING = "checking", "Checking and storing images"
        DONE = "done", "Imported"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="imports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    file_names = models.JSONField(default=list, help_text="What was uploaded")
    upload_bytes = models.BigIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, help_text="Every problem, one sentence each")
    notes = models.JSONField(
        default=list, blank=True, help_text="What a successful import should know (small cases)"
    )
    cases_added = models.PositiveIntegerField(default=0)
    reconstructions_added = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} into {self.study.slug} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    def folder(self) -> Path:
        """Where the upload waits for the worker and is unpacked (removed when it ends)."""
        return Path(settings.UPLOADS_DIR) / f"import-{self.pk}"

    def queue(self) -> None:
        """Send the import task once the current transaction commits."""
        pk = self.pk
        transaction.on_commit(lambda: send_import_task(pk))


def send_import_task(import_pk: int) -> None:
    """Publish one import's task; an unreachable broker fails the import with a sentence."""
    from kombu.exceptions import OperationalError as BrokerError

    from readerstudy.tasks import import_upload

    try:
        import_upload.apply_async(kwargs={"import_pk": import_pk})
    except (BrokerError, OSError) as error:
        job = StudyImport.objects.get(pk=import_pk)
        shutil.rmtree(job.folder(), ignore_errors=True)
        StudyImport.objects.filter(pk=import_pk).update(
            state=StudyImport.State.FAILED,
            finished_at=timezone.now(),
            problems=[
                f"the task queue is unreachable ({error}); nothing was imported: upload again "
                "once the workers' broker is back"
            ],
        )
