"""The researcher's whole path in Chromium, with a real worker importing the uploads: create a
study, upload a zip of real MR slices and a DICOM series, see a deliberate error with its
line, fix it, open the study, invite a reader who signs up through the link and scores two
items, close the study, download its archive and restore it into an emptied database."""

import io
import json
import zipfile

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command

from fixtures.dicom_series import write_series
from fixtures.images import load_slices
from readerstudy.archive import study_record
from readerstudy.metric_status import metric_progress
from readerstudy.models import Score, Study
from tests.frontend.test_reader_browser import wait_ready
from tests.readerstudy.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def undersampled(image: np.ndarray, keep: float) -> np.ndarray:
    """A zero-filled reconstruction: the central `keep` of k-space's phase-encode lines."""
    kspace = np.fft.fftshift(np.fft.fft2(image))
    rows = kspace.shape[0]
    half = max(1, int(rows * keep / 2))
    mask = np.zeros(rows, bool)
    mask[rows // 2 - half : rows // 2 + half] = True
    return np.abs(np.fft.ifft2(np.fft.ifftshift(kspace * mask[:, None]))).astype(np.float32)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, np.float32))
    return buffer.getvalue()


def study_zip(tmp_path, *, broken: bool) -> str:
    """Two real MR slices with two reconstructions each, and a 4-slice DICOM series case."""
    slices = list(load_slices().items())[:2]
    rows = ["case,reference,reconstruction,method,acceleration"]
    members: dict[str, bytes] = {}
    for name, image in slices:
        members[f"{name}/ref.npy"] = npy(image)
        for keep, factor in ((0.5, 2), (0.25, 4)):
            members[f"{name}/zf-{factor}x.npy"] = npy(undersampled(image, keep))
            rows.append(f"{name},{name}/ref.npy,{name}/zf-{factor}x.npy,zero-filled,{factor}")
    volume = np.stack([slices[0][1]] * 4)
    scaled = (volume / volume.max() * 4000).astype(np.uint16)
    series = write_series(tmp_path / "series", scaled)
    for path in series:
        members[f"volume/ref/{path.name}"] = path.read_bytes()
    members["volume/zf-2x.npy"] = npy(np.stack([undersampled(s, 0.5) for s in scaled]))
    rows.append("volume,volume/ref,volume/zf-2x.npy,zero-filled,2")
    if broken:
        rows[2] = rows[2].replace("zf-4x.npy", "zf-3x.npy")  # line 3 names a missing file
    members["manifest.csv"] = ("\n".join(rows) + "\n").encode()
    path = tmp_path / ("broken.zip" if broken else "study.zip")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def test_a_researcher_runs_a_study_from_the_browser(
    browser, page, live_server, celery_worker_process, wait_until, tmp_path, screenshot_dir
):
    def shot(name, target=page):
        if screenshot_dir:
            target.screenshot(path=screenshot_dir / f"{name}.png", full_page=True)

    lead = UserFactory(username="lead")
    lead.user_permissions.add(
        Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "lead")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.click("text=New study")
    page.fill("#id_title", "Knee zero-filled 2027")
    shot("researcher-new-study")
    page.click("#create")
    study = Study.objects.get(slug="knee-zero-filled-2027")
    page.click("text=Settings and questions")
    page.fill("#id_q-0-anchors_text", "1 = Non-diagnostic\n9 = Beyond the scale")
    page.click("#save-setup")
    assert "Level 9 is outside the scale 1-5" in page.inner_text("#q-0-anchors_text-error")
    shot("researcher-setup-error")
    page.click("text=← Knee zero-filled 2027")

    page.click("text=Images")
    assert page.inner_text("#case-count") == "0 cases in the study"
    upload = page.locator("#upload")
    assert (
        upload.is_disabled() and float(upload.evaluate("b => getComputedStyle(b).opacity")) < 0.6
    )
    page.set_input_files("#files", study_zip(tmp_path, broken=True))
    page.click("#upload")
    page.wait_for_selector("#import-problems", timeout=60_000)
    problems = page.inner_text("#import-problems")
    assert "manifest.csv: line 3: s1-axial/zf-3x.npy: no such file" in problems
    assert "/uploads/" not in problems, "no server folder in a message"
    assert study.cases.count() == 0, "all or nothing"
    shot("researcher-upload-error")
    page.set_input_files("#files", study_zip(tmp_path, broken=False))
    page.click("#upload")
    page.wait_for_selector("#import-done", timeout=60_000)
    assert "3 cases, 5 reconstructions" in page.inner_text("#import-done")
    assert study.cases.get(name="volume").shape[0] == 4, "the DICOM series is one volume"
    # The page's own figures follow without a reload (they said "0 cases").
    page.wait_for_function(
        "() => document.getElementById('case-count').textContent.startsWith('3 cases')"
    )
    assert "3 cases, 5 reconstructions added" in page.inner_text("#earlier-uploads")
    shot("researcher-upload-done")

    page.click("text=← Knee zero-filled 2027")
    page.click("#open-study")
    assert page.inner_text("#study-status") == "Open"
    page.click("text=Readers and invitations")
    page.fill("#id_invite-note", "Dr. Lee")
    page.click("#create-invitation")
    link = page.input_value("#invitation-link")
    shot("researcher-people")

    reader_context = browser.new_context(viewport={"width": 1280, "height": 800})
    reader = reader_context.new_page()
    reader.goto(link)
    shot("reader-invitation", reader)
    reader.fill("#id_username", "dr-lee")
    reader.fill("#id_password1", "Vf7#kq-lung")
    reader.fill("#id_password2", "Vf7#kq-lung")
    reader.click("#join")
    reader.wait_for_url(f"**/read/{study.slug}/")
    reader.wait_for_selector("#reader[data-ready]")
    for _ in range(2):
        ready = reader.evaluate("document.getElementById('reader').dataset.ready")
        for digit in "3453":
            reader.keyboard.press(digit)
        reader.keyboard.press("Enter")
        wait_ready(reader, ready)
    assert Score.objects.filter(assignment__reader__user__username="dr-lee").count() == 8
    reader_context.close()

    page.reload()
    assert "dr-lee" in page.inner_text("#readers") and "2/5" in page.inner_text("#readers")
    page.click("text=← Knee zero-filled 2027")
    page.click("#close-study")
    assert page.inner_text("#study-status") == "Closed"
    shot("researcher-study-closed")

    def metrics_done():
        progress = metric_progress(study)
        return progress["done"] + progress["failed"] == progress["expected"]

    wait_until(
        metrics_done,
        timeout=180,
        message="the worker computed metrics",
        log=celery_worker_process.log_path,
    )
    # Stopped, so that it does not recompute the restored study's metrics while they are compared.
    celery_worker_process.terminate()
    celery_worker_process.wait(timeout=30)
    with page.expect_download() as download:
        page.click("#archive-link")
    archive = tmp_path / "archive.zip"
    download.value.save_as(archive)
    study.refresh_from_db()  # opened and closed through the pages
    before = study_record(study)
    with zipfile.ZipFile(archive) as downloaded:
        assert json.loads(downloaded.read("study.json")) == before, "the archive is the study"
    study.delete()
    call_command(
        "import_study", str(archive), researcher=["lead"], map_user=[("dr-lee", "dr-lee")]
    )
    restored = Study.objects.get(slug="knee-zero-filled-2027")
    assert study_record(restored) == before
