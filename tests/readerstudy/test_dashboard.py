"""The dashboard's data through the real stack: API with ETag, CSV, previews, permissions."""

import csv
import io
import os
import sys
import threading
from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from scipy import stats
from threadpoolctl import threadpool_info

from metrics.image import PIXEL_METRICS_VERSION
from metrics.models import MetricValue
from readerstudy.dashboard import run_at_low_priority
from readerstudy.dashboard_data import data_version
from readerstudy.models import DashboardSnapshot
from readerstudy.tasks import refresh_dashboard
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()


@pytest.fixture
def study():
    """6 reconstructions, 2 methods, 2 readers who scored 5 of them; PSNR tracks quality."""
    study = StudyFactory(slug="knee", title="Knee CS study")
    study.researchers.add(UserFactory(username="lead"))
    rng = np.random.default_rng(0)
    recons = []
    for index in range(6):
        recon = ReconstructionFactory(
            case__study=study,
            method="cs-tv" if index % 2 else "zero-filled",
            acceleration=4 if index < 3 else 8,
        )
        MetricValue.objects.create(
            reconstruction=recon, metric="psnr", version=PIXEL_METRICS_VERSION, value=25 + index
        )
        MetricValue.objects.create(
            reconstruction=recon,
            metric="ssim",
            version=PIXEL_METRICS_VERSION,
            value=float(rng.random()),
        )
        recons.append(recon)
    for name in ("reader1", "reader2"):
        reader = study.assign_reader(UserFactory(username=name))
        for item in reader.assignments.select_related("reconstruction"):
            quality = recons.index(item.reconstruction)
            if quality < 5:
                item.save_scores({q.key: 1 + quality % 5 for q in study.questions.all()})
    return study


def analysis_url(study):
    return reverse("api:analysis", args=[study.slug])


def analysed(client, study, **headers):
    """The analysis once a worker has computed it: a poll queues it, the task stores it (run
    here as the worker runs it; a real worker: tests/readerstudy/test_whole_system.py), and
    the next poll serves it."""
    client.get(analysis_url(study))
    refresh_dashboard(study_pk=study.pk)
    response = client.get(analysis_url(study), **headers)
    assert response.status_code in (200, 304) and response["ETag"] == f'"{data_version(study)}"'
    return response


def test_researcher_gets_the_analysis_of_the_scores_as_they_are(client, study):
    client.force_login(study.researchers.get())
    response = analysed(client, study)
    assert response.status_code == 200
    data = response.json()
    assert data["updating"] is False
    assert data["progress"]["reconstructions"] == 6
    assert data["progress"]["scored"]["overall"] == 5
    assert {r["reader"]: (r["done"], r["total"]) for r in data["progress"]["readers"]} == {
        "reader1": (5, 6),
        "reader2": (5, 6),
    }
    block = data["analysis"]["questions"]["overall"]
    assert block["metrics"]["psnr"]["spearman"] == pytest.approx(1.0)
    points = data["points"]
    overall = points["questions"]["overall"]
    assert len(overall["index"]) == 5 and len(points["reconstructions"]["reconstruction"]) == 5
    methods = points["reconstructions"]["method"]
    assert {methods[i] for i in overall["index"]} == {"cs-tv", "zero-filled"}
    psnr = [points["metrics"]["psnr"][i] for i in overall["index"]]
    assert stats.spearmanr(psnr, overall["mean_score"]).statistic == pytest.approx(1.0)
    assert overall["readers"] == [2] * 5
    assert set(block["by_acceleration"]) == {"4x", "8x"}
    assert {c["a"] + "/" + c["b"] for c in block["comparisons"]} == {"psnr/ssim"}


