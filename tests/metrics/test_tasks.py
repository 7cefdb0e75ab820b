"""metrics.tasks: called directly (twice, for idempotence) and through a real worker process."""

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from metrics.dfd.distances import DeepFeatureDistance
from metrics.dfd.encoders import ENCODERS
from metrics.engine import metric_version
from metrics.image import PIXEL_METRICS, pixel_metrics_for_case
from metrics.models import MetricValue, report_worker_metrics
from metrics.tasks import compute_case_metrics
from readerstudy.models import array_file
from tests.readerstudy.factories import CaseFactory, ReconstructionFactory, smooth_image


@pytest.fixture
def case():
    case = CaseFactory()
    for _ in range(3):
        ReconstructionFactory(case=case)
    return case


def stored(case):
    return {
        (v.reconstruction_id, v.metric): (v.value, v.error)
        for v in MetricValue.objects.filter(reconstruction__case=case)
    }


@pytest.mark.django_db
def test_compute_case_metrics_stores_the_core_values(case):
    compute_case_metrics(case_pk=case.pk)
    recons = list(case.reconstructions.all())
    images = [r.load_image() for r in recons]
    expected = pixel_metrics_for_case(case.load_reference(), images)
    dfd = DeepFeatureDistance.load(
        ENCODERS["dfd-resnet50-random"], weights_dir=settings.DFD_WEIGHTS_DIR
    )
    distances = dfd.case_distances(case.load_reference(), images)
    values = stored(case)
    assert len(values) == len(recons) * len(settings.METRICS_ENABLED)
    for recon, row, distance in zip(recons, expected, distances, strict=True):
        for metric in PIXEL_METRICS:
            assert values[recon.pk, metric] == (pytest.approx(row[metric], abs=1e-12), "")
        assert values[recon.pk, "dfd-resnet50-random"] == (pytest.approx(distance, rel=1e-6), "")
    versions = set(MetricValue.objects.values_list("metric", "version"))
    assert versions == {(m, metric_version(m)) for m in settings.METRICS_ENABLED}


@pytest.mark.django_db
def test_compute_case_metrics_is_idempotent(case):
    compute_case_metrics(case_pk=case.pk)
    first = stored(case)
    compute_case_metrics(case_pk=case.pk)
    assert stored(case) == first, "a second run overwrites with the same values"
    assert MetricValue.objects.count() == len(first), "and adds no rows"


@pytest.mark.django_db
def test_one_bad_reconstruction_does_not_sink_the_batch(case):
    bad = ReconstructionFactory(case=case, image=array_file(np.zeros((16, 16))))
    compute_case_metrics(case_pk=case.pk)
    values = stored(case)
    assert values[bad.pk, "psnr"] == (
        None,
        "shape mismatch: reference (32, 32), reconstruction (16, 16)",
    )
    good = [r.pk for r in case.reconstructions.exclude(pk=bad.pk)]
    assert all(values[pk, m][0] is not None for pk in good for m in settings.METRICS_ENABLED)


@pytest.mark.django_db
def test_one_metric_that_fails_on_a_case_costs_that_metric_alone(settings):
    """A valid 3 x 64 x 64 volume: VIF's steerable pyramid cannot be built that small, and it
    used to raise out of the task, losing every metric of the case (issue 32). Now VIF's
    declared minimum is checked before it runs, VIF is stored as a failure with its reason
    and every other metric is stored."""
    settings.METRICS_ENABLED = ["psnr", "ssim", "nmse", "hfen", "vif", "nqm"]
    rng = np.random.default_rng(0)
    reference = np.stack([smooth_image(k, shape=(64, 64)) for k in range(3)]) + 0.1
    case = CaseFactory(reference=array_file(reference), shape=list(reference.shape))
    noisy = reference + rng.normal(0, 0.02, reference.shape)
    recon = ReconstructionFactory(case=case, image=array_file(noisy))
    compute_case_metrics(case_pk=case.pk)
    values = stored(case)
    value, error = values[recon.pk, "vif"]
    assert value is None, "no value where the metric is undefined"
    assert error == "vif: images of 64 x 64 pixels are too small (it needs at least 72 x 72)"
    for metric in ("psnr", "ssim", "nmse", "hfen", "nqm"):
        assert values[recon.pk, metric][0] is not None, f"{metric} is stored all the same"


