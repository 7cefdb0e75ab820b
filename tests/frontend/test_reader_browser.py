"""The reading room in Debian's Chromium: keyboard scoring, resume, drawn and linked viewers."""

import time

import numpy as np
import pytest

from readerstudy.models import Score, ScoreRevision
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def open_reader(page, live_server, study):
    page.goto(f"{live_server.url}/accounts/login/?next=/read/{study.slug}/")
    page.fill("#id_username", "radiologist")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/read/{study.slug}/")
    page.wait_for_selector("#reader[data-ready]")


def wait_ready(page, previous):
    page.wait_for_function(
        "prev => { const r = document.getElementById('reader').dataset.ready; return r && r !== prev; }",
        arg=previous,
    )
    return page.evaluate("document.getElementById('reader').dataset.ready")


def drawn_fraction(page, selector):
    """Share of non-black pixels in a viewport's canvas: 0 means nothing was drawn."""
    return page.evaluate(
        """sel => { const c = document.querySelector(sel + ' canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let lit = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] > 8) lit++; }
                    return lit / (d.length / 4); }""",
        selector,
    )


def test_reader_scores_by_keyboard_reloads_and_resumes(page, live_server, study, screenshot_dir):
    open_reader(page, live_server, study)
    assert drawn_fraction(page, "#viewport-reference") > 0.2, "the reference was drawn"
    assert drawn_fraction(page, "#viewport-slot-1") > 0.2, "the reconstruction was drawn"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-item.png")
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    latencies = []
    for _ in range(3):
        for digit in "3453":
            page.keyboard.press(digit)
        start = time.perf_counter()
        page.keyboard.press("Enter")
        ready = wait_ready(page, ready)
        latencies.append(time.perf_counter() - start)
    assert Score.objects.count() == 12 and set(Score.objects.values_list("value", flat=True)) == {
        3,
        4,
        5,
    }
    assert all(s.seconds_spent > 0 for s in Score.objects.all()), "time spent is recorded"
    page.reload()
    page.wait_for_selector("#reader[data-ready]")
    assert page.inner_text("#position") == "Item 4 of 5", "resumes at the fourth item"
    print(f"next-item latency (s): {', '.join(f'{t:.3f}' for t in latencies)}")


def test_enter_without_all_answers_explains_and_saves_nothing(page, live_server, study):
    open_reader(page, live_server, study)
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    assert "Answer every question first" in page.inner_text("#message")
    assert not Score.objects.exists()


def test_backspace_goes_back_and_a_changed_answer_keeps_history(page, live_server, study):
    open_reader(page, live_server, study)
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    for digit in "2222":
        page.keyboard.press(digit)
    page.keyboard.press("Enter")
    ready = wait_ready(page, ready)
    page.keyboard.press("Backspace")
    ready = wait_ready(page, ready)
    assert page.inner_text("#position") == "Item 1 of 5"
    assert page.locator(".question .chosen").count() == 4, "my earlier answers are shown"
    page.keyboard.press("5")  # on the images with every question answered: changes nothing
    assert "Every question is answered" in page.inner_text("#message")
    assert page.locator(".question .chosen .value").all_inner_texts() == ["2"] * 4
    page.keyboard.press("Tab")  # to the first question
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    wait_ready(page, ready)
    changed = Score.objects.get(question__key="overall")
    assert changed.value == 5
    assert list(ScoreRevision.objects.filter(score=changed).values_list("value", flat=True)) == [
        2,
        5,
    ]


def focused(page) -> str:
    """What has the keyboard focus: an element's id, a radio's question and value, or its text."""
    return page.evaluate(
        """() => { const e = document.activeElement;
                   if (e.getAttribute('role') === 'radio') {
                     return 'radio ' + e.closest('fieldset').dataset.key + '=' + e.dataset.value; }
                   return e.id || e.tagName.toLowerCase() + ':' + e.textContent.trim().slice(0, 20); }"""
    )


