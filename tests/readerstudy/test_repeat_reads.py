"""Repeat reads (issue 20): a share of each reader's items shown again later under a new id,
kept out of the main analysis and measured for intra-reader agreement, through the real
models, API, setup page, exports, archive, dashboard and `manage.py analyze`."""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from sklearn.metrics import cohen_kappa_score

from readerstudy.archive import write_archive
from readerstudy.dashboard import build_payload
from readerstudy.dashboard_data import data_version, study_frames
from readerstudy.export import REPEAT_COLUMNS, repeat_rows, score_rows
from readerstudy.models import Assignment, Question, Score
from readerstudy.models.ordering import REPEAT_MIN_GAP
from readerstudy.restore import People, restore_archive
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
)
from tests.readerstudy.test_analyze_command import run

pytestmark = pytest.mark.django_db


def study_of(cases=10, per_case=4, share=0.1, rank=False):
    study = StudyFactory(repeat_share=share)
    for number in range(cases):
        case = CaseFactory(study=study, name=f"case-{number}")
        for k in range(per_case):
            ReconstructionFactory(case=case, method=f"m{k}", acceleration=2.0 + k)
    if rank:
        Question.objects.create(study=study, key="rank", label="Rank", kind="rank", position=9)
    return study


def answer_all(reader, value_of=lambda item, question: 3):
    """Answer every item of `reader` in their order, as the reading room would."""
    for item in reader.assignments.order_by("position"):
        if item.comparison_id:
            question = item.comparison.question
            ranks = list(range(1, len(item.layout) + 1))
            item.save_scores({question.key: value_of(item, question) or ranks})
        else:
            item.save_scores(
                {
                    q.key: value_of(item, q)
                    for q in reader.study.questions.filter(kind=Question.Kind.LIKERT)
                }
            )


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_a_share_of_items_comes_back_later_under_a_new_id(share):
    """Over 15 readers: the share of 100 first reads comes back, each repeat more than
    REPEAT_MIN_GAP items after its first read."""
    study = study_of(cases=25, per_case=4, share=share)  # 100 reconstructions
    for _ in range(15):
        reader = study.assign_reader(UserFactory())
        items = list(reader.assignments.order_by("position"))
        repeats = [item for item in items if item.repeat_of_id]
        assert len(repeats) == 100 * share and len(items) == 100 + len(repeats)
        assert [item.position for item in items] == list(range(1, len(items) + 1))
        for repeat in repeats:
            first = repeat.repeat_of
            assert repeat.reconstruction_id == first.reconstruction_id
            assert repeat.public_id != first.public_id
            assert first.repeat_of_id is None
            assert repeat.position - first.position > REPEAT_MIN_GAP


def test_repeats_are_spread_over_the_order_not_appended_as_a_block():
    """Over 40 readers, repeats land in the first half of the order too (a block at the end
    would tell a reader which items are repeats)."""
    study = study_of(cases=25, per_case=4, share=0.2)
    positions = []
    for _ in range(40):
        reader = study.assign_reader(UserFactory())
        positions += list(
            reader.assignments.filter(repeat_of__isnull=False).values_list("position", flat=True)
        )
    positions = np.array(positions)
    print((positions < 60).mean(), (positions > 100).mean(), (positions > 110).mean())
    assert (positions < 60).mean() > 0.05 and (positions > 100).mean() < 0.5


def test_a_comparisons_repeat_has_its_own_layout_and_the_item_json_does_not_tell():
    study = study_of(cases=30, per_case=3, share=0.5, rank=True)
    Question.objects.filter(study=study, kind=Question.Kind.LIKERT).delete()
    user = UserFactory()
    reader = study.assign_reader(user)
    repeats = list(reader.assignments.filter(repeat_of__isnull=False))
    assert len(repeats) == 15 and all(r.comparison_id for r in repeats)
    assert all(sorted(r.layout) == sorted(r.repeat_of.layout) for r in repeats)
    assert any(r.layout != r.repeat_of.layout for r in repeats), "layouts drawn anew"
    client = APIClient()
    client.force_authenticate(user)
    first = client.get(reverse("api:item", args=[repeats[0].repeat_of.public_id])).json()
    again = client.get(reverse("api:item", args=[repeats[0].public_id])).json()
    assert set(first) == set(again) and "repeat" not in json.dumps(again)
    assert again["public_id"] == repeats[0].public_id and again["kind"] == "rank"


