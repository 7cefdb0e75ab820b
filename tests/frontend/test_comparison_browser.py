"""Ranking and forced choice in the reading room (issue 20), in Debian's Chromium: scored by
keyboard and by dragging, stored in the reader's own layout, and blinded over a whole session."""

from collections import Counter

import pytest

from readerstudy.models import Assignment, Question, Reconstruction, Score
from tests.frontend.test_blinding_browser import record_responses
from tests.frontend.test_reader_browser import drawn_fraction, open_reader, wait_ready
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

METHODS = ["cs-secret-method", "unet-secret-method", "zf-secret-method"]


def comparison_study(*, likert=False, **case_names):
    """One case of three reconstructions, a ranking of all three and a forced choice between
    every pair ("no difference" allowed); the Likert questions only when asked for."""
    study = StudyFactory(title="Comparisons")
    if not likert:
        study.questions.all().delete()
    case = CaseFactory(study=study, name=case_names.get("name", "case-1"))
    for k, method in enumerate(METHODS):
        ReconstructionFactory(
            case=case,
            method=method,
            acceleration=[2.0, 7.8125, 12.0][k],
            source_name=f"secret_file_name_{k}.npy",
        )
    Question.objects.create(
        study=study, key="rank", label="Rank by overall quality", kind="rank", position=10
    )
    Question.objects.create(
        study=study,
        key="better",
        label="Which is better?",
        kind="choice",
        allow_ties=True,
        position=11,
    )
    study.assign_reader(UserFactory(username="radiologist"))
    return study


def item_kind(page) -> str:
    return page.evaluate(
        "document.getElementById('rank-list') ? 'rank' : "
        "document.querySelector('button[data-ranks]') ? 'choice' : 'likert'"
    )


def test_rank_and_choice_by_keyboard_store_the_ranks_of_the_readers_layout(
    page, live_server, screenshot_dir
):
    study = comparison_study()
    open_reader(page, live_server, study)
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    seen = []
    for _ in range(4):  # one ranking, three pairs
        kind = item_kind(page)
        seen.append(kind)
        if kind == "rank":
            assert page.locator("figure.slot:not([hidden])").count() == 3
            for selector in ("#viewport-reference", "#viewport-slot-1", "#viewport-slot-3"):
                assert drawn_fraction(page, selector) > 0.2, selector
            page.keyboard.press("Enter")  # nothing ranked yet: explained, nothing saved
            assert "Rank every image first" in page.text_content("#message")
            assert not Score.objects.filter(question__key="rank").exists()
            page.keyboard.press("2")  # A: rank 2, focus moves to B
            page.keyboard.press("1")  # B: rank 1; C gets the rank left, 3
            assert page.text_content("#rank-list") == "B · rank 1A · rank 2C · rank 3"
            if screenshot_dir:
                page.screenshot(path=screenshot_dir / "reader-ranking.png")
        else:
            assert kind == "choice" and page.locator("figure.slot:not([hidden])").count() == 2
            first_choice = seen.count("choice") == 1
            page.keyboard.press("0" if first_choice else "2")  # no difference, then B better
            label = page.text_content("figure.slot[data-slot='2'] .slot-answer")
            assert label == ("· no difference" if first_choice else "· better")
            if screenshot_dir and first_choice:
                page.screenshot(path=screenshot_dir / "reader-forced-choice.png")
        page.keyboard.press("Enter")
        ready = wait_ready(page, ready)
    assert ready == "done" and sorted(seen) == ["choice"] * 3 + ["rank"]
    rank_item = Assignment.objects.get(comparison__question__key="rank")
    ranking = Score.objects.get(assignment=rank_item)
    assert ranking.value is None and ranking.ranks == [2, 1, 3]
    assert len(rank_item.layout) == 3, "the ranks follow this reader's left-to-right layout"
    choices = Score.objects.filter(question__key="better")
    assert choices.count() == 3
    assert sorted(score.ranks for score in choices) == [[1, 1], [2, 1], [2, 1]]


