"""Which metric values a study has, whichever process holds the weights, and what one metric's
failure costs: the study page, the dashboard, the exports and `analyze` agree (issue 32)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from metrics.dfd.weights import RADIMAGENET_FILE
from metrics.models import MetricValue, WorkerMetric, report_worker_metrics, worker_metrics
from readerstudy.dashboard import build_payload
from readerstudy.dashboard_data import data_version
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
    smooth_image,
)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
RADIMAGENET = "dfd-radimagenet-resnet50"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def as_worker_with_weights(settings, tmp_path, names):
    """Report what a metrics worker with a RadImageNet file (no registered checksum: its
    version carries the file's hash) and `names` computes, then become a web process with
    an empty weights folder and METRICS_ENABLED unset, as docs/deployment.md recommends."""
    weights = tmp_path / "worker-weights"
    weights.mkdir()
    torch.save({"seed": torch.tensor(7)}, weights / RADIMAGENET_FILE.filename)
    settings.DFD_WEIGHTS_DIR = weights
    settings.METRICS_ENABLED = names
    versions = report_worker_metrics()
    settings.DFD_WEIGHTS_DIR = tmp_path / "web-weights-empty"
    settings.METRICS_ENABLED = []
    return versions


def scored_study(versions: dict[str, str], *, extra: dict[str, str] | None = None):
    """12 reconstructions in 4 cases, 3 readers, every metric of `versions` (and of `extra`,
    stored but not computed by the workers) tracking quality with noise."""
    study = StudyFactory(slug="seams")
    study.researchers.add(UserFactory(username="lead"))
    rng = np.random.default_rng(4)
    quality = {}
    for case_index in range(4):
        case = CaseFactory(study=study, name=f"c{case_index}")
        for k in range(3):
            recon = ReconstructionFactory(case=case, method=f"m{k}", acceleration=2 + 2 * k)
            quality[recon.pk] = float(rng.normal())
            for name, version in {**versions, **(extra or {})}.items():
                MetricValue.objects.create(
                    reconstruction=recon,
                    metric=name,
                    version=version,
                    value=quality[recon.pk] + float(rng.normal(0, 0.7)),
                )
    for r in range(3):
        reader = study.assign_reader(UserFactory(username=f"reader{r}"))
        for item in reader.assignments.select_related("reconstruction"):
            score = quality[item.reconstruction.pk] + rng.normal(0, 0.5)
            value = int(np.clip(np.round(3 + score), 1, 5))
            item.save_scores({q.key: value for q in study.questions.all()})
    return study


def exports(client, study, tmp_path) -> tuple[Path, Path]:
    client.force_login(
        study.researchers.get(), backend="django.contrib.auth.backends.ModelBackend"
    )
    paths = []
    for kind in ("scores", "metrics"):
        response = client.get(reverse("readerstudy:export", args=[study.slug, kind]))
        assert response.status_code == 200
        paths.append(tmp_path / f"{kind}.csv")
        body = response.streaming_content if response.streaming else [response.content]
        paths[-1].write_bytes(b"".join(body))
    return paths[0], paths[1]


def analyze_cli(*args) -> dict:
    """`manage.py analyze ARGS --json` as a user runs it; its JSON."""
    result = subprocess.run(
        [sys.executable, "manage.py", "analyze", *map(str, args)]
        + ["--json", "--settings", "tests.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_web_lists_the_metrics_its_workers_compute_not_its_own_weights(
    settings, tmp_path, client
):
    """The web process has no weights: it used to list only the metrics whose weights were in
    its own folder, and RadImageNet (versioned by its file's hash) vanished everywhere but
    the metrics export. Now the workers' report decides, for every page and export."""
    versions = as_worker_with_weights(settings, tmp_path, ["psnr", "ssim", RADIMAGENET])
    assert "+" in versions[RADIMAGENET], "the worker's version carries its file's hash"
    assert worker_metrics() == versions, "what the workers said, not what the web has"
    study = scored_study(versions)
    payload = build_payload(study, data_version(study))
    assert payload["metrics"] == sorted(["psnr", "ssim", RADIMAGENET])
    assert RADIMAGENET in payload["analysis"]["questions"]["overall"]["metrics"]
    client.force_login(
        study.researchers.get(), backend="django.contrib.auth.backends.ModelBackend"
    )
    page = client.get(reverse("readerstudy:detail", args=[study.slug])).content.decode()
    assert f'<th class="num">{RADIMAGENET}</th>' in page
    assert "36/36 computed" in page, "12 reconstructions x the workers' 3 metrics"


def test_holm_adjusts_one_family_on_the_dashboard_and_in_analyze(settings, tmp_path, client):
    """Values of HFEN are stored (restored, or from an earlier configuration) though the
    workers no longer compute it: the dashboard used to adjust over its configured metrics
    and `analyze` on the export over every stored one. Both now take the study's stored
    metrics, print the family, and give the same adjusted p-values."""
    settings.METRICS_ENABLED = ["psnr", "ssim"]
    versions = report_worker_metrics()
    from metrics.reference_suite import REFERENCE_SUITE_VERSION

    study = scored_study(versions, extra={"hfen": REFERENCE_SUITE_VERSION})
    payload = build_payload(study, data_version(study))
    dashboard = payload["analysis"]["questions"]["overall"]
    assert dashboard["holm_family"] == ["hfen", "psnr", "ssim"]
    scores, metrics = exports(client, study, tmp_path)
    shuffled = pd.read_csv(scores).sample(frac=1, random_state=1)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    cli = analyze_cli(
        "--scores",
        tmp_path / "shuffled.csv",
        "--metrics",
        metrics,
        "--full",
        "--bootstrap",
        settings.DASHBOARD_BOOTSTRAP,
    )["questions"]["overall"]
    assert cli["holm_family"] == dashboard["holm_family"]
    for name in dashboard["holm_family"]:
        assert (
            cli["versus_readers"][name]["p_holm"] == dashboard["versus_readers"][name]["p_holm"]
        ), name
        assert (
            cli["metrics"][name]["aligned_spearman_ci"]
            == (dashboard["metrics"][name]["aligned_spearman_ci"])
        ), f"{name}: the same interval to the last digit, rows in any order"


def test_a_failed_metric_is_listed_exported_excluded_and_retried(
    settings, tmp_path, client, django_capture_on_commit_callbacks
):
    """One metric failing for some reconstructions: the study page lists it by metric and
    case with a retry button, the export carries the reason, `analyze` says it excluded it,
    and the figure computed on fewer reconstructions than the readers scored is flagged."""
    settings.METRICS_ENABLED = ["psnr", "ssim", "vif"]
    versions = report_worker_metrics()
    study = scored_study(versions)
    failed = MetricValue.objects.filter(metric="vif", reconstruction__case__name="c1")
    reason = "vif: images of 64 x 64 pixels are too small (it needs at least 72 x 72)"
    assert failed.update(value=None, error=reason) == 3
    client.force_login(
        study.researchers.get(), backend="django.contrib.auth.backends.ModelBackend"
    )
    detail = reverse("readerstudy:detail", args=[study.slug])
    page = client.get(detail).content.decode()
    assert 'id="metric-failures"' in page and reason in page
    assert '<td>vif</td><td>c1</td><td class="num">3</td>' in page
    assert "33/36 computed" in page and "3 failed" in page
    assert "Workers are computing the rest" not in page, "nothing is pending: 33 + 3 of 36"
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(reverse("readerstudy:retry-metrics", args=[study.slug]))
    assert response.status_code == 302 and len(queued) == 1, "the one case with a failure"

    scores, metrics = exports(client, study, tmp_path)
    rows = pd.read_csv(metrics, keep_default_na=False)
    assert (rows.loc[rows["error"] != "", "error"] == reason).sum() == 3
    assert (rows.loc[rows["error"] != "", "value"] == "").all()
    cli = analyze_cli("--scores", scores, "--metrics", metrics, "--bootstrap", 50)
    assert [e["reason"] for e in cli["excluded"]["vif"]] == [reason] * 3
    vif = cli["questions"]["overall"]["metrics"]["vif"]
    assert vif["n"] == 9
    assert vif["coverage"] == "computed on 9 of the 12 reconstructions the readers scored"
    assert "coverage" not in cli["questions"]["overall"]["metrics"]["psnr"]
    dashboard = build_payload(study, data_version(study))["analysis"]
    assert dashboard["excluded"] == cli["excluded"]
    assert dashboard["questions"]["overall"]["metrics"]["vif"]["coverage"] == vif["coverage"]


def test_the_importer_says_which_metrics_a_small_case_will_lack(settings, tmp_path):
    settings.METRICS_ENABLED = ["psnr", "vif", "dfd-resnet50-random"]
    report_worker_metrics()
    for name, side in (("small", 64), ("large", 96)):
        np.save(tmp_path / f"{name}-ref.npy", smooth_image(1, (side, side)))
        np.save(tmp_path / f"{name}-rec.npy", smooth_image(2, (side, side)))
    (tmp_path / "manifest.csv").write_text(
        "case,reference,reconstruction,method,acceleration\n"
        "small,small-ref.npy,small-rec.npy,zf,4\n"
        "large,large-ref.npy,large-rec.npy,zf,4\n"
    )
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_study", tmp_path / "manifest.csv", study="s", title="S", stdout=out, stderr=err
    )
    assert err.getvalue().splitlines() == [
        "warning: case small (64 x 64) will lack vif: too small for them "
        "(smallest side needed: vif 72)"
    ]


def test_no_report_yet_means_this_processs_own_settings(settings):
    """A single-process deployment (make demo) before its first case: the web's settings."""
    settings.METRICS_ENABLED = ["psnr", "nmse"]
    assert not WorkerMetric.objects.exists()
    assert list(worker_metrics()) == ["psnr", "nmse"]


def test_a_worker_reports_only_when_its_configuration_changed(settings, tmp_path):
    settings.METRICS_ENABLED = ["psnr", "ssim"]
    report_worker_metrics()
    first = dict(WorkerMetric.objects.values_list("metric", "reported_at"))
    report_worker_metrics()
    assert dict(WorkerMetric.objects.values_list("metric", "reported_at")) == first
    settings.METRICS_ENABLED = ["psnr", "hfen"]
    report_worker_metrics()
    assert sorted(WorkerMetric.objects.values_list("metric", flat=True)) == ["hfen", "psnr"]


def test_the_admin_shows_what_the_workers_reported_and_nobody_edits_it(settings, client):
    settings.METRICS_ENABLED = ["psnr", "vif"]
    report_worker_metrics()
    client.force_login(
        UserFactory(is_staff=True, is_superuser=True),
        backend="django.contrib.auth.backends.ModelBackend",
    )
    page = client.get(reverse("admin:metrics_workermetric_changelist")).content.decode()
    assert "psnr" in page and "vif" in page
    assert client.get(reverse("admin:metrics_workermetric_add")).status_code == 403
