"""The dashboard's latest finished analysis of a study, shared by every web and worker process.

The analysis runs in a worker (readerstudy.tasks.refresh_dashboard), never in a web request:
computed there in up to seconds, it held a sync web worker and readers queued behind it
(bench-load, issue 33). The web serves what is stored here, with its data version.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

from readerstudy.models.studies import Study


class DashboardSnapshot(models.Model):
    """One per study: the latest finished payload as JSON text, the data version it describes,
    and when an analysis was last queued (one at a time per study)."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="dashboard")
    version = models.CharField(max_length=40, blank=True, help_text="Data version analysed")
    payload = models.TextField(blank=True, help_text="The dashboard's JSON, as served")
    computed_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="How long the analysis took")
    queued_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"dashboard of {self.study} at {self.version or 'nothing yet'}"

    @classmethod
    def claim_queue(cls, study: Study, *, lost_after: timedelta) -> bool:
        """Mark an analysis of `study` as queued, unless one is queued or running already;
        True where this caller should send the task. A task lost with its worker is claimed
        again after `lost_after`. One conditional UPDATE: two processes never both claim."""
        cls.objects.get_or_create(study=study)
        now = timezone.now()
        free = Q(queued_at__isnull=True) | Q(queued_at__lt=now - lost_after)
        return bool(cls.objects.filter(Q(study=study) & free).update(queued_at=now))

    @classmethod
    def release_queue(cls, study_pk: int) -> None:
        cls.objects.filter(study_id=study_pk).update(queued_at=None)