def test_digit_tab_digit_never_changes_an_answer_without_its_focus(page, live_server, study):
    """A digit answers the focused question, or on the images the first unanswered one, and
    the focus moves on (to Save after the last). Tab then leaves the questions instead of
    wrapping back to the first, where the next digit silently replaced its answer."""
    open_reader(page, live_server, study)
    assert focused(page) == "viewers", "a new item starts on the images"
    for digit in "3453":
        page.keyboard.press(digit)
    assert focused(page) == "save"
    page.keyboard.press("Tab")
    page.keyboard.press("1")
    values = page.locator(".question .chosen .value").all_inner_texts()
    assert values == ["3", "4", "5", "3"], "no answer changed"
    assert "Every question is answered" in page.inner_text("#message")
    # Shift-Tab back (past Save and Reset) to the last question: a digit there changes that
    # one, and only it.
    for _ in range(3):
        page.keyboard.press("Shift+Tab")
    assert focused(page) == "radio sharpness=3"
    page.keyboard.press("2")
    assert page.locator(".question .chosen .value").all_inner_texts() == ["3", "4", "5", "2"]


def test_the_keyboard_reaches_every_control_and_log_out(page, live_server, study):
    """Tab is the browser's: it walks the images, each question (one stop, a radio group),
    the buttons, the keyboard help and the page's links and Log out, and never sticks on the
    page body. Arrows inside a question choose its score."""
    open_reader(page, live_server, study)
    seen = []
    for _ in range(30):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if seen[-1] == "button:Log out":
            break
    # The page's end hands the focus to the browser (the body here) once, then it wraps to
    # the page's header; it never stays put, as it did when the reading room took Tab.
    assert [entry.startswith("body:") for entry in seen].count(True) <= 1, seen
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), seen
    # (Previous is disabled on a first item, and so not a stop.)
    for control in ("radio overall=1", "radio sharpness=1", "reset", "save", "summary:Keyboard"):
        assert control in seen, f"{control} is reached by Tab ({seen})"
    assert seen[-1] == "button:Log out", seen
    assert page.locator("[role=radiogroup]").count() == 4
    assert page.locator("[role=radiogroup]").first.get_attribute("aria-labelledby") == "question-0"
    page.keyboard.press("Shift+Tab")
    while focused(page) != "radio overall=1":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("ArrowRight")  # the radio group's arrows: the next score, checked
    checked = page.locator("[data-key=overall] [aria-checked=true]")
    assert checked.inner_text().split() == ["2", "Poor"] and focused(page) == "radio overall=2"
    page.keyboard.press("ArrowDown")
    assert focused(page) == "radio artifacts=1"


def test_the_scale_words_are_on_the_buttons(page, live_server, study, screenshot_dir):
    """For "Artifacts" 5 means none: the words are on the buttons before anything is chosen."""
    open_reader(page, live_server, study)
    artifacts = page.locator("[data-key=artifacts] [role=radio]")
    assert [b.inner_text().split("\n") for b in artifacts.all()][::4] == [
        ["1", "Severe, non-diagnostic"],
        ["5", "None"],
    ]
    for button in page.locator("[role=radio]").all():
        box = button.bounding_box()
        assert box is not None and box["width"] > 30, "every button is wide enough to read"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-likert-words.png")


def image_ids(page) -> list[str]:
    return page.evaluate(
        f"{VIEWS}.map(s => cornerstone.getEnabledElement(document.querySelector(s)).image.imageId)"
    )


def score_and_save(page, study, digits: str):
    """Answer the item on screen by keyboard and save it; the item as stored."""
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    for digit in digits:
        page.keyboard.press(digit)
    page.keyboard.press("Enter")
    wait_ready(page, ready)
    return study.readers.get().assignments.get(public_id=ready)


