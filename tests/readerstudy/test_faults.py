"""Faults with real processes: the task broker down during an import.

(A worker killed mid-batch is in tests/metrics/test_tasks.py; the database going away during
scoring, two tabs and an expired session are in tests/frontend/test_reader_faults_browser.py.)
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from metrics.models import MetricValue
from readerstudy.models import Case, Reconstruction, Study
from tests.conftest import ROOT, database_url_for_worker
from tests.readerstudy.factories import UserFactory, smooth_image
from tests.readerstudy.test_import_study import write_manifest

# Nothing listens on the discard port: a real client connecting to a broker that is down.
BROKER_DOWN = "redis://127.0.0.1:9/0"


def manage(*args, broker: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": broker,
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_import_with_the_broker_down_stores_the_study_and_queues_later(
    tmp_path, client, celery_worker_process, wait_until
):
    for seed, name in enumerate(("ref-a", "ref-b", "rec-0", "rec-1", "rec-2")):
        np.save(tmp_path / f"{name}.npy", smooth_image(seed))
    manifest = write_manifest(
        tmp_path,
        [
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),
            ("a", "ref-a.npy", "rec-1.npy", "cs-tv", "4", ""),
            ("b", "ref-b.npy", "rec-2.npy", "cs-tv", "8", ""),
        ],
    )
    imported = manage(
        "import_study", str(manifest), "--study", "offline", "--title", "T", broker=BROKER_DOWN
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported study 'offline': 2 cases, 3 reconstructions" in imported.stdout
    assert "metrics of 2 case(s) not queued: the task broker is unreachable" in imported.stderr
    assert "queue_metrics --study offline" in imported.stderr
    assert Reconstruction.objects.filter(case__study__slug="offline").count() == 3
    assert set(Case.objects.values_list("metrics_queued_at", flat=True)) == {None}

    researcher = UserFactory()
    Study.objects.get(slug="offline").researchers.add(researcher)
    client.force_login(researcher)
    page = client.get(reverse("readerstudy:detail", args=["offline"])).content.decode()
    assert "Metrics of 2 cases were not queued" in page and "0/12 computed" in page

    still_down = manage("queue_metrics", "--study", "offline", broker=BROKER_DOWN)
    assert still_down.returncode == 1
    assert "2 case(s) not queued: the task broker is unreachable" in still_down.stderr

    # The broker is back (the tests' own, which the worker consumes).
    call_command("queue_metrics", study=["offline"])
    expected = 3 * len(settings.METRICS_ENABLED)
    wait_until(
        lambda: MetricValue.objects.filter(value__isnull=False).count() == expected,
        timeout=120,
        message="the re-queued metrics were not computed",
        log=celery_worker_process.log_path,
    )
    assert not Case.objects.exclude(metrics_queue_error="").exists()
    page = client.get(reverse("readerstudy:detail", args=["offline"])).content.decode()
    assert "not queued" not in page and "12/12 computed" in page