def test_only_first_reads_are_analysed_and_repeats_export_beside_them():
    study = study_of(cases=10, per_case=2, share=0.5)
    readers = [study.assign_reader(UserFactory()) for _ in range(2)]
    for reader in readers:
        # First reads 3, repeats 4: any repeat value in the analysis would show.
        answer_all(reader, lambda item, q: 4 if item.repeat_of_id else 3)
    scores, _, _ = study_frames(study)
    assert set(scores["score"]) == {3}
    assert len(scores) == 2 * 20 * study.questions.count()
    assert {row["score"] for row in score_rows(study)} == {3}
    rows = list(repeat_rows(study))
    assert len(rows) == 2 * 10 * study.questions.count()
    assert {(row["first"], row["repeat"]) for row in rows} == {(3, 4)}
    repeat = Assignment.objects.filter(repeat_of__isnull=False).order_by("pk").first()
    row = next(r for r in rows if r["reconstruction"] == repeat.reconstruction.public_id)
    assert row["items_between"] == repeat.position - repeat.repeat_of.position - 1


def test_intra_reader_kappa_on_the_dashboard_equals_scikit_learns():
    study = study_of(cases=20, per_case=3, share=0.5)
    rng = np.random.default_rng(2)
    readers = [study.assign_reader(UserFactory(username=f"reader{k}")) for k in range(3)]
    for reader in readers:
        answer_all(reader, lambda item, q: int(rng.integers(1, 6)))
    payload = build_payload(study, data_version(study))
    repeats = pd.DataFrame(list(repeat_rows(study)), columns=REPEAT_COLUMNS)
    for question in study.questions.all():
        block = payload["repeats"][question.key]
        assert block["statistic"] == "quadratic_kappa"
        for name, result in block["per_reader"].items():
            mine = repeats[(repeats["reader"] == name) & (repeats["question"] == question.key)]
            expected = cohen_kappa_score(
                mine["first"], mine["repeat"], weights="quadratic", labels=[1, 2, 3, 4, 5]
            )
            assert result["value"] == pytest.approx(expected, abs=1e-12)
            assert result["n"] == 30
        assert set(block["inter_reader"]["per_reader"]) == {"reader0", "reader1", "reader2"}
    assert set(payload["drift"][question.key]) == {"order", "session"}


def test_the_repeat_share_is_set_on_the_setup_page_and_changes_only_unread_items(client):
    study = study_of(cases=10, per_case=4, share=0.0)
    researcher = UserFactory()
    study.researchers.add(researcher)
    reader = study.assign_reader(UserFactory())
    first = list(reader.assignments.order_by("position")[:5])
    for item in first:
        item.save_scores({q.key: 3 for q in study.questions.all()})
    client.force_login(researcher)
    setup = reverse("readerstudy:setup", args=[study.slug])
    page = client.get(setup).content.decode()
    assert "Repeat reads" in page
    form = {
        "study-title": study.title,
        "study-instructions": "",
        "study-end_message": study.end_message,
        "study-presentation": study.presentation,
        "study-repeat_percent": "20",
    }
    assert client.post(setup, form).status_code == 302
    study.refresh_from_db()
    assert study.repeat_share == 0.2
    repeats = reader.assignments.filter(repeat_of__isnull=False)
    assert repeats.count() == 8
    assert all(r.position > 5 for r in repeats), "the read part of the order stays"
    assert [i.pk for i in reader.assignments.order_by("position")[:5]] == [i.pk for i in first]
    answered = repeats.order_by("position").first()
    answered.save_scores({q.key: 2 for q in study.questions.all()})
    assert client.post(setup, {**form, "study-repeat_percent": "0"}).status_code == 302
    assert list(reader.assignments.filter(repeat_of__isnull=False)) == [answered]
    too_many = client.post(setup, {**form, "study-repeat_percent": "80"})
    assert too_many.status_code == 200 and "less than or equal to 50" in too_many.content.decode()


