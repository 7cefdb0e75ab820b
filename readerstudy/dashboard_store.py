"""The dashboard's latest finished analysis: queued by a poll that finds the data changed,
computed by a worker (`store_analysis`, the `refresh_dashboard` task), stored per data version
(DashboardSnapshot) and served by every web process. One analysis at a time per study however
many researchers watch, and none in a web request: computed inside a sync web worker, it held
that worker for seconds and readers queued behind it (bench-load, issue 33).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from readerstudy.dashboard import build_payload, skeleton
from readerstudy.dashboard_data import data_version
from readerstudy.models import DashboardSnapshot, Reconstruction, Study

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """What a poll gets: the version of the analysis served, and whether a newer one is being
    computed (the data changed since)."""

    version: str
    updating: bool


def latest_analysis(study: Study) -> Served:
    """The version of the study's latest finished analysis, queueing a new one where the data
    changed since (at most once per `refresh_interval`, one at a time per study). Costs
    a few cheap queries: the analysis itself never runs in a web request."""
    snapshot = (
        DashboardSnapshot.objects.filter(study=study)
        .only("version", "computed_at", "seconds")
        .first()
    )
    version = polled_version(study, snapshot.computed_at if snapshot is not None else None)
    if snapshot is not None and snapshot.version == version:
        return Served(version, updating=False)
    if snapshot is None or snapshot.computed_at is None:
        request_analysis(study)
        return Served("", updating=True)
    if timezone.now() - snapshot.computed_at >= refresh_interval(snapshot.seconds):
        request_analysis(study)
    return Served(snapshot.version, updating=True)


def refresh_interval(last_analysis_s: float | None) -> timedelta:
    """How long after one analysis of a study the next may be queued: DASHBOARD_MIN_REFRESH_S,
    or as long as the last one took where that is longer: a worker spends at most half its
    time on one study's dashboard while readers score, however large the study."""
    return timedelta(seconds=max(settings.DASHBOARD_MIN_REFRESH_S, last_analysis_s or 0.0))


def polled_version(study: Study, analysed_at: datetime | None) -> str:
    """The study's data version as polls see it: computed at most once per
    DASHBOARD_VERSION_TTL_S per study (in the shared cache, however many dashboards poll),
    and afresh when the analysis being served was stored after it. At 3,600 reconstructions
    and 144,000 scores the version takes 86 ms on SQLite; a dashboard polls every 2 s."""
    ttl = settings.DASHBOARD_VERSION_TTL_S
    key = f"dashboard-version:{study.pk}"
    if ttl > 0:
        cached = cache.get(key)
        if cached is not None and (analysed_at is None or cached[1] >= analysed_at.timestamp()):
            return cached[0]
    checked_at = time.time()
    version = data_version(study)
    if ttl > 0:
        cache.set(key, (version, checked_at), ttl)
    return version


def request_analysis(study: Study) -> None:
    """Queue the study's analysis unless one is queued or running (a task lost with its
    worker is queued again after DASHBOARD_ANALYSIS_LOST_S)."""
    from readerstudy.tasks import refresh_dashboard

    lost_after = timedelta(seconds=settings.DASHBOARD_ANALYSIS_LOST_S)
    if not DashboardSnapshot.claim_queue(study, lost_after=lost_after):
        return
    try:
        refresh_dashboard.apply_async(kwargs={"study_pk": study.pk})
    except Exception:  # the broker's errors come in many types; the next poll tries again
        logger.exception("the dashboard analysis of %s could not be queued", study.slug)
        DashboardSnapshot.release_queue(study.pk)


def payload_text(study: Study, served: Served) -> str:
    """The served analysis as JSON text with `updating` in it; before the first analysis has
    finished, the study's outline with a reason."""
    text = (
        DashboardSnapshot.objects.filter(study=study).values_list("payload", flat=True).first()
        if served.version
        else None
    )
    if not text:
        text = json.dumps(_outline(study), cls=DjangoJSONEncoder)
    # The stored text is a JSON object; `updating` goes in front without parsing megabytes.
    flag = "true" if served.updating else "false"
    return '{"updating": ' + flag + ", " + text[1:]


def stored_payload(study: Study) -> dict | None:
    """The latest finished analysis as a dict (None before the first), queueing a newer one
    where the data changed: for the metric table's download and the metric lab's verdict."""
    served = latest_analysis(study)
    if not served.version:
        return None
    return json.loads(payload_text(study, served))


def _outline(study: Study) -> dict:
    """What the dashboard shows before its first analysis has finished."""
    studied = Reconstruction.objects.filter(case__study=study, case__training=False)
    return skeleton(
        study,
        progress={"reconstructions": studied.count(), "scored": {}, "readers": []},
        reason="The analysis is being computed by a worker; it appears here when it is done.",
    )


def store_analysis(study: Study) -> str:
    """Compute the study's analysis at its current data version and store it as the latest
    (what the `refresh_dashboard` task runs, in a worker). Returns the version analysed."""
    version = stored_as = data_version(study)
    started = time.perf_counter()
    payload = build_payload(study, version)
    try:
        # Only valid JSON is stored: the engine gives null for what it cannot compute, and
        # this is the last guard.
        text = json.dumps(payload, allow_nan=False, cls=DjangoJSONEncoder)
    except ValueError as error:
        logger.exception("dashboard analysis of %s is not valid JSON", study.slug)
        payload.update(
            analysis=None,
            points={},
            reason=f"The analysis could not be shown ({error}); it is retried shortly.",
        )
        text = json.dumps(payload, allow_nan=False, cls=DjangoJSONEncoder)
        stored_as = f"{version}-invalid"  # never the data's version: the next poll retries
    DashboardSnapshot.objects.update_or_create(
        study=study,
        defaults={
            "version": stored_as,
            "payload": text,
            "computed_at": timezone.now(),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return version