def test_etag_answers_304_until_a_score_or_metric_changes(client, study):
    """The ETag names what is served. New data: the last analysis is served with `updating`
    (a new ETag) while a worker computes the next; then the new one."""
    client.force_login(study.researchers.get())
    first = analysed(client, study)
    etag = first["ETag"]
    unchanged = client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    item = study.readers.get(user__username="reader1").assignments.exclude(scores__isnull=False)[0]
    item.save_scores({q.key: 5 for q in study.questions.all()})
    stale = client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag)
    assert stale.status_code == 200 and stale["ETag"] == etag[:-1] + '-updating"'
    assert stale.json()["updating"] is True
    assert stale.json()["progress"]["scored"]["overall"] == 5, "the last analysis meanwhile"
    assert client.get(analysis_url(study), HTTP_IF_NONE_MATCH=stale["ETag"]).status_code == 304
    changed = analysed(client, study, HTTP_IF_NONE_MATCH=stale["ETag"])
    assert changed.status_code == 200 and changed.json()["updating"] is False
    assert changed.json()["progress"]["scored"]["overall"] == 6
    etag = changed["ETag"]
    # A worker recomputing a value stores it with a new computed_at.
    MetricValue.objects.filter(metric="ssim").update(value=0.5, computed_at=timezone.now())
    assert client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_polls_never_compute_and_queue_one_analysis_at_a_time(client, study, settings):
    """The analysis is a worker's task: a poll serves what is stored and queues at most one
    analysis per study (none while one is queued or running, none within
    DASHBOARD_MIN_REFRESH_S of the last, nor within the time the last took); a task lost with
    its worker is queued again."""
    client.force_login(study.researchers.get())
    outline = client.get(analysis_url(study)).json()
    assert outline["updating"] is True and outline["analysis"] is None
    assert "being computed by a worker" in outline["reason"]
    snapshot = DashboardSnapshot.objects.get(study=study)
    queued = snapshot.queued_at
    assert queued is not None and snapshot.computed_at is None, "queued, not computed here"
    client.get(analysis_url(study))
    assert DashboardSnapshot.objects.get(study=study).queued_at == queued, "one at a time"
    refresh_dashboard(study_pk=study.pk)
    snapshot.refresh_from_db()
    assert snapshot.queued_at is None and snapshot.computed_at is not None
    computed = snapshot.computed_at

    settings.DASHBOARD_MIN_REFRESH_S = 3600
    item = study.readers.get(user__username="reader1").assignments.exclude(scores__isnull=False)[0]
    item.save_scores({q.key: 5 for q in study.questions.all()})
    assert client.get(analysis_url(study)).json()["updating"] is True
    snapshot.refresh_from_db()
    assert snapshot.queued_at is None, "the last analysis is younger than the interval"
    settings.DASHBOARD_MIN_REFRESH_S = 0
    DashboardSnapshot.objects.filter(pk=snapshot.pk).update(seconds=3600)
    client.get(analysis_url(study))
    snapshot.refresh_from_db()
    assert snapshot.queued_at is None, "never sooner after the last than the last one took"
    DashboardSnapshot.objects.filter(pk=snapshot.pk).update(seconds=0.01)
    client.get(analysis_url(study))
    snapshot.refresh_from_db()
    assert snapshot.queued_at is not None and snapshot.computed_at == computed
    lost = timezone.now() - timedelta(seconds=settings.DASHBOARD_ANALYSIS_LOST_S + 1)
    DashboardSnapshot.objects.filter(pk=snapshot.pk).update(queued_at=lost)
    client.get(analysis_url(study))
    snapshot.refresh_from_db()
    assert snapshot.queued_at > lost, "a lost task is queued again by the next poll"


def test_polls_check_for_new_data_once_per_interval_however_many_poll(
    client, study, settings, django_assert_max_num_queries
):
    """DASHBOARD_VERSION_TTL_S: within it a poll is answered from the cached check (a few
    cheap queries, none over scores or metric values), so a new score shows at most that much
    later; after it, or once a newer analysis has been stored, the data are checked again."""
    settings.DASHBOARD_VERSION_TTL_S = 3600
    client.force_login(study.researchers.get())
    etag = analysed(client, study)["ETag"]
    item = study.readers.get(user__username="reader1").assignments.exclude(scores__isnull=False)[0]
    item.save_scores({q.key: 5 for q in study.questions.all()})
    with django_assert_max_num_queries(5) as polled:  # session, user, study, snapshot, ...
        assert client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert not any("readerstudy_score" in query["sql"] for query in polled.captured_queries)
    # The analysis a worker stores after the check is newer than it: checked again.
    refresh_dashboard(study_pk=study.pk)
    fresh = client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200 and fresh["ETag"] == f'"{data_version(study)}"'
    assert fresh.json()["progress"]["scored"]["overall"] == 6
    # And once the interval has passed, a new score is seen without any analysis stored.
    item = study.readers.get(user__username="reader2").assignments.exclude(scores__isnull=False)[0]
    item.save_scores({q.key: 4 for q in study.questions.all()})
    assert client.get(analysis_url(study), HTTP_IF_NONE_MATCH=fresh["ETag"]).status_code == 304
    cache.delete(f"dashboard-version:{study.pk}")  # what the interval's end does
    stale = client.get(analysis_url(study), HTTP_IF_NONE_MATCH=fresh["ETag"])
    assert stale.status_code == 200 and stale.json()["updating"] is True


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_the_analysis_runs_at_low_priority_with_single_threaded_blas(settings):
    """A bootstrap must not take CPU from readers' requests on a shared machine: it runs in a
    thread at DASHBOARD_ANALYSIS_NICE (per thread on Linux), BLAS limited to one thread;
    the calling thread keeps its priority and gets the result or the exception."""

    def where_am_i():
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        return threading.current_thread().name, own, blas

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    name, nice, blas = run_at_low_priority(where_am_i)
    assert name.startswith("dashboard-analysis") and name != threading.current_thread().name
    assert nice == max(caller, settings.DASHBOARD_ANALYSIS_NICE)
    assert blas and set(blas) == {1}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller
    with pytest.raises(ZeroDivisionError):
        run_at_low_priority(lambda: 1 / 0)