def test_the_archive_restores_repeats_with_their_answers(tmp_path):
    study = study_of(cases=6, per_case=3, share=0.5, rank=True)
    reader = study.assign_reader(UserFactory(username="ann"))
    answer_all(reader, lambda item, q: None if q.compares else (4 if item.repeat_of_id else 2))
    expected = sorted(
        (row["question"], row["reconstruction"], row["first"], row["repeat"])
        for row in repeat_rows(study)
    )
    scores = Score.objects.filter(assignment__reader__study=study).count()
    path = tmp_path / "study.zip"
    path.write_bytes(write_archive(study).read())
    study.delete()  # ids are unique on a server: restore as onto a new one
    restored, _ = restore_archive(path, slug="restored", people=People({"ann": "ann"}))
    assert restored.repeat_share == 0.5
    got = sorted(
        (row["question"], row["reconstruction"], row["first"], row["repeat"])
        for row in repeat_rows(restored)
    )
    assert got == expected and len(got) > 0
    assert Score.objects.filter(assignment__reader__study=restored).count() == scores


def test_exported_repeats_give_analyze_the_dashboards_figures(client, tmp_path):
    study = study_of(cases=12, per_case=3, share=0.5, rank=True)
    rng = np.random.default_rng(3)
    researcher = UserFactory()
    study.researchers.add(researcher)
    for k in range(2):
        reader = study.assign_reader(UserFactory(username=f"r{k}"))
        answer_all(
            reader,
            lambda item, q: (
                [int(r) + 1 for r in rng.permutation(len(item.layout))]
                if q.compares
                else int(rng.integers(1, 6))
            ),
        )
    client.force_login(researcher)
    for kind in ("repeats", "scores"):
        response = client.get(reverse("readerstudy:export", args=[study.slug, kind]))
        assert response.status_code == 200
        (tmp_path / f"{kind}.csv").write_bytes(response.content)
    # Any metric will do: the repeat reads do not depend on one, but the Likert analysis
    # beside them needs some.
    scored = pd.read_csv(tmp_path / "scores.csv")["reconstruction"].unique()
    pd.DataFrame(
        {"reconstruction": scored, "metric": "psnr", "value": rng.normal(30, 2, len(scored))}
    ).to_csv(tmp_path / "metrics.csv", index=False)
    header = next(csv.reader(io.StringIO((tmp_path / "repeats.csv").read_text())))
    assert header == REPEAT_COLUMNS
    result = run(
        "--repeats",
        tmp_path / "repeats.csv",
        "--scores",
        tmp_path / "scores.csv",
        "--metrics",
        tmp_path / "metrics.csv",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    from_cli = json.loads(result.stdout)["repeat_reads"]
    dashboard = build_payload(study, data_version(study))["repeats"]
    assert from_cli == json.loads(json.dumps(dashboard))
    assert from_cli["rank"]["statistic"] == "concordance"


def test_a_broken_repeats_file_exits_2_naming_the_problem(tmp_path):
    (tmp_path / "metrics.csv").write_text("reconstruction,metric,value\nx,psnr,30\n")
    (tmp_path / "repeats.csv").write_text(
        "reader,question,kind,first,repeat\nann,overall,likert,3,four\n"
    )
    result = run("--repeats", tmp_path / "repeats.csv", "--metrics", tmp_path / "metrics.csv")
    assert result.returncode == 2 and "line 2: repeat must be a whole number" in result.stderr
    (tmp_path / "repeats.csv").write_text("reader,question,first\nann,overall,3\n")
    result = run("--repeats", tmp_path / "repeats.csv", "--metrics", tmp_path / "metrics.csv")
    assert result.returncode == 2 and "needs the columns kind, repeat" in result.stderr
