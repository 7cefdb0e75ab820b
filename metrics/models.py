"""Stored metric values, one per (reconstruction, metric, convention version)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def current_version(name: str) -> str:
    """The version a worker with these settings stores for `name` (its precision included).

    The one place that says which stored values are current: workers store under it, and
    every page, export and queue reads through `MetricValue.objects.current()`.
    """
    from metrics.engine import metric_version

    return metric_version(name, settings.METRICS_PRECISION, settings.DFD_WEIGHTS_DIR)


class MetricValueQuerySet(models.QuerySet):
    def current(self, names: list[str] | None = None) -> MetricValueQuerySet:
        """Values of `names` (default: every registered metric) at their current version."""
        from metrics.engine import ALL_METRICS

        wanted = Q(pk__in=[])
        for name in ALL_METRICS if names is None else names:
            wanted |= Q(metric=name, version=current_version(name))
        return self.filter(wanted)


class MetricValue(models.Model):
    """A metric of one reconstruction against its case's reference, or why it failed.

    Unique per (reconstruction, metric, version), so a retried or redelivered task overwrites
    its earlier result instead of adding a second one.
    """

    reconstruction = models.ForeignKey(
        settings.METRICS_RECONSTRUCTION_MODEL,
        on_delete=models.CASCADE,
        related_name="metric_values",
    )
    metric = models.CharField(max_length=64)
    version = models.CharField(max_length=64, help_text="Conventions or encoder weights version")
    value = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    device = models.CharField(max_length=16, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    objects = MetricValueQuerySet.as_manager()

    class Meta:
        ordering = ["reconstruction", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["reconstruction", "metric", "version"], name="unique_metric_value"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value}" if not self.error else f"{self.metric}: {self.error}"


def configured_metrics() -> list[str]:
    """The metrics workers compute: METRICS_ENABLED as named (one whose weights are missing
    or fail their checksum is then stored with that error, so the researcher sees why), else
    every metric whose weights are here and pass their checksum."""
    from metrics.engine import ALL_METRICS, available_metrics

    if settings.METRICS_ENABLED:
        return [name for name in ALL_METRICS if name in settings.METRICS_ENABLED]
    return available_metrics(settings.DFD_WEIGHTS_DIR)
