"""Celery tasks that compute metrics and store them (thin: the maths is in the cores).

The metrics app imports nothing of the study app. What it needs of the model named by
`settings.METRICS_RECONSTRUCTION_MODEL` (readerstudy.Reconstruction):
    * `case_id`, grouping the reconstructions that share one reference;
    * `load_image()` -> the reconstruction as a NumPy array;
    * `case.load_reference()` -> that reference, the same shape.
"""

from celery import shared_task  # noqa: TID251 (wrapped once, below)
from celery.signals import worker_ready
from django.apps import apps
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from metrics.device import resolve_device
from metrics.engine import MetricEngine
from metrics.models import (
    MetricValue,
    current_version,
    report_worker_metrics,
)

# A lost database connection or a locked SQLite file is worth another try; a bad image is not.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def idempotent_task(**options):
    """Register a task that may safely run twice (for idempotent tasks only).

    The message is acknowledged after the task returns (`acks_late`), and a pool process killed
    mid-task (out of memory, SIGKILL) has its message put back on the queue
    (`reject_on_worker_lost`) rather than acknowledged as failed, so the work is done again; the
    task's writes must therefore be overwrites (an upsert on a unique key). Transient
    database errors are retried with exponential back-off. Queues are chosen by
    CELERY_TASK_ROUTES (metrics tasks go to the `metrics` queue that GPU workers consume).
    """
    return shared_task(
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=True,
        max_retries=5,
        **options,
    )


def configured_engine(names: list[str], device: str) -> MetricEngine:
    """The metric engine as the settings configure a worker's (make bench-study times the
    same one beside the workers)."""
    return MetricEngine(
        names,
        weights_dir=settings.DFD_WEIGHTS_DIR,
        device=device,
        batch_size=settings.METRICS_BATCH_SIZE,
        precision=settings.METRICS_PRECISION,
        compiled=settings.METRICS_COMPILE,
        tolerate_load_errors=True,
    )


METRICS_QUEUE = "metrics"


@worker_ready.connect
def _report_what_this_worker_computes(sender=None, **_) -> None:
    """A worker that consumes the metrics queue says at start-up which metrics it computes
    and under which versions (`WorkerMetric`), so that the web process, which may have no
    weights, lists them and queues what is missing before the first case runs."""
    queues = {queue.name for queue in sender.app.amqp.queues.consume_from.values()}
    if METRICS_QUEUE in queues:
        report_worker_metrics()


@idempotent_task()
def compute_case_metrics(*, case_pk: int) -> None:
    """Every configured metric of every reconstruction of one case; the reference is read and
    encoded once. A metric that fails on one image is stored with its error message."""
    reconstruction_model = apps.get_model(settings.METRICS_RECONSTRUCTION_MODEL)
    reconstructions = list(
        reconstruction_model.objects.filter(case_id=case_pk).select_related("case")
    )
    if not reconstructions:
        return  # the study was deleted after this task was queued
    case = reconstructions[0].case
    device = resolve_device(settings.METRICS_DEVICE)
    names = list(report_worker_metrics())
    engine = configured_engine(names, device)
    results = engine.by_metric(case.load_reference(), [r.load_image() for r in reconstructions])
    now = timezone.now()
    # One write per case, an overwrite on the unique key (a retried task stores the same).
    MetricValue.objects.bulk_create(
        [
            MetricValue(
                reconstruction=reconstruction,
                metric=metric,
                version=current_version(metric),
                value=None if isinstance(value, Exception) else value,
                error=str(value) if isinstance(value, Exception) else "",
                device=device,
                computed_at=now,
            )
            for metric, values in results.items()
            for reconstruction, value in zip(reconstructions, values, strict=True)
        ],
        update_conflicts=True,
        unique_fields=["reconstruction", "metric", "version"],
        update_fields=["value", "error", "device", "computed_at"],
    )
