"""Celery tasks that compute metrics and store them (thin: the maths is in the cores)."""

from django.conf import settings
from django.utils import timezone

from metrics.device import resolve_device
from metrics.engine import MetricEngine
from metrics.models import MetricValue, configured_metrics, current_version
from readerstudy.config.celery import idempotent_task
from readerstudy.models import Case


@idempotent_task()
def compute_case_metrics(*, case_pk: int) -> None:
    """Every configured metric of every reconstruction of one case; the reference is read and
    encoded once. A metric that fails on one image is stored with its error message."""
    case = Case.objects.filter(pk=case_pk).first()
    if case is None:
        return  # the study was deleted after this task was queued
    reconstructions = list(case.reconstructions.all())
    device = resolve_device(settings.METRICS_DEVICE)
    engine = MetricEngine(
        configured_metrics(),
        weights_dir=settings.DFD_WEIGHTS_DIR,
        device=device,
        batch_size=settings.METRICS_BATCH_SIZE,
        precision=settings.METRICS_PRECISION,
        compiled=settings.METRICS_COMPILE,
        tolerate_load_errors=True,
    )
    results = engine.by_metric(case.load_reference(), [r.load_image() for r in reconstructions])
    for metric, values in results.items():
        for reconstruction, value in zip(reconstructions, values, strict=True):
            failed = isinstance(value, Exception)
            MetricValue.objects.update_or_create(
                reconstruction=reconstruction,
                metric=metric,
                version=current_version(metric),
                defaults={
                    "value": None if failed else value,
                    "error": str(value) if failed else "",
                    "device": device,
                    "computed_at": timezone.now(),
                },
            )
