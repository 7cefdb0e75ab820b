"""The study page's metric lab in Debian's Chromium: a researcher starts it, a real Celery worker
runs it on the metrics queue, and the page follows it to its curves and summary table."""

import pytest

from metrics.tasks import compute_case_metrics
from readerstudy.models import MetricLab
from tests.frontend.accounts import log_in
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scored_study():
    study = StudyFactory(slug="lab", title="Lab knee study")
    study.researchers.add(UserFactory(username="lead"))
    for index in range(6):
        ReconstructionFactory(
            case__study=study, method=("zero-filled", "cs-tv")[index % 2], acceleration=4
        )
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    study.assign_reader(UserFactory(username="second"))
    reader = study.readers.get()
    for item in reader.assignments.all():
        item.save_scores({q.key: 1 + item.position % 5 for q in study.questions.all()})
    return study


def test_a_researcher_runs_the_lab_and_sees_its_curves_beside_the_readers(
    page, live_server, scored_study, celery_worker_process, settings, screenshot_dir
):
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, "lead", f"/studies/{scored_study.slug}/")
    assert "No lab has run for this study yet" in page.inner_text("#lab-status")
    assert page.is_checked("input[name=kinds][value=noise]")
    assert not page.is_checked("input[name=kinds][value=undersampling]")
    page.fill("#id_levels", "3")
    page.click("#start-lab")
    page.wait_for_url("**#metric-lab")
    assert "queued" in page.inner_text(".messages, body").lower()
    page.wait_for_function(
        "() => document.getElementById('metric-lab').dataset.state === 'done'", timeout=120_000
    )
    page.wait_for_selector("#lab-plot-translation .main-svg")
    kinds = page.locator(".lab-plot").evaluate_all("nodes => nodes.map(n => n.dataset.kind)")
    assert kinds == ["noise", "blur", "motion", "translation"]
    rows = page.locator("#lab-table tbody tr")
    assert rows.count() == len(settings.METRICS_ENABLED)
    header = page.inner_text("#lab-table thead")
    assert "shift/noise" in header and "readers: " in header
    psnr = page.inner_text("#lab-table tbody tr[data-metric=psnr]").split()
    assert psnr[1] == "1.00", "PSNR gets worse at every step of noise"
    assert psnr[-1] != "–", "the readers' aligned Spearman stands beside the lab"
    assert "Lab knee study" in page.title() or page.title()
    assert not page.is_disabled("#start-lab"), "a finished lab lets the next one start"
    assert MetricLab.objects.get().state == "done"
    notice = page.inner_text(".messages .lab-notice")
    assert notice == "The metric lab has finished: its results are below.", "not 'queued'"
    assert not errors, errors
    if screenshot_dir:
        page.locator("#metric-lab").screenshot(path=screenshot_dir / "study-metric-lab.png")
