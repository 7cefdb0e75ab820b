"""The pages in a real browser: log in, see my studies, the researcher's study page."""

import pytest

from metrics.tasks import compute_case_metrics
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url, "anonymous visitors are sent to the login page"
    page.fill("#id_username", username)
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_reader_logs_in_and_sees_their_progress_only(page, live_server, screenshot_dir):
    study = StudyFactory(title="Brain CS study")
    for _ in range(3):
        ReconstructionFactory(case__study=study, method="secret-method")
    study.assign_reader(UserFactory(username="radiologist"))
    log_in(page, live_server, "radiologist")
    assert page.locator("h1").inner_text() == "My studies"
    row = page.locator("tr", has_text="Brain CS study")
    assert row.locator(".count").inner_text() == "0/3"
    assert "secret-method" not in page.content()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-home.png", full_page=True)
    response = page.goto(f"{live_server.url}{study.get_absolute_url()}")
    assert response.status == 404, "readers never see the researcher's study page"


def test_pages_load_nothing_missing_not_even_the_favicon(page, live_server):
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.wait_for_load_state("networkidle")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(f"{live_server.url}{icon}").ok
    assert page.request.get(f"{live_server.url}/favicon.ico").ok, "the old name leads to it"
    assert failed == []


def test_the_study_page_follows_the_metric_workers_without_a_reload(page, live_server):
    """Values a worker stores while the page is open show there (it said "reload to
    update"); once all are in, the page stops asking."""
    study = StudyFactory(title="Knee CS study")
    study.researchers.add(UserFactory(username="lead"))
    for method in ("zero-filled", "cs-tv"):
        ReconstructionFactory(case__study=study, method=method)
    log_in(page, live_server, "lead")
    page.goto(f"{live_server.url}{study.get_absolute_url()}")
    assert page.inner_text("#metric-progress") == "0/8 computed"
    assert "updates by itself" in page.inner_text("#metrics-card")
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)  # a worker, while the page is open
    page.wait_for_function(
        "() => document.getElementById('metric-progress').textContent === '8/8 computed'",
        timeout=30_000,
    )
    assert page.get_attribute("#metrics-card", "data-pending") is None


def test_wrong_password_gets_a_clear_message(page, live_server):
    UserFactory(username="radiologist")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", "not-it")
    page.click("button[type=submit]")
    assert "did not match" in page.locator(".error").inner_text()


def test_researcher_sees_methods_metrics_and_reader_progress(page, live_server, screenshot_dir):
    study = StudyFactory(title="Knee CS study")
    study.researchers.add(UserFactory(username="lead"))
    for method in ("zero-filled", "cs-tv"):
        ReconstructionFactory(case__study=study, method=method)
    study.assign_reader(UserFactory(username="reader1"))
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)  # what the worker does (see tests/metrics)
    log_in(page, live_server, "lead")
    page.click("text=Knee CS study")
    assert page.locator("#metric-progress").inner_text() == "8/8 computed"
    table = page.locator("#cases-table").inner_text()
    assert "cs-tv" in table and "zero-filled" in table and "pending" not in table
    assert page.locator("tr", has_text="reader1").locator(".count").inner_text() == "0/2"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "researcher-study.png", full_page=True)


def test_a_researcher_creates_a_draft_study_in_the_browser(page, live_server, screenshot_dir):
    """The first step of running a study without a shell: the form explains a taken address
    beside the field, then creates the draft and lands on its page."""
    from django.contrib.auth.models import Permission

    from readerstudy.models import Study

    StudyFactory(slug="knee-2027")
    lead = UserFactory(username="lead")
    lead.user_permissions.add(
        Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
    )
    log_in(page, live_server, "lead")
    page.click("text=New study")
    page.fill("#id_title", "Knee 2027")
    page.fill("#id_instructions", "Score each reconstruction against its reference.")
    page.click("#create")
    assert "exists already" in page.inner_text("#slug-error")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "new-study-error.png", full_page=True)
    page.fill("#id_slug", "knee-2027-b")
    page.click("#create")
    page.wait_for_url(f"{live_server.url}/studies/knee-2027-b/")
    assert "Knee 2027" in page.inner_text("h1")
    study = Study.objects.get(slug="knee-2027-b")
    assert study.status == Study.Status.DRAFT and list(study.researchers.all()) == [lead]