def test_the_viewer_tools_work_by_keyboard_linked_and_are_recorded(
    page, live_server, study, screenshot_dir
):
    """Zoom, pan, window and 1:1 by keys on both views at once; flicker puts the reference in
    the reconstruction's place at the same view and back; the save records each tool's use."""
    open_reader(page, live_server, study)
    start = views_agree(page)
    page.keyboard.press("+")
    zoomed = views_agree(page)
    assert zoomed[0][0] == pytest.approx(start[0][0] * 1.25)
    page.keyboard.press("]")
    assert views_agree(page)[0][3] == pytest.approx(start[0][3] * 1.15)
    page.keyboard.press("Shift+ArrowRight")
    assert views_agree(page)[0][1] > start[0][1], "panned"
    page.keyboard.press("o")
    assert views_agree(page)[0][0] == 1.0, "one image pixel per screen pixel"
    page.keyboard.press("o")
    assert views_agree(page)[0][0] == pytest.approx(start[0][0]), "and back to the whole image"
    assert "reconstruction" in image_ids(page)[1]

    page.keyboard.press("f")
    page.wait_for_selector("#reader[data-flicker=on]", state="attached")
    page.wait_for_function(
        f"() => {VIEWS}.every(s => cornerstone.getEnabledElement(document.querySelector(s))"
        ".image.imageId.includes('/reference'))"
    )
    assert page.inner_text("#viewport-slot-1 >> xpath=.. >> .slot-name").startswith("Reference")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-flicker.png")
    before_flicker = views_agree(page)
    page.keyboard.press("f")
    page.wait_for_function(
        f"() => cornerstone.getEnabledElement(document.querySelector({VIEWS}[1]))"
        ".image.imageId.includes('/reconstruction')"
    )
    assert views_agree(page) == before_flicker, "the same zoom, pan and window throughout"
    assert page.inner_text("#viewport-slot-1 >> xpath=.. >> .slot-name") == "Reconstruction"

    item = score_and_save(page, study, "3333")
    assert item.view_actions == {"zoom": 1, "window": 1, "pan": 1, "one_to_one": 2, "flicker": 2}


def test_one_view_and_the_magnifier_by_keyboard(page, live_server, study, screenshot_dir):
    """M shows the reconstruction alone, as large as the screen allows, the questions still
    beside it; G puts the magnifier on the left button and back; both are recorded."""
    open_reader(page, live_server, study)
    before = page.locator("#viewport-slot-1").bounding_box()
    page.keyboard.press("m")
    page.wait_for_selector("#reader.solo", state="attached")
    assert page.locator("#viewport-reference").is_hidden()
    page.wait_for_function(
        f"() => document.querySelector('#viewport-slot-1').getBoundingClientRect().width > {before['width'] * 1.5}"
    )
    assert page.locator("#questions [role=radiogroup]").first.is_visible()
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-one-view.png")
    page.keyboard.press("m")
    page.wait_for_function("() => !document.getElementById('reader').classList.contains('solo')")
    assert page.locator("#viewport-reference").is_visible()
    page.keyboard.press("g")
    page.wait_for_selector("#reader[data-left-button=magnify]", state="attached")
    mode = "() => cornerstoneTools.getToolForElement(document.querySelector('#viewport-slot-1'), 'Magnify').mode"
    assert page.evaluate(mode) == "active"
    page.keyboard.press("g")
    assert page.evaluate(mode) != "active"
    assert score_and_save(page, study, "4444").view_actions == {"solo": 2, "magnifier": 2}


def test_window_presets_switch_with_w_and_r_returns(page, live_server, study, screenshot_dir):
    """The researcher's named windows (percent of the case's reference maximum, which the
    served images hold as 4095): W next, Shift-W back, on both views; R the image's own."""
    study.window_presets = [
        {"name": "Soft", "level": 30.0, "width": 60.0},
        {"name": "Bright", "level": 70.0, "width": 40.0},
    ]
    study.save(update_fields=["window_presets"])
    open_reader(page, live_server, study)
    own = views_agree(page)[0][3]
    assert "Soft, Bright" in page.inner_text(".shortcuts")
    windows = f"{VIEWS}.map(s => cornerstone.getViewport(document.querySelector(s)).voi)"
    page.keyboard.press("w")
    page.wait_for_selector("#reader[data-preset=Soft]", state="attached")
    views_agree(page)
    voi = page.evaluate(windows)
    assert voi[0] == voi[1] == {"windowCenter": 0.3 * 4095, "windowWidth": 0.6 * 4095}
    assert "Window preset: Soft" in page.inner_text("#view-state")
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-window-preset.png")
    page.keyboard.press("w")
    page.wait_for_selector("#reader[data-preset=Bright]", state="attached")
    page.keyboard.press("Shift+W")
    page.wait_for_selector("#reader[data-preset=Soft]", state="attached")
    page.keyboard.press("r")
    assert views_agree(page)[0][3] == own and "View reset" in page.inner_text("#view-state")


