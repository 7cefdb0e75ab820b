"""A metric lab run on a study's own references (metrics/lab.py), by a background task."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from readerstudy.models.studies import Study

# Enough references for a curve's spread, few enough for a CPU: 10 x 4 kinds x 10 levels is
# 400 copies per metric (docs/benchmarks.md has the time).
MAX_LAB_REFERENCES = 10
MIN_LAB_LEVELS, MAX_LAB_LEVELS = 3, 20


class MetricLab(models.Model):
    """How every configured metric responds to graded k-space degradations of up to
    MAX_LAB_REFERENCES of the study's references (the central slice of each volume; a lab of
    whole volumes is for the command line, `python -m metrics lab`)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="labs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    kinds = models.JSONField(default=list, help_text="The perturbations, in order")
    levels = models.PositiveSmallIntegerField(default=10)
    seed = models.PositiveIntegerField(default=0)
    references_done = models.PositiveSmallIntegerField(default=0)
    references_total = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(null=True, blank=True, help_text="metrics.lab.run_lab's result")
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One lab at a time per study: a second click while one runs adds nothing.
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_unfinished_lab_per_study",
            )
        ]

    def __str__(self) -> str:
        return f"metric lab {self.pk} of {self.study.slug} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    def queue(self) -> None:
        """Send the lab's task once the current transaction commits."""
        pk = self.pk
        transaction.on_commit(lambda: send_lab_task(pk))

    def fail(self, problem: str) -> None:
        self.state, self.problem, self.finished_at = self.State.FAILED, problem, timezone.now()
        self.save(update_fields=["state", "problem", "finished_at"])


def lab_cases(study: Study) -> list:
    """Up to MAX_LAB_REFERENCES of the study's cases with their own reference, spread evenly
    over the study (training cases too: their references are as real)."""
    cases = list(study.cases.order_by("pk"))
    if len(cases) <= MAX_LAB_REFERENCES:
        return cases
    picks = np.linspace(0, len(cases) - 1, MAX_LAB_REFERENCES).round().astype(int)
    return [cases[i] for i in picks]


def send_lab_task(lab_pk: int) -> None:
    """Publish one lab's task; an unreachable broker fails the lab with a sentence."""
    from kombu.exceptions import OperationalError as BrokerError

    from readerstudy.tasks import run_metric_lab

    try:
        run_metric_lab.apply_async(kwargs={"lab_pk": lab_pk})
    except (BrokerError, OSError) as error:
        MetricLab.objects.get(pk=lab_pk).fail(
            f"the task queue is unreachable ({error}); nothing ran: start the lab again once "
            "the broker is back"
        )
