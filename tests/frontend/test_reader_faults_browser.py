"""Faults a reader meets, in Debian's Chromium: the database restarting while they score,
two tabs on the same item, and a session that expires mid-read. Nothing lost, nothing doubled."""

from importlib import import_module
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection

from readerstudy.models import Score, ScoreRevision
from tests.conftest import database_url_for_worker, gunicorn_server
from tests.frontend.test_reader_browser import open_reader, wait_ready
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)
ANSWERS = "3453"  # the four default questions


def item_order(study):
    reader = study.readers.get()
    return list(reader.assignments.order_by("position").values_list("public_id", flat=True))


def end_every_session():
    """Every session ends on the server (expiry, a sign-out elsewhere), through the session
    engine so that a cached copy goes too."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for key in Session.objects.values_list("session_key", flat=True):
        store(session_key=key).delete()


def scores_of(public_id):
    return dict(
        Score.objects.filter(assignment__public_id=public_id).values_list("question__key", "value")
    )


def message(page):
    return page.inner_text("#message")


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a PostgreSQL restart needs PostgreSQL (DATABASE_URL)",
)
def test_database_restart_while_scoring_keeps_the_answer_and_saves_it_once(
    page, study, tmp_path, screenshot_dir
):
    """The connection path to PostgreSQL is cut (every connection reset, new ones refused) and
    restored, which is what a restart looks like to gunicorn's workers."""
    database = urlsplit(database_url_for_worker())
    proxy = TcpProxy(database.hostname, database.port or 5432)
    via_proxy = urlunsplit(
        database._replace(netloc=database.netloc.replace(f":{database.port}", f":{proxy.port}"))
    )
    first, second, third = item_order(study)[:3]
    try:
        with gunicorn_server(via_proxy, tmp_path / "gunicorn.log") as url:
            open_reader(page, type("Server", (), {"url": url}), study)
            ready = page.evaluate("document.getElementById('reader').dataset.ready")
            assert ready == first
            for digit in ANSWERS:
                page.keyboard.press(digit)
            page.keyboard.press("Enter")
            assert wait_ready(page, first) == second

            for digit in "4444":
                page.keyboard.press(digit)
            proxy.cut()
            page.keyboard.press("Enter")
            page.wait_for_function(
                "() => document.getElementById('message').textContent.includes('trying again')"
            )
            text = message(page)
            assert "Not saved yet" in text and "database cannot be reached" in text, text
            assert "answers are kept" in text
            if screenshot_dir:
                page.screenshot(path=screenshot_dir / "fault-database-down.png")
            assert scores_of(second) == {}, "nothing half-written"

            proxy.restore()
            assert wait_ready(page, second) == third, "the automatic retry saved and moved on"
            assert message(page) == ""
    finally:
        proxy.close()
    assert scores_of(first) == {"overall": 3, "artifacts": 4, "snr": 5, "sharpness": 3}
    assert set(scores_of(second).values()) == {4}
    assert Score.objects.count() == 8 and ScoreRevision.objects.count() == 8, "each answer once"


def test_two_tabs_on_the_same_item_store_one_score_and_keep_both_answers(
    browser, live_server, study
):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        tab_a = context.new_page()
        open_reader(tab_a, live_server, study)
        tab_b = context.new_page()
        tab_b.goto(f"{live_server.url}/read/{study.slug}/")
        tab_b.wait_for_selector("#reader[data-ready]")
        first, second = item_order(study)[:2]
        assert tab_a.evaluate("document.getElementById('reader').dataset.ready") == first
        assert tab_b.evaluate("document.getElementById('reader').dataset.ready") == first

        for digit in "2222":
            tab_a.keyboard.press(digit)
        tab_a.keyboard.press("Enter")
        assert wait_ready(tab_a, first) == second
        for digit in "5555":
            tab_b.keyboard.press(digit)
        tab_b.keyboard.press("Enter")
        assert wait_ready(tab_b, first) == second, "the other tab moves on too"
    finally:
        context.close()
    assert Score.objects.count() == 4, "one score per question, not two"
    assert set(scores_of(first).values()) == {5}, "the later answer is the score"
    trail = list(
        ScoreRevision.objects.filter(score__question__key="overall").values_list(
            "previous_value", "value"
        )
    )
    assert trail == [(None, 2), (2, 5)], "the audit trail keeps both tabs' answers"


def test_session_expiring_mid_read_loses_nothing(browser, live_server, study, screenshot_dir):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        open_reader(page, live_server, study)
        first, second, third = item_order(study)[:3]
        for digit in ANSWERS:
            page.keyboard.press(digit)

        end_every_session()  # the session expires while the reader looks
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => document.getElementById('message').textContent.includes('session has ended')"
        )
        assert page.evaluate("document.getElementById('reader').dataset.ready") == first
        sign_in = page.locator("#message a")
        assert sign_in.get_attribute("target") == "_blank"
        if screenshot_dir:
            page.screenshot(path=screenshot_dir / "fault-session-expired.png")
        assert Score.objects.count() == 0

        # Sign in again in another tab, come back, press Enter: saved once, with a fresh token.
        login = context.new_page()
        login.goto(f"{live_server.url}{sign_in.get_attribute('href')}")
        login.fill("#id_username", "radiologist")
        login.fill("#id_password", "password")
        login.click("button[type=submit]")
        login.wait_for_url(f"**/read/{study.slug}/")
        login.close()
        page.keyboard.press("Enter")
        assert wait_ready(page, first) == second
        assert len(scores_of(first)) == 4

        # Answers of the next item survive an expiry followed by a reload and a new sign-in.
        for digit in "2121":
            page.keyboard.press(digit)
        end_every_session()
        page.reload()
        page.wait_for_url("**/accounts/login/**")
        page.fill("#id_username", "radiologist")
        page.fill("#id_password", "password")
        page.click("button[type=submit]")
        page.wait_for_selector(f"#reader[data-ready='{second}']")
        chosen = page.eval_on_selector_all(
            "#questions button.chosen", "buttons => buttons.map(b => b.dataset.value)"
        )
        assert chosen == ["2", "1", "2", "1"], "the unsaved answers came back"
        page.keyboard.press("Enter")
        assert wait_ready(page, second) == third
    finally:
        context.close()
    assert Score.objects.count() == 8 and ScoreRevision.objects.count() == 8
    assert scores_of(second) == {"overall": 2, "artifacts": 1, "snr": 2, "sharpness": 1}
