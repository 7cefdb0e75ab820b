"""Stored metric values, one per (reconstruction, metric, convention version)."""

from django.db import models
from django.utils import timezone


class MetricValue(models.Model):
    """A metric of one reconstruction against its case's reference, or why it failed.

    Unique per (reconstruction, metric, version), so a retried or redelivered task overwrites
    its earlier result instead of adding a second one.
    """

    reconstruction = models.ForeignKey(
        "readerstudy.Reconstruction", on_delete=models.CASCADE, related_name="metric_values"
    )
    metric = models.CharField(max_length=64)
    version = models.CharField(max_length=64, help_text="Conventions or encoder weights version")
    value = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    device = models.CharField(max_length=16, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

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
    """The metrics workers compute: METRICS_ENABLED, else every metric whose weights are here."""
    from django.conf import settings

    from metrics.engine import available_metrics

    return available_metrics(settings.DFD_WEIGHTS_DIR, settings.METRICS_ENABLED or None)
