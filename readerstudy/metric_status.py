"""How far a study's metric values are: the study app's view of the metrics app's values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Count, Max, Q

from metrics.engine import ALL_METRICS, minimum_side, too_small
from metrics.models import MetricValue, worker_metrics
from readerstudy.models import Case, Reconstruction, Study


def current_metric_values(study: Study):
    """(the study's metric names, its stored values at their current version).

    The names are those the workers compute, and any other metric with a current value
    stored for this study (restored from an archive, or from an earlier configuration): one
    list for the dashboard, the study page, every export and the multiplicity family of
    `analyze` on them, whichever process holds the weights.
    """
    computed = worker_metrics()
    values = _current_values(study, computed)
    # order_by(): the models' default orderings would make DISTINCT run over their columns.
    stored = set(values.order_by().values_list("metric", flat=True).distinct())
    return _metric_names(computed, stored), values


def current_metric_changes(study: Study) -> tuple[list[str], int, datetime | None]:
    """(the study's metric names as `current_metric_values` gives them, how many of its
    current values are computed, when the latest of those was): what the dashboard's data
    version reads on every poll, in one grouped query."""
    computed = worker_metrics()
    per_metric = (
        _current_values(study, computed)
        .order_by()
        .values("metric")
        .annotate(
            n=Count("pk", filter=Q(value__isnull=False)),
            last=Max("computed_at", filter=Q(value__isnull=False)),
        )
        .values_list("metric", "n", "last")
    )
    stored, done, latest = set(), 0, None
    for name, n, last in per_metric:
        stored.add(name)
        done += n
        if last is not None and (latest is None or last > latest):
            latest = last
    return _metric_names(computed, stored), done, latest


def _current_values(study: Study, versions: dict[str, str]):
    return MetricValue.objects.current(versions=versions).filter(reconstruction__case__study=study)


def _metric_names(computed: Iterable[str], stored: Iterable[str]) -> list[str]:
    known = set(computed) | set(stored)
    return [name for name in ALL_METRICS if name in known]


def _computed_values(study: Study):
    """(the metrics the workers compute, the study's current values of those)."""
    versions = worker_metrics()
    return list(versions), MetricValue.objects.current(list(versions), versions=versions).filter(
        reconstruction__case__study=study
    )


def metric_progress(study: Study) -> dict[str, int]:
    """How many of the study's values of the workers' metrics are computed, failed and
    expected."""
    names, values = _computed_values(study)
    counts = values.aggregate(
        done=Count("pk", filter=Q(value__isnull=False)),
        failed=Count("pk", filter=~Q(error="")),
    )
    expected = Reconstruction.objects.filter(case__study=study).count() * len(names)
    return {**counts, "expected": expected}


def cases_missing_metrics(study: Study) -> list[Case]:
    """Cases with a metric the workers compute not yet stored at its current version (new weights, a
    new convention, a worker that never ran)."""
    names, values = _computed_values(study)
    stored = dict(
        values.values("reconstruction__case")
        .annotate(n=Count("pk"))
        .values_list("reconstruction__case", "n")
    )
    cases = Case.objects.filter(study=study).annotate(n=Count("reconstructions"))
    return [case for case in cases if stored.get(case.pk, 0) < case.n * len(names)]


def metrics_small_cases_lack(cases: Iterable[Case]) -> list[str]:
    """One sentence per case too small for some of the workers' metrics, naming them: said
    when the case is imported, since those metrics will be stored as failures."""
    names = list(worker_metrics())
    notes = []
    for case in cases:
        lacking = too_small(names, case.shape or [])
        if lacking:
            height, width = case.shape[-2:]
            needs = ", ".join(f"{name} {minimum_side(name)}" for name in lacking)
            notes.append(
                f"case {case.name} ({height} x {width}) will lack {', '.join(lacking)}: "
                f"too small for them (smallest side needed: {needs})"
            )
    return notes


def metric_failures(study: Study) -> list[dict]:
    """The study's failed values by metric, then case: one row per (metric, case, reason)
    with how many reconstructions it cost, for the study page's list and its retry button."""
    _, values = current_metric_values(study)
    rows = (
        values.exclude(error="")
        .values("metric", "reconstruction__case__pk", "reconstruction__case__name", "error")
        .annotate(n=Count("pk"))
        .order_by("metric", "reconstruction__case__name", "error")
    )
    order = {name: i for i, name in enumerate(ALL_METRICS)}
    return sorted(
        (
            {
                "metric": row["metric"],
                "case_pk": row["reconstruction__case__pk"],
                "case": row["reconstruction__case__name"],
                "reason": row["error"],
                "reconstructions": row["n"],
            }
            for row in rows
        ),
        key=lambda row: (order.get(row["metric"], len(order)), row["case"]),
    )