VIEWS = "['#viewport-reference', '#viewport-slot-1']"
VIEWPORTS = (
    f"{VIEWS}.map(s => {{ const v = cornerstone.getViewport(document.querySelector(s));"
    " return [v.scale, v.translation.x, v.translation.y, v.voi.windowWidth]; })"
)


def views_agree(page, timeout=3000) -> list:
    """Wait until both views show the same zoom, pan and window; their viewports then."""
    page.wait_for_function(
        f"() => (v => v[0].every((x, i) => Math.abs(x - v[1][i]) < 1e-9))({VIEWPORTS})",
        timeout=timeout,
    )
    return page.evaluate(VIEWPORTS)


def wheel_zoom_is_linked(page, notches: int = 4, over: str = "#viewport-slot-1") -> None:
    """Wheel notches in quick succession over one view, as a reader zooms: the other view
    ends where the first does, and no notch is lost."""
    before = page.evaluate(VIEWPORTS)
    page.hover(over, position={"x": 90, "y": 120})
    for _ in range(notches):
        page.mouse.wheel(0, -100)
    page.wait_for_function(f"() => (v => v[1][0] !== {before[1][0]})({VIEWPORTS})")
    time.sleep(0.3)  # let every notch land
    after = views_agree(page)
    assert after[0][0] > before[0][0], "both views zoomed in"


def test_zoom_on_one_viewport_zooms_the_other(page, live_server, study):
    """Fifteen rounds of quick zooming on either view, from a fresh view each time: the two
    never disagree (one round in seven did, with cornerstone-tools' synchronizers)."""
    open_reader(page, live_server, study)
    for round_ in range(15):
        page.click("#reset")
        views_agree(page)
        over = "#viewport-slot-1" if round_ % 2 else "#viewport-reference"
        wheel_zoom_is_linked(page, notches=2 + round_ % 5, over=over)


def test_zoom_stays_linked_when_one_image_arrives_late(page, live_server, study, screenshot_dir):
    """The reference may be drawn before the reconstruction has arrived (a slow network):
    the link must survive that first draw. (It did not: cornerstone-tools' handler threw on
    the view without an image, which switched its synchronizer off for good.)"""
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def late(route):
        time.sleep(0.5)
        route.continue_()

    page.route("**/reconstruction.dcm*", late)
    open_reader(page, live_server, study)
    wheel_zoom_is_linked(page)
    assert errors == []
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-zoom-linked-after-late-image.png")


def test_volumes_scroll_slice_by_slice_in_both_views(page, live_server):
    import numpy as np

    from readerstudy.models import array_file

    study = StudyFactory(title="Volume reading")
    volume = np.stack([np.full((32, 32), 10.0 * (i + 1)) + np.eye(32) for i in range(3)])
    ReconstructionFactory(
        case__study=study,
        case__reference=array_file(volume),
        case__shape=[3, 32, 32],
        image=array_file(volume * 0.9),
    )
    study.assign_reader(UserFactory(username="radiologist"))
    open_reader(page, live_server, study)
    assert page.inner_text("#slice") == "Slice 2 of 3", "volumes open on the middle slice"
    frames = "['#viewport-reference', '#viewport-slot-1'].map(s => cornerstone.getImage(document.querySelector(s)).imageId.split('frame=')[1])"
    assert page.evaluate(frames) == ["1", "1"]
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => {frames}.every(f => f === '2')")
    assert page.inner_text("#slice") == "Slice 3 of 3"
    page.keyboard.press("ArrowRight")  # already the last slice: stays
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => {frames}.every(f => f === '0')")


def draft_keys(page) -> list[str]:
    return page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('readerstudy-draft:'))"
    )


def test_unsaved_answers_are_the_readers_alone_on_a_shared_browser(page, live_server, study):
    """A reader's unsaved answers stay in the browser for them (reload) and are gone when they
    sign out; a page opened by another account removes any left behind (an expired session)."""
    open_reader(page, live_server, study)
    page.keyboard.press("4")
    page.keyboard.press("2")
    assert len(draft_keys(page)) == 1, "an unsaved answer is kept"
    page.reload()
    page.wait_for_selector("#reader[data-ready]")
    assert len(draft_keys(page)) == 1, "and survives a reload"
    page.click("form.logout button")
    page.wait_for_url("**/accounts/login/**")
    assert draft_keys(page) == [], "signing out removes it"
    assert not Score.objects.exists(), "it was never saved"

    # Left behind by someone whose session expired: the next account's first page removes it.
    page.evaluate("localStorage.setItem('readerstudy-draft:999:abc', '{\"overall\": 5}')")
    colleague = UserFactory(username="colleague")
    study.assign_reader(colleague)
    page.fill("#id_username", "colleague")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert draft_keys(page) == []