def test_empty_study_explains_why_there_is_no_analysis(client):
    study = StudyFactory()
    study.researchers.add(lead := UserFactory())
    ReconstructionFactory(case__study=study)
    client.force_login(lead)
    data = analysed(client, study).json()
    assert data["analysis"] is None and data["reason"].startswith("No scores yet")


def test_table_csv_ranks_the_metrics(client, study):
    client.force_login(study.researchers.get())
    table = reverse("readerstudy:dashboard-table", args=[study.slug])
    early = client.get(table)
    assert early.status_code == 503 and early["Retry-After"] == "5", "no analysis computed yet"
    assert "being computed" in early.content.decode()
    analysed(client, study)
    response = client.get(table)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    overall = [r for r in rows if r["question"] == "overall"]
    assert [r["metric"] for r in overall] == ["psnr", "ssim"]
    assert float(overall[0]["spearman"]) == pytest.approx(1.0)
    assert float(overall[0]["ci_low"]) <= 1.0


def test_preview_is_a_png_of_the_image(client, study):
    client.force_login(study.researchers.get())
    recon = study.cases.first().reconstructions.get()
    for which in ("reference", "reconstruction"):
        url = reverse("readerstudy:preview", args=[study.slug, recon.public_id, which])
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (32, 32)
    bad = reverse("readerstudy:preview", args=[study.slug, recon.public_id, "other"])
    assert client.get(bad).status_code == 404


def test_readers_and_other_researchers_get_404_everywhere(client, study):
    recon = study.cases.first().reconstructions.get()
    urls = [
        reverse("readerstudy:dashboard", args=[study.slug]),
        analysis_url(study),
        reverse("readerstudy:dashboard-table", args=[study.slug]),
        reverse("readerstudy:preview", args=[study.slug, recon.public_id, "reference"]),
    ]
    other = StudyFactory()
    other.researchers.add(stranger := UserFactory())
    for user in (study.readers.first().user, stranger):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 404, (user.username, url)
    client.logout()
    for url in urls:
        assert client.get(url).status_code in (302, 403), url
    client.force_login(study.researchers.get())
    analysed(client, study)
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_a_fully_sampled_control_with_infinite_psnr_breaks_nothing(client, study):
    """A reconstruction identical to its reference has an infinite PSNR: it ranks above every
    finite one, Pearson is null, the JSON is valid and the scatter gets null for it."""
    best = MetricValue.objects.filter(metric="psnr").order_by("-value")[1]  # the best scored
    best.value = float("inf")
    best.save()
    client.force_login(study.researchers.get())
    response = analysed(client, study)
    assert response.status_code == 200 and b"NaN" not in response.content
    psnr = response.json()["analysis"]["questions"]["overall"]["metrics"]["psnr"]
    assert psnr["spearman"] == pytest.approx(1.0) and psnr["pearson"] is None
    assert psnr["aligned_spearman"] == pytest.approx(1.0) and psnr["polarity"] == 1
    points = response.json()["points"]
    assert points["metrics"]["psnr"].count(None) == 1
    assert len(points["infinite"]["psnr"]) == 1, "null because infinite, not because missing"
    assert points["metrics"]["psnr"][points["infinite"]["psnr"][0]] is None
    stored = DashboardSnapshot.objects.get(study=study)
    assert stored.version == data_version(study), "a good analysis is stored at its version"


def test_a_metric_missing_for_one_reconstruction_is_null_in_the_points_and_not_infinite(
    client, study
):
    scored = study.readers.get(user__username="reader1").assignments.filter(scores__isnull=False)
    MetricValue.objects.filter(metric="ssim", reconstruction=scored[0].reconstruction).delete()
    client.force_login(study.researchers.get())
    points = analysed(client, study).json()["points"]
    assert points["metrics"]["ssim"].count(None) == 1
    assert "ssim" not in points["infinite"]
    assert None not in points["metrics"]["psnr"]


