"""A study's window presets: the text a researcher writes, read and refused line by line."""

import pytest

from readerstudy.forms import StudySettingsForm
from readerstudy.windows import PresetError, format_window_presets, parse_window_presets
from tests.readerstudy.factories import StudyFactory


def test_presets_are_read_one_per_line_and_written_back_the_same():
    text = "Soft tissue: 30/60\n\n  Bright : 62.5 / 80  \nT2: fluid: 70/40"
    presets = parse_window_presets(text)
    assert presets == [
        {"name": "Soft tissue", "level": 30.0, "width": 60.0},
        {"name": "Bright", "level": 62.5, "width": 80.0},
        {"name": "T2: fluid", "level": 70.0, "width": 40.0},  # the last colon separates
    ]
    assert parse_window_presets(format_window_presets(presets)) == presets
    assert parse_window_presets("") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Soft 30/60", "line 1: write it as 'name: level/width'"),
        (": 30/60", "line 1: write it as"),
        ("Soft: 30", "line 1: level/width must be two numbers"),
        ("Soft: thirty/60", "level/width must be two numbers"),
        ("A: 30/60\nB: 30/0", "line 2: the width must be above 0"),
        ("Soft: nan/60", "the width must be above 0"),
        ("Soft: 500/60", "the level must be within -100 and 200"),
        ("Soft: 30/60\nSoft: 40/60", "line 2: 'Soft' is named twice"),
        ("\n".join(f"P{k}: 30/60" for k in range(10)), "10 presets; at most 9"),
        ("x" * 41 + ": 30/60", "line 1: the name is 41 characters long; at most 40"),
        ("Soft\u202e: 30/60", "line 1: the name contains the control character U\\+202E"),
    ],
)
def test_a_line_that_cannot_be_read_is_refused_with_its_reason(text, reason):
    with pytest.raises(PresetError, match=reason.replace("(", r"\(")):
        parse_window_presets(text)


@pytest.mark.django_db
def test_the_settings_form_keeps_presets_a_post_leaves_out_and_refuses_bad_ones():
    study = StudyFactory(window_presets=[{"name": "Soft", "level": 30.0, "width": 60.0}])
    base = {"title": study.title, "presentation": study.presentation, "end_message": "Done."}
    kept = StudySettingsForm(base, instance=study)
    assert kept.is_valid(), kept.errors
    assert kept.save().window_presets == [{"name": "Soft", "level": 30.0, "width": 60.0}]
    refused = StudySettingsForm({**base, "window_presets_text": "Soft 30/60"}, instance=study)
    assert not refused.is_valid() and "line 1" in refused.errors["window_presets_text"][0]
    cleared = StudySettingsForm({**base, "window_presets_text": ""}, instance=study)
    assert cleared.is_valid() and cleared.save().window_presets == []
