"""Training items in the reading room (issue 20), in Debian's Chromium: marked as training,
the researcher's reference answer and note shown after the reader's own, Enter going on."""

import pytest

from readerstudy.models import Question, Score
from tests.frontend.test_reader_browser import open_reader, wait_ready
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_training_item_shows_the_reference_answer_after_mine(page, live_server, screenshot_dir):
    study = StudyFactory(title="Training first")
    study.questions.exclude(key="overall").delete()
    practice = CaseFactory(study=study, training=True, training_note="Mind the aliasing ghost")
    ReconstructionFactory(case=practice, method="secret", reference_answers={"overall": 4})
    ReconstructionFactory(case__study=study, method="study-method")
    study.assign_reader(UserFactory(username="radiologist"))
    open_reader(page, live_server, study)
    assert page.text_content("#position").startswith("Training · Item 1 of 2")
    assert page.locator("#feedback").is_hidden()
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#reader[data-reviewing]")
    feedback = page.inner_text("#feedback")
    assert "reference 4" in feedback and "yours 2" in feedback
    assert "Mind the aliasing ghost" in feedback and "secret" not in feedback
    assert page.text_content("#save").startswith("Continue")
    assert Score.objects.get().value == 2, "saved before the reference is shown"
    page.keyboard.press("5")  # ignored: the answer is saved, the reference is on screen
    assert Score.objects.get().value == 2
    if screenshot_dir:
        page.screenshot(path=screenshot_dir / "reader-training.png")
    page.keyboard.press("Enter")
    ready = wait_ready(page, ready)
    assert page.text_content("#position") == "Item 2 of 2"
    assert page.locator("#feedback").is_hidden()
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_selector("#reader[data-ready='done']")
    assert not page.locator("#reader[data-reviewing]").count(), "a study item reveals nothing"
    assert Score.objects.count() == 2
    assert Question.objects.filter(study=study).count() == 1