def test_an_analysis_that_is_not_valid_json_is_shown_as_such_and_retried(
    client, study, monkeypatch
):
    import readerstudy.dashboard as dashboard

    monkeypatch.setattr(dashboard, "_analysis", lambda *frames: {"analysis": {"x": float("nan")}})
    client.force_login(study.researchers.get())
    client.get(analysis_url(study))
    refresh_dashboard(study_pk=study.pk)
    response = client.get(analysis_url(study))
    assert response.status_code == 200
    assert response.json()["analysis"] is None and "retried" in response.json()["reason"]
    assert response.json()["updating"] is True, "not stored as the analysis of this data"
    monkeypatch.undo()
    again = analysed(client, study).json()
    assert again["analysis"]["questions"]["overall"]["metrics"]["psnr"][
        "spearman"
    ] == pytest.approx(1)


def test_dashboard_resamples_whole_cases_and_ranks_by_aligned_spearman(client, study):
    """SSIM that falls as quality rises runs against the readers: ranked last, negative."""
    for value in MetricValue.objects.filter(metric="ssim"):
        value.value = -value.reconstruction.metric_values.get(metric="psnr").value
        value.save()
    client.force_login(study.researchers.get())
    analysis = analysed(client, study).json()["analysis"]
    assert analysis["resampling"] == "cases"
    ssim = analysis["questions"]["overall"]["metrics"]["ssim"]
    assert ssim["spearman"] == pytest.approx(-1.0) and ssim["aligned_spearman"] == pytest.approx(
        -1.0
    )
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    reverse("readerstudy:dashboard-table", args=[study.slug])
                ).content.decode()
            )
        )
    )
    overall = [r for r in rows if r["question"] == "overall"]
    assert [(r["metric"], float(r["aligned_spearman"])) for r in overall] == [
        ("psnr", pytest.approx(1.0)),
        ("ssim", pytest.approx(-1.0)),
    ]
    assert overall[0]["resampling"] == "cases" and overall[1]["polarity"] == "1"


def test_a_relabel_in_the_admin_is_seen_at_the_next_poll(client, study):
    """Editing a reconstruction's method, acceleration or case, or a question, changes no count
    and no score time; the dashboard kept the old labels (with 304s) for up to a day."""
    client.force_login(study.researchers.get())
    etag = analysed(client, study)["ETag"]
    recon = ReconstructionFactory._meta.model.objects.filter(case__study=study).first()
    for change in (
        lambda: setattr(recon, "method", "unet"),
        lambda: setattr(recon, "acceleration", 12.0),
        lambda: setattr(recon, "case", ReconstructionFactory(case__study=study).case),
    ):
        change()
        recon.save()
        response = client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 200 and response.json()["updating"], "a new version"
        response = analysed(client, study, HTTP_IF_NONE_MATCH=response["ETag"])
        assert response.status_code == 200
        etag = response["ETag"]
    assert "unet" in response.json()["analysis"]["questions"]["overall"]["by_method"]
    question = study.questions.get(key="overall")
    question.label = "Overall impression"
    question.save()
    assert client.get(analysis_url(study), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_replaced_image_drops_its_metric_values_and_queues_them_again(
    study, django_capture_on_commit_callbacks
):
    """Metric values describe the file they were computed on: a new image (the admin allows
    it) removes them, and the case's task is queued to compute them again."""
    from readerstudy.models import array_file

    recon = ReconstructionFactory._meta.model.objects.filter(case__study=study).first()
    other = ReconstructionFactory._meta.model.objects.filter(case__study=study).last()
    assert recon.metric_values.exists()
    recon.method = "renamed"
    recon.save()
    assert recon.metric_values.exists(), "a relabel keeps the values"
    with django_capture_on_commit_callbacks() as queued:
        recon.image.save("new.npy", array_file(np.zeros((32, 32), np.float32)), save=True)
    assert not recon.metric_values.exists() and len(queued) == 1
    assert other.metric_values.exists(), "other reconstructions keep theirs"

    case = other.case
    with django_capture_on_commit_callbacks() as queued:
        case.reference.save("ref.npy", array_file(np.ones((32, 32), np.float32)), save=True)
    assert not MetricValue.objects.filter(reconstruction__case=case).exists()
    assert len(queued) == 1