def test_a_metric_that_raises_while_computing_fails_alone():
    """What the declared minimum cannot foresee (pyrtools refusing, a decomposition that does
    not converge) still costs that metric alone: the real VIF on 64 x 64, unguarded."""
    from functools import partial

    from metrics.engine import _isolated, _suite_metric

    reference = smooth_image(1, shape=(64, 64)) + 0.1
    failures = _isolated("vif", 2, partial(_suite_metric, "vif", reference, [reference] * 2))
    assert [type(f).__name__ for f in failures] == ["MetricInputError"] * 2
    assert "vif: cannot be computed on this image (ValueError" in str(failures[0])
    assert "pyramid" in str(failures[0]), "the numeric library's reason, in a sentence"


@pytest.mark.django_db
def test_a_deleted_case_is_skipped_quietly(case):
    pk = case.pk
    case.delete()
    compute_case_metrics(case_pk=pk)
    assert not MetricValue.objects.exists()


@pytest.mark.django_db
def test_queue_metrics_waits_for_the_commit(case, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        case.study.queue_metrics()
    assert len(callbacks) == 1, "one task per case, sent only after the transaction commits"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_process_computes_and_stores_metrics(
    case, celery_worker_process, wait_until
):
    """The wiring, end to end: broker message -> worker process -> rows in the test database."""
    expected = len(settings.METRICS_ENABLED) * case.reconstructions.count()
    case.queue_metrics()  # autocommit: sent at once
    wait_until(
        lambda: (
            MetricValue.objects.filter(reconstruction__case=case, value__isnull=False).count()
            == expected
        ),
        timeout=120,
        message="the worker did not store the metrics",
        log=celery_worker_process.log_path,
    )
    first = stored(case)
    case.queue_metrics()  # a redelivered or repeated task overwrites, never duplicates
    first_time = MetricValue.objects.order_by("computed_at").first().computed_at
    wait_until(
        lambda: MetricValue.objects.filter(computed_at__gt=first_time).count() == expected,
        timeout=60,
        message="the second task did not run",
        log=celery_worker_process.log_path,
    )
    assert stored(case) == first and MetricValue.objects.count() == expected
    assert set(MetricValue.objects.values_list("device", flat=True)) == {"cpu"}


@pytest.mark.django_db
def test_queue_metrics_queues_only_incomplete_cases(case, settings):
    from django.core.management import call_command

    def queue(**options):
        out = io.StringIO()
        call_command("queue_metrics", stdout=out, **options)
        return out.getvalue()

    other = CaseFactory(study=case.study)
    ReconstructionFactory(case=other)
    compute_case_metrics(case_pk=case.pk)
    assert f"{case.study.slug}: 1 case(s) queued" in queue(study=[case.study.slug])
    other.refresh_from_db()
    assert other.metrics_queued_at is not None and other.metrics_queue_error == ""
    compute_case_metrics(case_pk=other.pk)
    assert "0 metric task(s) queued" in queue(), "nothing missing, nothing queued"
    settings.METRICS_ENABLED = [*settings.METRICS_ENABLED, "dfd-efficientnet-lite0"]
    assert "0 metric task(s) queued" in queue(), "the workers say what they compute"
    report_worker_metrics()  # what a metrics worker started with the new setting does
    assert "2 metric task(s) queued" in queue(), "a new metric makes every case incomplete"
    with pytest.raises(Exception, match="no study nope"):
        call_command("queue_metrics", study=["nope"])


def pool_children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_killed_mid_batch_is_redelivered_and_stores_each_value_once(
    celery_worker_process, wait_until
):
    """SIGKILL the pool process while it computes a case: the message goes back to the queue
    (acks_late + reject_on_worker_lost), a fresh pool process does the whole case again, and
    every (reconstruction, metric) value exists exactly once."""
    case = CaseFactory(reference=array_file(smooth_image(shape=(320, 320))), shape=[320, 320])
    for seed in range(8):
        ReconstructionFactory(case=case, image=array_file(smooth_image(seed + 1, (320, 320))))
    log = celery_worker_process.log_path
    wait_until(
        lambda: "ready." in log.read_text(), timeout=60, message="worker did not start", log=log
    )
    (child,) = pool_children(celery_worker_process.pid)
    case.queue_metrics()
    wait_until(
        lambda: "compute_case_metrics" in log.read_text() and "received" in log.read_text(),
        timeout=30,
        message="the task was not received",
        log=log,
    )
    time.sleep(0.5)  # inside the batch: loading the encoder and encoding take seconds here
    assert MetricValue.objects.count() == 0, "killed before the case was stored"
    os.kill(child, signal.SIGKILL)
    expected = len(settings.METRICS_ENABLED) * 8
    wait_until(
        lambda: MetricValue.objects.filter(value__isnull=False).count() == expected,
        timeout=180,
        message="the killed task was not delivered again",
        log=log,
    )
    text = log.read_text()
    assert "WorkerLostError" in text or "signal 9" in text, "the loss was noticed and logged"
    assert pool_children(celery_worker_process.pid) != [child], "a fresh pool process"
    pairs = list(MetricValue.objects.values_list("reconstruction_id", "metric"))
    assert len(pairs) == len(set(pairs)) == expected


@pytest.fixture
def bf16_worker_environment(monkeypatch, settings):
    """A worker (and this process) configured for bf16 encoders, as METRICS_PRECISION does."""
    monkeypatch.setenv("METRICS_PRECISION", "bf16")
    settings.METRICS_PRECISION = "bf16"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_bf16_workers_values_reach_the_dashboard_and_the_export(
    bf16_worker_environment, case, celery_worker_process, wait_until, client
):
    """Values stored under `dfd-...+bf16` are the current ones for a bf16 deployment: the
    dashboard analyses them, the export writes them, and the case is not queued again."""
    from django.core.cache import cache

    from readerstudy.export import metric_rows
    from readerstudy.metric_status import cases_missing_metrics
    from tests.readerstudy.factories import UserFactory

    expected = len(settings.METRICS_ENABLED) * case.reconstructions.count()
    case.queue_metrics()
    wait_until(
        lambda: MetricValue.objects.filter(value__isnull=False).count() == expected,
        timeout=120,
        message="the bf16 worker did not store the metrics",
        log=celery_worker_process.log_path,
    )
    dfd = MetricValue.objects.filter(metric="dfd-resnet50-random")
    assert set(dfd.values_list("version", flat=True)) == {
        metric_version("dfd-resnet50-random", "bf16")
    }
    study = case.study
    assert cases_missing_metrics(study) == [], "current values: nothing to queue again"
    exported = {(row["reconstruction"], row["metric"]) for row in metric_rows(study)}
    assert ("dfd-resnet50-random" in {metric for _, metric in exported}) and len(
        exported
    ) == expected
    study.researchers.add(lead := UserFactory())
    for reader in ("r1", "r2"):
        member = study.assign_reader(UserFactory(username=reader))
        for index, item in enumerate(member.assignments.all()):
            item.save_scores({q.key: 1 + index for q in study.questions.all()})
    cache.clear()
    client.force_login(lead)
    from django.urls import reverse

    url = reverse("api:analysis", args=[study.slug])
    wait_until(  # the worker computes the dashboard's analysis too (default queue)
        lambda: client.get(url).json()["updating"] is False,
        timeout=120,
        message="the worker did not compute the dashboard's analysis",
        log=celery_worker_process.log_path,
    )
    payload = client.get(url).json()
    assert "dfd-resnet50-random" in payload["metrics"]
    block = payload["analysis"]["questions"][study.questions.first().key]
    assert block["metrics"]["dfd-resnet50-random"]["n"] == case.reconstructions.count()


@pytest.mark.django_db
def test_an_encoder_failing_its_checksum_is_stored_as_its_own_error(case, settings, tmp_path):
    from metrics.dfd.weights import EFFICIENTNET_LITE0_FILE

    (tmp_path / EFFICIENTNET_LITE0_FILE.filename).write_bytes(b"tampered")
    settings.DFD_WEIGHTS_DIR = tmp_path
    settings.METRICS_ENABLED = ["psnr", "hfen", "dfd-efficientnet-lite0"]
    compute_case_metrics(case_pk=case.pk)
    values = stored(case)
    for recon in case.reconstructions.all():
        assert values[recon.pk, "psnr"][1] == "" and values[recon.pk, "hfen"][1] == ""
        value, error = values[recon.pk, "dfd-efficientnet-lite0"]
        assert value is None and "does not match the registered" in error
