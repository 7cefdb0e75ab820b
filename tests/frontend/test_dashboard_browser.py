"""The researcher's dashboard in Debian's Chromium: it updates live while a reader scores in
another browser context, opens a point's images, and downloads its figures."""

import time

import numpy as np
import pytest

from metrics.tasks import compute_case_metrics
from tests.frontend.accounts import log_in
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
    array_file,
    smooth_image,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def study():
    study = StudyFactory(slug="live", title="Live knee study")
    study.researchers.add(UserFactory(username="lead"))
    for index in range(6):
        ReconstructionFactory(
            case__study=study, method=("zero-filled", "cs-tv")[index % 2], acceleration=4
        )
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)  # what the worker does (see tests/metrics)
    for name in ("radiologist", "second"):
        study.assign_reader(UserFactory(username=name))
    second = study.readers.get(user__username="second")
    for item in second.assignments.all()[:4]:
        item.save_scores({q.key: 2 + item.position % 3 for q in study.questions.all()})
    return study


def analysis_shown(page):
    """Wait for the worker's analysis of the current data to be on the page (the worker
    starts, takes the task, computes and stores it; the next poll brings it)."""
    page.wait_for_selector('#dashboard[data-updating="false"]', state="attached", timeout=90_000)


def scored(page):
    return page.inner_text("#scored-count")


def test_dashboard_updates_live_when_a_reader_scores(
    browser, live_server, study, screenshot_dir, celery_worker_process
):
    researcher = browser.new_context(
        viewport={"width": 1400, "height": 900}, accept_downloads=True
    )
    dashboard = researcher.new_page()
    errors = []
    dashboard.on("pageerror", lambda error: errors.append(str(error)))
    log_in(dashboard, live_server, "lead", f"/studies/{study.slug}/dashboard/")
    # The first analysis is the worker's: it starts, takes the task, computes, stores.
    dashboard.wait_for_selector("#ranked tbody tr", timeout=90_000)
    assert scored(dashboard).startswith("4 of 6")
    version = dashboard.evaluate("document.getElementById('dashboard').dataset.version")
    metrics = dashboard.locator("#ranked tbody tr").all_inner_texts()
    assert len(metrics) == 4 and any("psnr" in row for row in metrics)
    assert "live" in dashboard.inner_text("#live-status").lower()
    assert dashboard.locator("#preview").is_hidden(), "no broken images before a point is clicked"
    assert dashboard.locator("#preview-reference").bounding_box() is None
    directions = dashboard.locator("#ranked tbody tr td:nth-child(3)").all_inner_texts()
    assert set(directions) == {"higher is better", "lower is better"}
    assert dashboard.inner_text("#resampling") == "whole cases"

    reader = browser.new_context(viewport={"width": 1280, "height": 800})
    reading = reader.new_page()
    log_in(reading, live_server, "radiologist", f"/read/{study.slug}/")
    reading.wait_for_selector("#reader[data-ready]")
    for digit in "4444":
        reading.keyboard.press(digit)
    started = time.perf_counter()
    reading.keyboard.press("Enter")
    dashboard.wait_for_function(
        "v => document.getElementById('dashboard').dataset.version !== v",
        arg=version,
        timeout=20_000,
    )
    elapsed = time.perf_counter() - started
    # A poll queues the analysis, the worker computes it, the next poll shows it.
    assert elapsed < 10, "a new score shows up within seconds, without a reload"
    rows = dashboard.locator("#reader-progress tr", has_text="radiologist")
    assert rows.locator(".count").inner_text() == "1/6"
    print(f"score to dashboard: {elapsed:.2f} s")

    legend = dashboard.text_content("#scatter .legend")
    assert "shape:" in legend, "the legend says which shape is which acceleration"
    drawn = dashboard.evaluate(
        "() => document.getElementById('scatter').data"
        ".filter(t => t.x.some(v => v !== null)).length"
    )
    keys = dashboard.locator("#scatter .legend .traces").count()
    assert keys == drawn, "one legend entry per method, not one per drawn trace and key"

    point = dashboard.locator("#scatter .point").first
    point.scroll_into_view_if_needed()
    box = point.bounding_box()
    dashboard.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    dashboard.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    dashboard.wait_for_function(
        "() => { const i = document.getElementById('preview-reconstruction');"
        " return i.complete && i.naturalWidth === 32; }"
    )
    assert "Case case-" in dashboard.inner_text("#preview-caption")
    assert dashboard.locator("#preview").is_visible()
    assert "Holm-adjusted" in dashboard.inner_text("#comparison")
    for plot, image_format in (("forest", "svg"), ("scatter", "png")):
        with dashboard.expect_download() as download:
            dashboard.click(
                f".plot-downloads[data-plot={plot}] button[data-format={image_format}]"
            )
        assert download.value.suggested_filename == f"{plot}-overall.{image_format}"
    with dashboard.expect_download() as download:
        dashboard.click("text=metric table (CSV)")
    assert download.value.suggested_filename == "live-metric-agreement.csv"
    if screenshot_dir:
        dashboard.screenshot(path=screenshot_dir / "dashboard.png", full_page=True)
    assert errors == []
    researcher.close()
    reader.close()


