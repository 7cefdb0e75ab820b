"""Seams tested as seams (issue 32): a web process and a worker configured differently, one
metric failing while the others go on, and a study through its archive to a fresh data folder,
each through the real components (a worker process on the broker, the web stack, the archive,
`manage.py analyze`). CI runs them on SQLite and on PostgreSQL + Redis."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from django.core.cache import cache
from django.urls import reverse

from metrics.dfd.weights import RADIMAGENET_FILE
from metrics.models import MetricValue, WorkerMetric
from metrics.tasks import compute_case_metrics
from readerstudy.archive import write_archive
from readerstudy.dashboard import build_payload
from readerstudy.dashboard_data import data_version
from readerstudy.metric_status import cases_missing_metrics
from readerstudy.models import Question, Reconstruction, Study
from readerstudy.restore import People, restore_archive
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
    array_file,
    smooth_image,
)
from tests.readerstudy.test_metric_seams import analyze_cli

ROOT = Path(__file__).resolve().parents[2]
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
RADIMAGENET = "dfd-radimagenet-resnet50"


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


def study_with_cases(sides, *, per_case=3, identity=False, slug="whole"):
    """A study with one case per side length, `per_case` noisier and noisier reconstructions
    each (the first identical to its reference with `identity`: an infinite PSNR)."""
    study = StudyFactory(slug=slug, title="Whole system")
    study.researchers.add(UserFactory(username="lead"))
    rng = np.random.default_rng(1)
    for index, side in enumerate(sides):
        reference = smooth_image(index, (side, side))
        case = CaseFactory(
            study=study, name=f"case{index}", reference=array_file(reference), shape=[side, side]
        )
        for k in range(per_case):
            noise = 0.0 if identity and k == 0 else 0.03 * (k + 1)
            image = reference + rng.normal(0, noise, reference.shape).astype(np.float32)
            ReconstructionFactory(
                case=case, method=f"m{k}", acceleration=2 * (k + 1), image=array_file(image)
            )
    return study


def score_everything(study, readers=3, seed=2):
    """Every reader answers every item as the reading room would: better scores and ranks
    for less noise, with reader noise; ties where a question allows them."""
    rng = np.random.default_rng(seed)
    for number in range(readers):
        reader = study.assign_reader(UserFactory(username=f"reader{number}"))
        for item in reader.assignments.select_related("reconstruction", "comparison__question"):
            if item.comparison_id:
                question = item.comparison.question
                noisy = _noise_rank_of(item.layout) + rng.normal(0, 0.7, len(item.layout))
                ranks = (np.argsort(np.argsort(noisy)) + 1).tolist()
                item.save_scores({question.key: ranks})
            else:
                quality = 5 - int(item.reconstruction.method[1:])
                item.save_scores(
                    {
                        q.key: int(np.clip(quality + rng.integers(-1, 2), 1, 5))
                        for q in study.questions.filter(kind=Question.Kind.LIKERT)
                    }
                )


def _noise_rank_of(layout) -> np.ndarray:
    """Per reconstruction of a comparison, k of its method mk: 0 is the least noisy."""
    method = dict(Reconstruction.objects.filter(pk__in=layout).values_list("pk", "method"))
    return np.array([int(method[pk][1:]) for pk in layout], dtype=float)


def signed_in(client, study):
    client.force_login(study.researchers.get(), backend=MODEL_BACKEND)
    return client


@pytest.mark.django_db(transaction=True)
def test_split_deployment_the_dashboard_shows_the_workers_dfd(
    start_worker, wait_until, settings, tmp_path, client
):
    """The web process has an empty weights folder and METRICS_ENABLED unset (the deployment
    docs/deployment.md recommends); a real worker has a RadImageNet backbone (a seeded ResNet50
    trunk: no registered checksum, so its version carries the file's hash) on the same
    database and broker. The dashboard and the study page show the worker's DFD figures."""
    weights = tmp_path / "worker-weights"
    weights.mkdir()
    trunk = torchvision.models.resnet50()
    torch.manual_seed(0)
    state = {k: v for k, v in trunk.state_dict().items() if not k.startswith("fc.")}
    torch.save(state, weights / RADIMAGENET_FILE.filename)
    settings.DFD_WEIGHTS_DIR = tmp_path / "web-weights"  # empty: the web has no weights
    settings.METRICS_ENABLED = []
    study = study_with_cases([96, 96, 96])
    score_everything(study)
    worker = start_worker(DFD_WEIGHTS_DIR=str(weights), METRICS_ENABLED=f"psnr,ssim,{RADIMAGENET}")
    wait_until(
        lambda: WorkerMetric.objects.count() == 3,
        timeout=120,
        message="the worker did not report what it computes",
        log=worker.log_path,
    )
    study.queue_metrics()
    wait_until(
        lambda: MetricValue.objects.filter(value__isnull=False).count() == 9 * 3,
        timeout=300,
        message="the worker did not store every metric",
        log=worker.log_path,
    )
    url = reverse("api:analysis", args=[study.slug])
    signed_in(client, study)
    wait_until(  # the same worker computes the dashboard's analysis (default queue)
        lambda: client.get(url).json()["updating"] is False,
        timeout=120,
        message="the worker did not compute the dashboard's analysis",
        log=worker.log_path,
    )
    payload = client.get(url).json()
    assert payload["metrics"] == sorted(["psnr", "ssim", RADIMAGENET])
    block = payload["analysis"]["questions"]["overall"]
    assert block["metrics"][RADIMAGENET]["n"] == 9
    assert block["metrics"][RADIMAGENET]["spearman"] is not None
    assert RADIMAGENET in block["holm_family"]
    page = client.get(reverse("readerstudy:detail", args=[study.slug])).content.decode()
    assert f'<th class="num">{RADIMAGENET}</th>' in page and "27/27 computed" in page


@pytest.mark.django_db(transaction=True)
def test_a_case_one_metric_cannot_compute_keeps_all_the_others(
    start_worker, wait_until, settings, client
):
    """A real worker computes a 64 x 64 case, too small for VIF's pyramid, beside a 96 x 96
    one: VIF's failure is stored for the small case alone, with its reason, every other value
    is stored, and the study page lists the failure instead of waiting forever."""
    names = ["psnr", "ssim", "nmse", "hfen", "vif", "nqm"]
    settings.METRICS_ENABLED = names
    study = study_with_cases([64, 96])
    worker = start_worker(METRICS_ENABLED=",".join(names))
    study.queue_metrics()
    wait_until(
        lambda: MetricValue.objects.count() == 6 * len(names),
        timeout=180,
        message="the worker did not store the case's values",
        log=worker.log_path,
    )
    failed = MetricValue.objects.exclude(error="")
    assert set(failed.values_list("metric", "reconstruction__case__name")) == {("vif", "case0")}
    assert failed.count() == 3 and MetricValue.objects.filter(value__isnull=False).count() == 33
    page = signed_in(client, study).get(reverse("readerstudy:detail", args=[study.slug]))
    text = page.content.decode()
    assert "33/36 computed" in text and "3 failed" in text and 'id="metric-failures"' in text
    assert "images of 64 x 64 pixels are too small" in text
    assert "Workers are computing the rest" not in text


def differences(a, b, path: str) -> list[str]:
    """The leaf paths where two JSON-like values differ, for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in sorted(set(a) | set(b), key=str)
            for d in differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def export_files(client, study, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    paths = {}
    for kind in ("scores", "metrics", "rankings", "repeats"):
        response = client.get(reverse("readerstudy:export", args=[study.slug, kind]))
        assert response.status_code == 200, kind
        body = response.streaming_content if response.streaming else [response.content]
        paths[kind] = folder / f"{kind}.csv"
        paths[kind].write_bytes(b"".join(body))
    return paths


def analyze_shuffled(paths: dict[str, Path], seed: int) -> dict:
    """`manage.py analyze` on the exports with every file's rows shuffled."""
    args = []
    for kind, path in paths.items():
        shuffled = path.with_name(f"shuffled-{seed}-{kind}.csv")
        frame = pd.read_csv(path, keep_default_na=False, dtype=str)
        frame.sample(frac=1, random_state=seed).to_csv(shuffled, index=False)
        args += [f"--{kind}", str(shuffled)]
    return analyze_cli(*args, "--full", "--bootstrap", 200)


@pytest.mark.django_db
def test_round_trip_through_the_archive_to_a_fresh_data_folder(settings, tmp_path, client):
    """Every question kind, repeat reads, a training case, a failed metric and an infinite
    value: the study goes through its archive to a fresh data folder; the restored dashboard
    payload equals the original's field by field, and `analyze` on the original's and the
    restored exports, rows shuffled, gives the same JSON."""
    settings.METRICS_ENABLED = ["psnr", "ssim", "nmse", "hfen", "vif"]
    study = study_with_cases([64, 96, 96, 96], identity=True)
    Study.objects.filter(pk=study.pk).update(repeat_share=0.3)
    study.refresh_from_db()
    Question.objects.create(
        study=study, key="rank", label="Rank", kind="rank", allow_ties=False, position=9
    )
    Question.objects.create(
        study=study, key="pick", label="Pick", kind="choice", allow_ties=True, position=10
    )
    training = study.cases.get(name="case3")
    training.training, training.training_note = True, "Look at the edges"
    training.save()
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    assert MetricValue.objects.exclude(error="").exists(), "Sanity: VIF failed on case0"
    assert MetricValue.objects.filter(metric="psnr", value=float("inf")).exists()
    score_everything(study)

    signed_in(client, study)
    original = build_payload(study, data_version(study))
    original_exports = export_files(client, study, tmp_path / "original")
    archive = tmp_path / "study.zip"
    archive.write_bytes(write_archive(study).read())
    slug = study.slug
    study.delete()  # ids are unique on a server: restore as onto a new one

    settings.MEDIA_ROOT = tmp_path / "fresh-media"
    people = People({f"reader{k}": f"reader{k}" for k in range(3)}, ("lead",))
    restored, _ = restore_archive(archive, slug=slug, people=people)
    assert restored is not None
    assert cases_missing_metrics(restored) == [], "every value kept: nothing to recompute"
    again = build_payload(restored, data_version(restored))
    for field in sorted((set(original) | set(again)) - {"version", "computed_at"}):
        assert again[field] == original[field], differences(original[field], again[field], field)
    restored_exports = export_files(client, restored, tmp_path / "restored")
    first, second = analyze_shuffled(original_exports, 1), analyze_shuffled(restored_exports, 2)
    assert first == second, differences(first, second, "analyze")[:20]
    assert set(first) >= {"questions", "preferences", "repeat_reads", "excluded"}
