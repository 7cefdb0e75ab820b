"""The study app's background tasks: importing a researcher's upload and the dashboard's
analysis (on the `default` queue), and the metric lab on the study's references (on the
`metrics` queue, where GPU workers are).

Thin: unpacking is readerstudy/uploads.py, checking and storing readerstudy/importer.py, the
lab metrics/lab.py. The web process puts an upload in `StudyImport.folder()/incoming/`; the
worker must see the same UPLOADS_DIR (one machine, or a shared volume).
"""

from __future__ import annotations

import logging
import shutil
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from metrics.device import resolve_device
from metrics.image import central_slice
from metrics.models import configured_metrics
from metrics.tasks import configured_engine, idempotent_task
from readerstudy.importer import ManifestError, add_cases
from readerstudy.metric_status import metrics_small_cases_lack
from readerstudy.models import DashboardSnapshot, MetricLab, Study, StudyImport
from readerstudy.models.lab import lab_cases
from readerstudy.uploads import UploadLimits, UploadRefusedError, find_manifest, unpack

logger = logging.getLogger(__name__)
# Progress is written at most this often: a row update per image would be most of the work.
PROGRESS_INTERVAL_S = 0.5


@idempotent_task()
def refresh_dashboard(*, study_pk: int) -> None:
    """The study's dashboard analysis at its current data version, stored for the web to
    serve (readerstudy.dashboard_store.store_analysis). Data that arrives while it runs is taken
    up by the next poll's task: versions coalesce, one analysis at a time per study."""
    from readerstudy.dashboard_store import store_analysis

    try:
        study = Study.objects.filter(pk=study_pk).first()
        if study is not None:  # deleted after this task was queued: nothing to do
            store_analysis(study)
    finally:
        DashboardSnapshot.release_queue(study_pk)


class _Progress:
    def __init__(self, job: StudyImport):
        self.job = job
        self.last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        fields = {"steps_done": done}
        if total is not None:
            fields["steps_total"] = total
        StudyImport.objects.filter(pk=self.job.pk).update(**fields)


def _set(job: StudyImport, **fields) -> None:
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=list(fields))


def _fail(job: StudyImport, problems: list[str]) -> None:
    _set(job, state=StudyImport.State.FAILED, problems=problems, finished_at=timezone.now())


@idempotent_task(soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def import_upload(*, import_pk: int) -> None:
    """Unpack, check and store one upload, all or nothing; its StudyImport says how it went."""
    job = StudyImport.objects.select_related("study").filter(pk=import_pk).first()
    if job is None or job.finished:
        return  # a redelivered message of an import that ended
    folder = job.folder()
    unpacked = folder / "files"
    shutil.rmtree(unpacked, ignore_errors=True)  # a rerun after a lost worker starts afresh
    progress = _Progress(job)
    manifest = None
    try:
        incoming = folder / "incoming"
        sources = [(name, incoming / str(i)) for i, name in enumerate(job.file_names)]
        _set(job, state=StudyImport.State.UNPACKING, steps_done=0, steps_total=job.upload_bytes)
        limits = UploadLimits(settings.UPLOAD_MAX_FILES, settings.UPLOAD_MAX_UNPACKED_BYTES)
        unpack(sources, unpacked, limits, progress=progress)
        manifest = find_manifest(unpacked)
        _set(job, state=StudyImport.State.CHECKING, steps_done=0, steps_total=0)
        result = add_cases(job.study, manifest, progress=progress)
        _set(
            job,
            state=StudyImport.State.DONE,
            cases_added=len(result.cases),
            reconstructions_added=result.reconstructions,
            notes=metrics_small_cases_lack(result.cases),
            steps_done=result.reconstructions,
            steps_total=result.reconstructions,
            finished_at=timezone.now(),
        )
    except UploadRefusedError as refused:
        _fail(job, [str(refused)])
    except ManifestError as invalid:
        # Paths as the researcher knows them (inside the upload), not the server's folders.
        inside = f"{unpacked.resolve()}/"
        name = manifest.relative_to(unpacked) if manifest is not None else "manifest"
        _fail(job, [f"{name}: {str(problem).replace(inside, '')}" for problem in invalid.problems])
    except Exception as error:
        # The message of an unexpected error can name the server's folders: it goes to the
        # log, and the researcher is told what happened without it.
        logger.exception("import %s failed", import_pk)
        _fail(
            job,
            [
                f"the import stopped unexpectedly ({type(error).__name__}); nothing was stored. "
                "The server's log has the details for its administrator."
            ],
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


LAB_TIME_LIMIT_S = 4 * 3600


@idempotent_task(soft_time_limit=LAB_TIME_LIMIT_S, time_limit=LAB_TIME_LIMIT_S + 60)
def run_metric_lab(*, lab_pk: int) -> None:
    """Every configured metric on graded perturbations of the study's references (a rerun after
    a lost worker starts the lab afresh: it only overwrites its own row)."""
    from metrics.lab import run_lab, unusable_reference

    lab = MetricLab.objects.select_related("study").filter(pk=lab_pk).first()
    if lab is None or lab.finished:
        return  # deleted with its study, or a redelivered message of a lab that ended
    cases = lab_cases(lab.study)
    if not cases:
        lab.fail("the study has no images yet: import some, then run the lab")
        return
    try:
        slices = {case.name: central_slice(case.load_reference()) for case in cases}
        # A slice the lab cannot degrade (constant, negative) is left out, by name and reason.
        reasons = {name: unusable_reference(image) for name, image in slices.items()}
        skipped = {name: reason for name, reason in reasons.items() if reason}
        references = [image for name, image in slices.items() if name not in skipped]
        if not references:
            lab.fail(
                "no reference's central slice can be degraded: "
                + "; ".join(f"{name} {reason}" for name, reason in skipped.items())
            )
            return
        MetricLab.objects.filter(pk=lab.pk).update(
            state=MetricLab.State.RUNNING, references_done=0, references_total=len(references)
        )

        def progress(done: int, _total: int) -> None:
            MetricLab.objects.filter(pk=lab.pk).update(references_done=done)

        engine = configured_engine(configured_metrics(), resolve_device(settings.METRICS_DEVICE))
        result = run_lab(
            references,
            engine,
            kinds=lab.kinds,
            levels=lab.levels,
            seed=lab.seed,
            progress=progress,
        )
    except SoftTimeLimitExceeded:
        lab.fail(f"the lab took longer than {LAB_TIME_LIMIT_S // 3600} hours and was stopped")
        return
    except Exception as error:
        logger.exception("metric lab %s failed", lab_pk)
        lab.fail(f"the lab stopped unexpectedly ({type(error).__name__}: {error})")
        return
    result["cases"] = [name for name in slices if name not in skipped]
    result["skipped"] = list(skipped)
    result["skipped_reasons"] = skipped
    # The lab's table sets the readers' verdict beside it, from the dashboard's analysis: a
    # study whose dashboard was never opened has none yet, so this worker computes one.
    from readerstudy.dashboard_store import store_analysis

    if not DashboardSnapshot.objects.filter(study=lab.study, computed_at__isnull=False).exists():
        store_analysis(lab.study)
    MetricLab.objects.filter(pk=lab.pk).update(
        state=MetricLab.State.DONE, result=result, finished_at=timezone.now()
    )
