"""How long a researcher waits to see a new score on the dashboard (issue 33): a reader
changes an answer, and a dashboard polls through the real path (`latest_analysis`, as the
analysis API does) while a real Celery worker computes the analysis that includes it. The
wait holds every part a researcher meets: the poll's cached check for new data
(DASHBOARD_VERSION_TTL_S), the interval between analyses (DASHBOARD_MIN_REFRESH_S), the queue
and the analysis itself; the dashboard's own poll interval (DASHBOARD_POLL_MS) comes on top.
`make bench-study` runs it at its study's size.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def seconds_until_seen(
    study, env: dict[str, str], log: Path, *, poll_s: float = 0.25, timeout_s: float = 300.0
) -> dict[str, float]:
    """Change one stored answer of `study` and poll until the served analysis is at a data
    version that includes it, not updating; twice, the analyses by one worker started with
    `env` (its output to `log`): the first analysis in a worker process also pays for its
    imports, a running worker's are the later ones. Returns the seconds until each change was
    seen, and the later analysis's own seconds."""
    from readerstudy.bench.loadtest import celery_worker
    from readerstudy.dashboard_store import store_analysis
    from readerstudy.models import DashboardSnapshot, Study

    # A study being read: open (the benchmark's readers were simulated in the database).
    study.status = Study.Status.OPEN
    study.save(update_fields=["status"])
    store_analysis(study)  # the dashboard is up to date before the change
    with celery_worker(env, log) as worker:
        _wait_for_worker(log, worker)
        first = _change_and_wait(study, worker, log, poll_s, timeout_s)
        later = _change_and_wait(study, worker, log, poll_s, timeout_s)
    analysis_s = DashboardSnapshot.objects.get(study=study).seconds
    return {
        "first_seen_s": round(first, 2),
        "seen_s": round(later, 2),
        "analysis_s": float(analysis_s or 0.0),
    }


def _change_and_wait(study, worker, log: Path, poll_s: float, timeout_s: float) -> float:
    from readerstudy.dashboard_data import data_version
    from readerstudy.dashboard_store import latest_analysis
    from readerstudy.models import Score

    score = (
        Score.objects.filter(assignment__reader__study=study, value__isnull=False)
        .select_related("assignment__reader__study", "question")
        .order_by("pk")
        .first()
    )
    if score is None:
        raise RuntimeError("the study has no Likert score to change")
    low = score.question.scale_min
    changed = low if score.value != low else low + 1
    started = time.perf_counter()
    score.assignment.save_scores({score.question.key: changed})
    wanted = data_version(study)
    while True:
        served = latest_analysis(study)
        if served.version == wanted and not served.updating:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"not seen after {timeout_s} s; see {log}")
        if worker.poll() is not None:
            raise RuntimeError(f"the worker stopped; see {log}")
        time.sleep(poll_s)


def _wait_for_worker(log: Path, worker: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Until the worker says it is ready (its start is not what a researcher waits for)."""
    deadline = time.monotonic() + timeout_s
    while "ready." not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(0.2)
