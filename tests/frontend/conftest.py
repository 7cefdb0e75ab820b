"""Browser fixtures: Debian's Chromium driven by Playwright (never `playwright install`)."""

import os
from pathlib import Path

import pytest

from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Playwright's sync API runs an event loop; Django must still allow ORM calls from the test.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def study():
    """An open study of 5 reconstructions and its reader, "radiologist" (password "password")."""
    study = StudyFactory(title="Knee reading")
    for _ in range(5):
        ReconstructionFactory(case__study=study)
    study.assign_reader(UserFactory(username="radiologist"))
    return study


@pytest.fixture
def page(browser):
    """A page whose test fails if anything the site loads breaks its Content-Security-Policy
    (every browser test runs with the production policy on)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    # In front, so that its animation frames (cornerstone draws in them, and Playwright's
    # wait_for_function polls in them) are not throttled.
    page.bring_to_front()
    yield page
    context.close()
    assert not violations, f"the page broke its Content-Security-Policy: {violations}"


@pytest.fixture
def screenshot_dir():
    """Where browser tests leave screenshots for a person to look at (SCREENSHOT_DIR)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) if folder else None
