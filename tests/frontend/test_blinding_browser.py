"""Blinding (docs/interfaces.md section 7): everything a reader's browser receives in a whole
reading session is recorded, and none of it may reveal the method, acceleration, parameters,
case or source file of a reconstruction."""

import pytest

from tests.frontend.test_reader_browser import wait_ready
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Numbers with enough digits that no timestamp or size in a response matches them by chance
# (a cookie's expiry once read 1797292397.25395, which holds "7.25").
SECRETS = [
    "cs-secret-method",
    "unet-secret-method",
    "7.8125",
    "0.012345",
    "case-secret-name",
    "secret_file_name",
    "npy",
]


def header_of(body: bytes) -> bytes:
    """A DICOM object up to its pixel data (pixels are image content, not metadata)."""
    return body.split(b"\xe0\x7f\x10\x00")[0]


def record_responses(page) -> list[tuple[str, dict, bytes]]:
    """Everything the page receives from the site from now on, as (url, headers, body),
    DICOM cut at its pixel data; the vendored static files (the same for everyone) aside."""
    received = []

    def record(response):
        if "/static/" in response.url:
            return
        try:
            body = response.body()
        except Exception:  # noqa: BLE001 (redirects have no body)
            body = b""
        if body.startswith(b"\x00" * 128 + b"DICM"):
            body = header_of(body)
        received.append((response.url, dict(response.headers), body))

    page.on("response", record)
    return received


def test_a_full_reading_session_reveals_nothing(page, live_server):
    study = StudyFactory(title="Blinded study")
    case = CaseFactory(study=study, name="case-secret-name")
    ReconstructionFactory(
        case=case,
        method="cs-secret-method",
        acceleration=7.8125,
        parameters={"lamda": 0.012345},
        source_name="secret_file_name.npy",
    )
    ReconstructionFactory(
        case=case,
        method="unet-secret-method",
        acceleration=7.8125,
        source_name="other_secret_file_name.npy",
    )
    study.assign_reader(UserFactory(username="radiologist"))

    received = record_responses(page)
    page.goto(f"{live_server.url}/accounts/login/?next=/read/{study.slug}/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_selector("#reader[data-ready]")
    for _ in range(2):
        ready = page.evaluate("document.getElementById('reader').dataset.ready")
        for digit in "4444":
            page.keyboard.press(digit)
        page.keyboard.press("Enter")
        wait_ready(page, ready)
    assert page.evaluate("document.getElementById('reader').dataset.ready") == "done"
    page.goto(f"{live_server.url}/")

    # What a cookie carries: its name and value (its expiry is the browser's clock, not ours).
    cookies = str([(c["name"], c["value"]) for c in page.context.cookies()]).encode()
    assert any(url.endswith(".dcm") for url, _, _ in received), "Sanity: the images were received"
    everything = [(url, str(headers).encode() + body) for url, headers, body in received]
    everything.append(("cookies", cookies))
    for url, content in everything:
        for secret in SECRETS:
            assert secret.encode() not in content and secret not in url, (
                f"{secret!r} leaked in {url}"
            )