# Two wheel notches over the reconstruction, the second between the frame that draws the
# first and the frame that draws the reference following it; the reconstruction's scale at
# each of its draws, and both views' scales at the end.
NOTCH_BETWEEN_FRAMES = """() => new Promise(resolve => {
  const recon = document.querySelector('#viewport-slot-1');
  const ref = document.querySelector('#viewport-reference');
  const box = recon.getBoundingClientRect();
  const notch = () => recon.dispatchEvent(new WheelEvent('wheel', {
    deltaY: -100, clientX: box.left + 90, clientY: box.top + 120, bubbles: true, cancelable: true}));
  const drawn = [cornerstone.getViewport(recon).scale];
  recon.addEventListener('cornerstoneimagerendered', function onDraw() {
    drawn.push(cornerstone.getViewport(recon).scale);
    if (drawn.length === 2) { setTimeout(notch, 0); }
  });
  notch();
  setTimeout(() => resolve({drawn, reference: cornerstone.getViewport(ref).scale,
                            reconstruction: cornerstone.getViewport(recon).scale}), 1500);
})"""


def test_a_notch_between_two_frames_is_not_lost(page, live_server, study):
    """The cause of the views disagreeing: cornerstone-tools' synchronizers copy both ways on
    every draw, so the reference's draw one frame late wrote the first notch's zoom back into
    the reconstruction, undoing the second (its scale went 13.75, 12.31, 12.31 every time).
    The reader's view now leads and is never written to."""
    open_reader(page, live_server, study)
    result = page.evaluate(NOTCH_BETWEEN_FRAMES)
    first, after_one, after_two = result["drawn"][:3]
    assert first != after_one != after_two, f"each notch changed the zoom: {result['drawn']}"
    assert abs(after_two - after_one) > 1e-6 and (after_two - after_one) * (after_one - first) > 0
    assert result["reference"] == result["reconstruction"] == after_two


def test_a_nifti_reads_the_same_way_up_as_the_same_volume_as_a_dicom_series(
    page, live_server, tmp_path, screenshot_dir
):
    """A study whose reference is a scanner's axial DICOM series and whose reconstruction is
    its NIfTI conversion (dcm2niix's affine): imported, both views show the same image the
    same way up, pixel for pixel (Colin27's axial brain lay on its side)."""
    from django.core.management import call_command

    from fixtures.dicom_series import write_nifti_of_series, write_series
    from fixtures.images import load_slices
    from readerstudy.models import Study

    brain = load_slices()["colin27-axial"]
    brain = np.rint(brain / brain.max() * 4000).astype(np.uint16)
    shown = np.stack([np.roll(brain, k, axis=0) for k in (-2, 0, 2)])
    write_series(tmp_path / "brain" / "series", shown)
    write_nifti_of_series(tmp_path / "brain" / "volume.nii.gz", shown)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "case,reference,reconstruction,method,acceleration\n"
        "brain,brain/series,brain/volume.nii.gz,nifti-conversion,1\n"
    )
    call_command("import_study", str(manifest), "--study", "orient", "--title", "Orientation")
    study = Study.objects.get(slug="orient")
    study.status = Study.Status.OPEN
    study.save(update_fields=["status"])
    study.assign_reader(UserFactory(username="radiologist"))
    open_reader(page, live_server, study)
    pixels = (
        "sel => Array.from(document.querySelector(sel + ' canvas').getContext('2d')"
        ".getImageData(0, 0, 300, 300).data)"
    )
    reference = page.evaluate(pixels, "#viewport-reference")
    reconstruction = page.evaluate(pixels, "#viewport-slot-1")
    assert drawn_fraction(page, "#viewport-reference") > 0.2
    assert reference == reconstruction, "the same image, the same way up"
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-nifti-beside-dicom.png")
