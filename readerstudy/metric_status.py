"""How far a study's metric values are: the study app's view of the metrics app's values."""

from __future__ import annotations

from django.db.models import Count, Q

from metrics.models import MetricValue, configured_metrics
from readerstudy.models import Case, Reconstruction, Study


def current_metric_values(study: Study):
    """(configured metric names, the study's stored values of them at their current version)."""
    names = configured_metrics()
    return names, MetricValue.objects.current(names).filter(reconstruction__case__study=study)


def metric_progress(study: Study) -> dict[str, int]:
    """How many of a study's configured metric values are computed, failed and expected."""
    names, values = current_metric_values(study)
    counts = values.aggregate(
        done=Count("pk", filter=Q(value__isnull=False)),
        failed=Count("pk", filter=~Q(error="")),
    )
    expected = Reconstruction.objects.filter(case__study=study).count() * len(names)
    return {**counts, "expected": expected}


def cases_missing_metrics(study: Study) -> list[Case]:
    """Cases with a configured metric not yet stored at its current version (new weights, a
    new convention, a worker that never ran)."""
    names, values = current_metric_values(study)
    stored = dict(
        values.values("reconstruction__case")
        .annotate(n=Count("pk"))
        .values_list("reconstruction__case", "n")
    )
    cases = Case.objects.filter(study=study).annotate(n=Count("reconstructions"))
    return [case for case in cases if stored.get(case.pk, 0) < case.n * len(names)]