def test_a_ranking_can_be_dragged_into_order_and_resumes_after_a_reload(page, live_server):
    study = comparison_study()
    Question.objects.filter(key="better").delete()
    study.extend_orders()
    open_reader(page, live_server, study)
    page.keyboard.press("3")  # A: rank 3 (kept as a draft in this browser)
    page.reload()
    page.wait_for_selector("#reader[data-ready]")
    assert page.text_content("#rank-list").startswith("A · rank 3"), "the draft came back"
    # Drag C to the top, then B above A: the list top to bottom is C, B, A.
    page.drag_and_drop("#rank-list li[data-slot='2']", "#rank-list li:first-child")
    page.drag_and_drop("#rank-list li[data-slot='1']", "#rank-list li[data-slot='0']")
    assert page.text_content("#rank-list") == "C · rank 1B · rank 2A · rank 3"
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    page.keyboard.press("Enter")
    assert wait_ready(page, ready) == "done"
    assert Score.objects.get().ranks == [3, 2, 1]


def test_a_whole_session_of_every_kind_reveals_nothing(page, live_server):
    """Likert, ranking and forced choice in one session, with a training case and repeat
    reads: nothing received names a method, an acceleration, a file, a case or a
    reconstruction's own id, and each screen's left-to-right order is this reader's own
    draw."""
    study = comparison_study(likert=True, name="case-secret-name")
    practice = CaseFactory(
        study=study, name="practice-secret-name", training=True, training_note="Mind the edges"
    )
    for k, method in enumerate(METHODS[:2]):
        ReconstructionFactory(
            case=practice,
            method=method,
            acceleration=7.8125,
            source_name=f"secret_file_name_t{k}.npy",
            reference_answers={"overall": 4, "rank": k + 1, "better": k + 1},
        )
    study.repeat_share = 0.5
    study.save()
    study.extend_orders()
    public_ids = list(
        Reconstruction.objects.filter(case__study=study).values_list("public_id", flat=True)
    )
    secrets = [
        *METHODS,
        "7.8125",
        "case-secret-name",
        "practice-secret-name",
        "secret_file_name",
        "npy",
        *public_ids,
    ]
    received = record_responses(page)
    open_reader(page, live_server, study)
    ready = page.evaluate("document.getElementById('reader').dataset.ready")
    kinds, reviewed = [], 0
    while ready != "done":
        kind = item_kind(page)
        kinds.append(kind)
        shown = page.locator("figure.slot:not([hidden])").count()
        keys = {"likert": "4444", "rank": "12"[: shown - 1], "choice": "1"}[kind]
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "prev => { const r = document.getElementById('reader');"
            " return r.dataset.reviewing || (r.dataset.ready && r.dataset.ready !== prev); }",
            arg=ready,
        )
        if page.evaluate("document.getElementById('reader').dataset.reviewing"):
            reviewed += 1
            assert "Mind the edges" in page.inner_text("#feedback")
            page.keyboard.press("Enter")
        ready = wait_ready(page, ready)
    # 7 study items, 4 of them read twice (half, rounded), 4 training items read first.
    assert reviewed == 4 and kinds[:4].count("likert") == 2 and len(kinds) == 15
    assert sorted(kinds[:4]) == ["choice", "likert", "likert", "rank"]
    study_kinds = Counter(kinds[4:])
    assert study_kinds["likert"] >= 3 and study_kinds["rank"] >= 1 and study_kinds["choice"] >= 3
    repeats = Assignment.objects.filter(repeat_of__isnull=False)
    assert repeats.count() == 4 and all(item.scores.exists() for item in repeats)
    assert any("/slot-3.dcm" in url for url, _, _ in received), "Sanity: the ranking's images came"
    for url, headers, body in received:
        content = str(headers).encode() + body
        for secret in secrets:
            assert secret.encode() not in content and secret not in url, (
                f"{secret!r} leaked in {url}"
            )