def test_dashboard_is_404_for_a_reader(page, live_server, study):
    log_in(page, live_server, "radiologist", "/")
    response = page.goto(f"{live_server.url}/studies/{study.slug}/dashboard/")
    assert response.status == 404


def test_dashboard_shows_rankings_and_forced_choices_against_the_metrics(
    browser, live_server, screenshot_dir, celery_worker_process
):
    """Three readers rank each case's reconstructions by PSNR (the third swaps one pair) and
    choose between every pair the same way: the ranking tab puts PSNR (and NMSE, monotonic
    with it within a case) first at 32 of 36 pairs, shows the readers' baseline and Kendall's
    W; the choice tab, where no reader swapped, at 1."""
    from metrics.models import MetricValue
    from readerstudy.models import Assignment, Question

    study = StudyFactory(slug="prefs", title="Ranking study")
    study.researchers.add(UserFactory(username="lead"))
    for case_number in range(4):
        case = CaseFactory(study=study, name=f"knee-{case_number}")
        for k in range(3):
            ReconstructionFactory(case=case, method=f"m{k}")
    Question.objects.create(study=study, key="rank", label="Rank", kind="rank", position=10)
    Question.objects.create(study=study, key="pick", label="Pick", kind="choice", position=11)
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    psnr = dict(MetricValue.objects.filter(metric="psnr").values_list("reconstruction", "value"))
    for name in ("r1", "r2", "r3"):
        reader = study.assign_reader(UserFactory(username=name))
        for item in Assignment.objects.filter(reader=reader, comparison__isnull=False):
            order = sorted(item.layout, key=lambda pk: -psnr[pk])
            if name == "r3" and item.comparison.question.key == "rank":
                order[0], order[1] = order[1], order[0]
            ranks = [order.index(pk) + 1 for pk in item.layout]
            item.save_scores({item.comparison.question.key: ranks})
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server, "lead", f"/studies/{study.slug}/dashboard/")
    analysis_shown(page)
    page.click("#question-tabs button[data-question='rank']")
    page.wait_for_selector("#pref-ranked tbody tr")
    assert page.locator("#likert-view").is_hidden()
    rows = page.locator("#pref-ranked tbody tr").all_inner_texts()
    assert len(rows) == 4
    first = page.locator("#pref-ranked tbody tr").first
    assert first.get_attribute("data-metric") in ("psnr", "nmse")
    cells = first.locator("td").all_inner_texts()
    # 4 cases x 3 readers x 3 pairs; r3's swap disagrees with PSNR once per case.
    assert cells[3] == "36" and cells[4] == f"{32 / 36:.3f}", cells
    agreement = page.inner_text("#agreement")
    assert "Kendall's W" in agreement and "Reader vs majority" in agreement
    assert scored(page).startswith("12 of 12") and "ranked" in scored(page)
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "dashboard-ranking.png", full_page=True)
    page.click("#question-tabs button[data-question='pick']")
    page.wait_for_function(
        "() => document.querySelector('#pref-ranked tbody tr td:nth-child(5)').innerText === '1.000'"
    )
    assert "Kendall's W" not in page.inner_text("#agreement")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "dashboard-forced-choice.png", full_page=True)
    page.click("#question-tabs button[data-question='overall']")
    assert page.locator("#likert-view").is_visible()
    assert not errors, errors
    context.close()


def test_dashboard_shows_each_reader_against_their_own_repeat_reads(
    browser, live_server, screenshot_dir, celery_worker_process
):
    """Two readers with every item read twice (a 50 % share): one repeats their scores
    exactly (self kappa 1), the other answers at random the second time; the card shows each
    beside the inter-reader kappa, and drift over order and session time."""
    from readerstudy.models import Question

    study = StudyFactory(slug="repeats", title="Repeat-read study", repeat_share=0.5)
    study.researchers.add(UserFactory(username="lead"))
    Question.objects.filter(study=study).exclude(key="overall").delete()
    for index in range(16):
        ReconstructionFactory(case__study=study, method=("zero-filled", "cs-tv")[index % 2])
    rng = np.random.default_rng(4)
    quality = {}
    for name in ("steady", "erratic"):
        reader = study.assign_reader(UserFactory(username=name))
        for item in reader.assignments.order_by("position"):
            truth = quality.setdefault(item.reconstruction_id, int(rng.integers(1, 6)))
            erratic = name == "erratic" and item.repeat_of_id is not None
            item.save_scores({"overall": int(rng.integers(1, 6)) if erratic else truth})
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server, "lead", f"/studies/{study.slug}/dashboard/")
    page.wait_for_selector("#reliability tbody tr", timeout=90_000)
    steady = page.locator("#reliability tr[data-reader='steady'] td").all_inner_texts()
    erratic = page.locator("#reliability tr[data-reader='erratic'] td").all_inner_texts()
    assert steady[1] == "8" and steady[2] == "1.000", steady
    assert erratic[1] == "8" and float(erratic[2]) < 0.9, erratic
    assert steady[3] == erratic[3] == "1.000", "the two agree on every first read"
    header = page.inner_text("#reliability thead")
    assert "per 100 items" in header and "per hour of a session" in header
    assert page.locator("#reliability-empty").is_hidden()
    if screenshot_dir:
        page.locator("#reliability-card").screenshot(path=screenshot_dir / "dashboard-repeats.png")
    assert not errors, errors
    context.close()