def test_the_questions_page_shows_a_kinds_fields_and_its_errors_at_the_top(
    page, live_server, screenshot_dir
):
    """A Likert question shows no ranking fields and a forced choice no scale; an error in
    a question far down the page is summarised at the top, focused, with a link to it (it
    sat 3,100 px below an unchanged top), and the help says the least is 2."""
    study = StudyFactory(title="Knee CS study", status="draft")
    study.researchers.add(UserFactory(username="lead"))
    log_in(page, live_server, "lead")
    page.goto(f"{live_server.url}/studies/{study.slug}/setup/")
    first = page.locator("#question-0")
    assert first.locator(".comparison-fields").is_hidden()
    assert first.locator("[name$='-anchors_text']").is_visible()
    new = page.locator(".question-form").last
    new.locator("[name$='-label']").fill("Which is better?")
    new.locator("select[name$='-kind']").select_option("choice")
    assert new.locator(".comparison-fields").is_visible()
    assert new.locator("[name$='-anchors_text']").is_hidden()
    assert new.locator("[name$='-scale_min']").is_hidden()
    assert "(2 or more)" in new.inner_text()
    new.locator("[name$='-comparisons_per_reconstruction']").fill("1")
    page.click("#save-setup")
    summary = page.locator("#error-summary")
    summary.wait_for()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.evaluate("window.scrollY") < 400, "the summary is in view"
    link = summary.locator("a", has_text="Question 5")
    assert "At least 2" in link.inner_text()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "setup-error-summary.png")
    link.click()
    assert page.evaluate("document.activeElement.name").endswith("comparisons_per_reconstruction")


def test_the_cases_table_scrolls_inside_its_card_on_a_narrow_screen(browser, live_server):
    """With a metric column each, the cases table spilled past its card (seen at 1,500 px
    with eight metrics): it scrolls inside it, and the page itself never scrolls sideways."""
    study = StudyFactory(title="Knee CS study")
    study.researchers.add(UserFactory(username="lead"))
    for method in ("zero-filled", "compressed-sensing-total-variation"):
        ReconstructionFactory(case__study=study, method=method)
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    context = browser.new_context(viewport={"width": 640, "height": 800})
    page = context.new_page()
    log_in(page, live_server, "lead")
    page.goto(f"{live_server.url}{study.get_absolute_url()}")
    table = page.locator("#cases-table").bounding_box()
    region = page.locator("#cases-scroll").bounding_box()
    assert table["width"] > region["width"], "the table is wider than the screen allows"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()


def test_an_invitee_of_a_draft_study_is_told_one_consistent_thing(page, live_server):
    """Joining a study that is still a draft: the page says it is theirs and not open yet,
    and no longer also "ask the study's researcher to add you"."""
    from readerstudy.models import Invitation

    study = StudyFactory(title="Knee draft", status="draft")
    ReconstructionFactory(case__study=study)
    _, token = Invitation.create(study, by=None)
    page.goto(f"{live_server.url}/invite/{token}/")
    page.fill("#id_username", "dr-lee")
    page.fill("#id_password1", "Vf7#kq-lung")
    page.fill("#id_password2", "Vf7#kq-lung")
    page.click("#join")
    page.wait_for_selector("#waiting")
    text = page.inner_text("main")
    assert "You are a reader of “Knee draft”. It is not open yet" in text
    assert "Knee draft" in page.inner_text("#waiting")
    assert "add you" not in text and page.locator("#no-studies").count() == 0
