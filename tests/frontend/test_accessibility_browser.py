"""WCAG 2.2 AA on every page, checked by axe-core (vendored in tests/frontend/vendor, a test
asset the app never serves) in Debian's Chromium: the login page, a reader's studies and
reading room, and every page of a researcher's study, the dashboard with its analysis."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from metrics.tasks import compute_case_metrics
from readerstudy.dashboard_store import store_analysis
from tests.frontend.accounts import log_in
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def violations(page) -> list[str]:
    """axe-core's WCAG A and AA violations on the page as it is now, one line per rule with
    its first offending elements. Evaluated through the DevTools protocol, so the page's
    Content-Security-Policy (tested elsewhere) stays as in production."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    found = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => ({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
        " help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))}))",
        WCAG_AA,
    )
    # A page with content passes a dozen rules or more (names, contrast, landmarks, lang):
    # fewer would mean axe looked at nothing, and "no violations" would prove nothing.
    assert found["passes"] >= 10, f"axe checked only {found['passes']} rules on {page.url}"
    return [f"{v['id']}: {v['help']} at {json.dumps(v['nodes'])}" for v in found["violations"]]


@pytest.fixture
def study():
    study = StudyFactory(slug="knee", title="Knee reading")
    lead = UserFactory(username="lead")
    lead.user_permissions.add(
        Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
    )
    study.researchers.add(lead)
    for index in range(6):
        ReconstructionFactory(
            case__study=study, method=("zero-filled", "cs-tv")[index % 2], acceleration=4
        )
    for case in study.cases.all():
        compute_case_metrics(case_pk=case.pk)
    for name in ("radiologist", "second"):
        study.assign_reader(UserFactory(username=name))
    for name in ("radiologist", "second"):
        reader = study.readers.get(user__username=name)
        for item in reader.assignments.all()[:4]:
            item.save_scores({q.key: 2 + item.position % 3 for q in study.questions.all()})
    store_analysis(study)  # what the worker stores: the dashboard shows it at once
    return study


def test_every_page_meets_wcag_aa(browser, live_server, study):
    report = {}
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    report["login"] = violations(page)

    log_in(page, live_server, "radiologist", "/")
    report["reader: my studies"] = violations(page)
    page.goto(f"{live_server.url}/read/{study.slug}/")
    page.wait_for_selector("#reader[data-ready]")
    report["reading room"] = violations(page)
    context.close()

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, live_server, "lead", "/")
    report["researcher: my studies"] = violations(page)
    for name, path in (
        ("new study", "/studies/new/"),
        ("study", f"/studies/{study.slug}/"),
        ("questions and setup", f"/studies/{study.slug}/setup/"),
        ("images", f"/studies/{study.slug}/images/"),
        ("people", f"/studies/{study.slug}/people/"),
        ("score history", f"/studies/{study.slug}/score-history/"),
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.ok, f"{name}: {response and response.status}"
        report[name] = violations(page)
    page.goto(f"{live_server.url}/studies/{study.slug}/dashboard/")
    page.wait_for_selector("#ranked tbody tr", timeout=60_000)
    report["dashboard"] = violations(page)
    # The questions are tabs (one Tab stop, arrows between them), and every plot has a text
    # alternative that says where its numbers are.
    tabs = page.locator("#question-tabs [role=tab]")
    assert tabs.count() == 4 and tabs.first.get_attribute("aria-selected") == "true"
    assert page.locator("#question-tabs [tabindex='0']").count() == 1
    tabs.first.focus()
    page.keyboard.press("ArrowRight")
    second = page.locator("#question-tabs [role=tab]").nth(1)
    assert second.get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.getAttribute('aria-selected')") == "true"
    for figure in page.locator("figure.plot").all():
        assert len(figure.locator("figcaption").text_content().strip()) > 40
    report["dashboard, second question"] = violations(page)
    context.close()

    found = {name: lines for name, lines in report.items() if lines}
    assert not found, "\n".join(
        f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items()
    )
