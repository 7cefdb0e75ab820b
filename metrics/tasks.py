"""Celery tasks that compute metrics and store them (thin: the maths is in the cores)."""

from django.conf import settings
from django.utils import timezone

from metrics.device import resolve_device
from metrics.image import PIXEL_METRICS, PIXEL_METRICS_VERSION, pixel_metrics_or_errors
from metrics.models import MetricValue
from readerstudy.config.celery import idempotent_task
from readerstudy.models import Case


@idempotent_task()
def compute_case_metrics(*, case_pk: int) -> None:
    """PSNR, SSIM and NMSE of every reconstruction of one case, the reference loaded once."""
    case = Case.objects.filter(pk=case_pk).first()
    if case is None:
        return  # the study was deleted after this task was queued
    reconstructions = list(case.reconstructions.all())
    device = resolve_device(settings.METRICS_DEVICE)
    results = pixel_metrics_or_errors(
        case.load_reference(), [r.load_image() for r in reconstructions], device=device
    )
    for reconstruction, result in zip(reconstructions, results, strict=True):
        for metric in PIXEL_METRICS:
            failed = isinstance(result, Exception)
            MetricValue.objects.update_or_create(
                reconstruction=reconstruction,
                metric=metric,
                version=PIXEL_METRICS_VERSION,
                defaults={
                    "value": None if failed else result[metric],
                    "error": str(result) if failed else "",
                    "device": device,
                    "computed_at": timezone.now(),
                },
            )
