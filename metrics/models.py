"""Stored metric values, one per (reconstruction, metric, convention version)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def current_version(name: str) -> str:
    """The version a worker with this process's settings stores for `name` (its precision
    included). Workers store under it; readers of the values go through `worker_metrics()`,
    since the web process may have neither the weights nor the precision of the workers."""
    from metrics.engine import metric_version

    return metric_version(name, settings.METRICS_PRECISION, settings.DFD_WEIGHTS_DIR)


def worker_metrics() -> dict[str, str]:
    """{metric: version} that the workers compute, as they last reported it (`WorkerMetric`),
    in registry order; where no worker has reported yet (a single-process deployment, `make
    demo` before its first case), what this process's own settings would compute.

    The one definition of which values are current, for the dashboard, the study page, every
    export, `analyze` and the queues: on the recommended deployment the weights are on the
    GPU workers only, and a web process deciding from its own folder dropped every DFD.
    """
    from metrics.engine import ALL_METRICS

    reported = dict(WorkerMetric.objects.values_list("metric", "version"))
    if not reported:
        reported = {name: current_version(name) for name in configured_metrics()}
    return {name: reported[name] for name in ALL_METRICS if name in reported}


def report_worker_metrics() -> dict[str, str]:
    """Record what this worker computes (its configured metrics and their versions), replacing
    an earlier report; written only when it changed. Every metrics worker computes every
    metric of a case, so the workers of one deployment share one configuration."""
    from django.db import transaction

    mine = {name: current_version(name) for name in configured_metrics()}
    if dict(WorkerMetric.objects.values_list("metric", "version")) != mine:
        with transaction.atomic():
            WorkerMetric.objects.exclude(metric__in=list(mine)).delete()
            WorkerMetric.objects.bulk_create(
                [WorkerMetric(metric=name, version=version) for name, version in mine.items()],
                update_conflicts=True,
                unique_fields=["metric"],
                update_fields=["version", "reported_at"],
            )
    return mine


class MetricValueQuerySet(models.QuerySet):
    def current(
        self, names: list[str] | None = None, *, versions: dict[str, str] | None = None
    ) -> MetricValueQuerySet:
        """Values of `names` (default: every registered metric) at their current version: the
        workers' (`versions`, else `worker_metrics()`), else this process's."""
        from metrics.engine import ALL_METRICS

        versions = worker_metrics() if versions is None else versions
        wanted = Q(pk__in=[])
        for name in ALL_METRICS if names is None else names:
            wanted |= Q(metric=name, version=versions.get(name) or current_version(name))
        return self.filter(wanted)


class WorkerMetric(models.Model):
    """A metric the metrics workers compute and the version they store it under, as the
    workers last reported (at start-up and with each case)."""

    metric = models.CharField(max_length=64, unique=True)
    version = models.CharField(max_length=64)
    reported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["metric"]

    def __str__(self) -> str:
        return f"{self.metric} ({self.version})"


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