def test_names_with_markup_are_drawn_as_text_by_plotly(
    page, live_server, screenshot_dir, celery_worker_process
):
    """A method called `<a href=...>` once became a live link in the scatter's legend (issue 31):
    every label that Plotly draws is text."""
    hostile = '<a href="https://example.org/x">click</a><b>bold</b>'
    study = StudyFactory(slug="markup", title="Markup")
    study.researchers.add(UserFactory(username="lead"))
    for index in range(6):
        ReconstructionFactory(case__study=study, method=(hostile, "cs-tv")[index % 2])
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    for name in ("r1", "<i>r2</i>"):
        reader = study.assign_reader(
            UserFactory(username=name.replace("<", "").replace(">", "").replace("/", ""))
        )
        for item in reader.assignments.all():
            item.save_scores({q.key: 1 + item.position % 5 for q in study.questions.all()})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, live_server, "lead", f"/studies/{study.slug}/dashboard/")
    page.wait_for_selector("#scatter .legend .traces", timeout=90_000)
    assert page.locator("#dashboard svg a").count() == 0, "no link inside any plot"
    assert page.locator("#scatter svg b, #scatter svg [style*='font-weight:bold']").count() == 0
    assert hostile in page.text_content("#scatter .legend"), "the name shown as it is spelt"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "dashboard-markup-names.png", full_page=True)
    assert errors == []


def test_a_metric_that_fails_on_small_cases_is_shown_and_retried(
    browser, live_server, settings, screenshot_dir, start_worker
):
    """Two of four cases are 64 x 64, too small for VIF: the real engine stores VIF's failure
    there and every other metric. The dashboard says which metric failed where, flags VIF's
    figure as computed on fewer reconstructions than were scored, and names the Holm family;
    the study page lists the failures by metric and case and retries them."""
    settings.METRICS_ENABLED = ["psnr", "ssim", "nmse", "vif"]
    study = StudyFactory(slug="small", title="Mixed matrix sizes")
    study.researchers.add(UserFactory(username="lead"))
    rng = np.random.default_rng(5)
    for index, side in enumerate((64, 96, 64, 96)):
        reference = smooth_image(index, (side, side))
        case = CaseFactory(
            study=study, name=f"case{index}", reference=array_file(reference), shape=[side, side]
        )
        for k, noise in enumerate((0.02, 0.1, 0.3)):
            noisy = reference + rng.normal(0, noise, reference.shape).astype(np.float32)
            ReconstructionFactory(case=case, method=f"m{k}", image=array_file(noisy))
        compute_case_metrics(case_pk=case.pk)
    for name in ("r1", "r2", "r3"):
        reader = study.assign_reader(UserFactory(username=name))
        for item in reader.assignments.select_related("reconstruction"):
            quality = 5 - 2 * int(item.reconstruction.method[-1])
            item.save_scores({q.key: quality for q in study.questions.all()})

    # The dashboard's analysis is a worker's, configured as this deployment is.
    start_worker(METRICS_ENABLED=",".join(settings.METRICS_ENABLED))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    log_in(page, live_server, "lead", f"/studies/{study.slug}/dashboard/")
    page.wait_for_selector("#ranked tbody tr", timeout=90_000)
    notice = page.locator("#metric-failures")
    assert notice.is_visible()
    assert "vif failed for 6 reconstructions: vif: images of 64 x 64 pixels are too small" in (
        notice.inner_text()
    )
    vif = page.locator('#ranked tbody tr[data-metric="vif"]')
    assert "⚠ fewer" in vif.inner_text() and vif.locator(
        "td:nth-child(4)"
    ).inner_text().startswith("6")
    assert "⚠" not in page.locator('#ranked tbody tr[data-metric="psnr"]').inner_text()
    assert page.inner_text("#n-scored") == "12"
    assert page.inner_text("#holm-family") == "4 metrics (nmse, psnr, ssim, vif)"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "dashboard-failed-metric.png", full_page=True)

    page.goto(f"{live_server.url}/studies/{study.slug}/")
    rows = page.locator("#metric-failures tbody tr").all_inner_texts()
    assert [row.split("\t")[:3] for row in rows] == [
        ["vif", "case0", "3"],
        ["vif", "case2", "3"],
    ]
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "study-failed-metric.png", full_page=True)
    page.click("#retry-metrics")
    page.wait_for_selector(".messages")
    assert "Queued the metrics of 2 cases again" in page.inner_text(".messages")
    context.close()
