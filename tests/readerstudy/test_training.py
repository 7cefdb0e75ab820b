"""Training cases (issue 20): imported from the manifest's training, note and answer columns,
read first by every reader, their reference answers revealed after each answer, never
analysed, and exported on their own; through the real importer, models, API, exports and
archive."""

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from readerstudy.archive import write_archive
from readerstudy.dashboard import build_payload
from readerstudy.dashboard_data import data_version, ranking_frame, study_frames
from readerstudy.export import ranking_rows, score_rows, training_rows
from readerstudy.importer import ManifestError, import_manifest
from readerstudy.models import Question, Reconstruction
from readerstudy.restore import People, restore_archive
from tests.readerstudy.factories import UserFactory, smooth_image
from tests.readerstudy.test_import_study import write_manifest

pytestmark = pytest.mark.django_db

HEADER = (
    "case",
    "reference",
    "reconstruction",
    "method",
    "acceleration",
    "training",
    "note",
    "answer",
)


@pytest.fixture
def folder(tmp_path):
    for case in range(4):
        np.save(tmp_path / f"ref-{case}.npy", smooth_image(case))
        for k in range(3):
            np.save(tmp_path / f"rec-{case}-{k}.npy", smooth_image(case * 3 + k + 10) * 0.9)
    return tmp_path


def rows(training_cases=(0,)):
    out = []
    for case in range(4):
        training = case in training_cases
        for k in range(3):
            out.append(
                (
                    f"case-{case}",
                    f"ref-{case}.npy",
                    f"rec-{case}-{k}.npy",
                    f"m{k}",
                    "4",
                    "yes" if training else "",
                    "Look at the cartilage edge" if training else "",
                    f"overall={5 - k}; rank={k + 1}" if training else "",
                )
            )
    return out


def training_study(folder, rank=True):
    study = import_manifest(write_manifest(folder, rows(), HEADER), slug="t", title="Training")
    if rank:
        Question.objects.create(study=study, key="rank", label="Rank", kind="rank", position=9)
    study.status = study.Status.OPEN
    study.save()
    return study


def test_the_manifest_marks_training_cases_with_their_note_and_answers(folder):
    study = training_study(folder)
    training = study.cases.get(name="case-0")
    assert training.training and training.training_note == "Look at the cartilage edge"
    assert not study.cases.get(name="case-1").training
    answers = dict(
        Reconstruction.objects.filter(case=training).values_list("method", "reference_answers")
    )
    assert answers == {
        "m0": {"overall": 5, "rank": 1},
        "m1": {"overall": 4, "rank": 2},
        "m2": {"overall": 3, "rank": 3},
    }


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r[0][:5] + ("perhaps",) + r[0][6:], "line 2: training must be yes or no"),
        (lambda r: r[1][:5] + ("",) + r[1][6:], "line 3: case 'case-0' has another training"),
        (lambda r: r[0][:7] + ("overall=four",), "line 2: answer 'overall=four'"),
        (lambda r: r[0][:7] + ("overall=4; overall=3",), "line 2: answer names 'overall' twice"),
    ],
)
def test_a_bad_training_column_is_refused_with_its_line(folder, change, says):
    bad = rows()
    bad[0 if "line 2" in says else 1] = change(bad)
    with pytest.raises(ManifestError) as refused:
        import_manifest(write_manifest(folder, bad, HEADER), slug="t", title="T")
    assert says in str(refused.value)


def test_an_answer_outside_a_training_case_is_refused(folder):
    bad = rows()
    bad[3] = bad[3][:7] + ("overall=3",)
    with pytest.raises(ManifestError) as refused:
        import_manifest(write_manifest(folder, bad, HEADER), slug="t", title="T")
    assert "line 5: answer is for training cases only" in str(refused.value)


def test_training_items_come_first_in_a_random_order_and_are_never_repeated(folder):
    study = training_study(folder)
    study.repeat_share = 0.5
    study.save()
    orders = set()
    for _ in range(6):
        reader = study.assign_reader(UserFactory())
        items = list(reader.assignments.order_by("position"))
        training = [item.case.training for item in items]
        # 3 reconstructions and 1 ranking of the training case open every order.
        assert training[:4] == [True] * 4 and not any(training[4:])
        assert not any(item.repeat_of_id and item.case.training for item in items)
        assert sum(1 for item in items if item.repeat_of_id) == round(0.5 * (len(items) - 4) / 1.5)
        orders.add(tuple(item.reconstruction_id or -item.comparison_id for item in items[:4]))
    assert len(orders) > 1, "each reader's own order of the training items"


def test_the_reference_is_revealed_only_after_an_answer_in_the_readers_layout(folder):
    study = training_study(folder)
    user = UserFactory()
    reader = study.assign_reader(user)
    client = APIClient()
    client.force_authenticate(user)
    ranking = reader.assignments.get(comparison__case__training=True)
    item = client.get(reverse("api:item", args=[ranking.public_id])).json()
    assert item["training"] is True and item["reference"] is None
    saved = client.put(
        reverse("api:item-scores", args=[ranking.public_id]),
        {"scores": {"rank": [1, 2, 3]}},
        format="json",
    ).json()
    methods = dict(Reconstruction.objects.values_list("pk", "method"))
    expected = [int(methods[pk][1]) + 1 for pk in ranking.layout]  # m0 is rank 1, m1 rank 2
    assert saved["reference"] == {
        "answers": {"rank": expected},
        "note": "Look at the cartilage edge",
    }
    again = client.get(reverse("api:item", args=[ranking.public_id])).json()
    assert again["reference"] == saved["reference"]
    likert = reader.assignments.filter(reconstruction__case__training=True).first()
    answers = {q.key: 3 for q in study.questions.filter(kind="likert")}
    saved = client.put(
        reverse("api:item-scores", args=[likert.public_id]), {"scores": answers}, format="json"
    ).json()
    k = int(likert.reconstruction.method[1])
    assert saved["reference"]["answers"] == {"overall": 5 - k}, "only the questions answered"
    study_item = reader.assignments.filter(reconstruction__case__training=False).first()
    saved = client.put(
        reverse("api:item-scores", args=[study_item.public_id]),
        {"scores": answers},
        format="json",
    ).json()
    assert saved["reference"] is None
    assert "method" not in str(client.get(reverse("api:item", args=[ranking.public_id])).json())


def answer_everything(reader):
    for item in reader.assignments.order_by("position"):
        if item.comparison_id:
            item.save_scores({"rank": list(range(1, len(item.layout) + 1))})
        else:
            item.save_scores({q.key: 2 for q in reader.study.questions.filter(kind="likert")})


def test_training_answers_are_not_analysed_and_export_beside_the_reference(folder):
    study = training_study(folder)
    reader = study.assign_reader(UserFactory(username="ann"))
    answer_everything(reader)
    training = set(
        Reconstruction.objects.filter(case__training=True).values_list("public_id", flat=True)
    )
    scores, _, recons = study_frames(study)
    assert not set(scores["reconstruction"]) & training
    assert not set(recons["reconstruction"]) & training and len(recons) == 9
    assert not set(ranking_frame(study)["reconstruction"]) & training
    assert not {row["reconstruction"] for row in score_rows(study)} & training
    assert not {row["reconstruction"] for row in ranking_rows(study)} & training
    exported = list(training_rows(study))
    likert = study.questions.filter(kind="likert").count()
    assert len(exported) == 3 * likert + 3
    overall = [r for r in exported if r["question"] == "overall"]
    assert sorted((r["method"], r["answer"], r["reference"]) for r in overall) == [
        ("m0", 2, 5),
        ("m1", 2, 4),
        ("m2", 2, 3),
    ]
    payload = build_payload(study, data_version(study))
    assert payload["progress"]["reconstructions"] == 9


def test_the_archive_keeps_training_cases_their_answers_and_notes(folder, tmp_path):
    study = training_study(folder)
    reader = study.assign_reader(UserFactory(username="ann"))
    answer_everything(reader)
    expected = sorted(tuple(r.values())[1:] for r in training_rows(study))
    archive = tmp_path / "a.zip"
    archive.write_bytes(write_archive(study).read())
    study.delete()
    restored, _ = restore_archive(archive, slug="again", people=People({"ann": "ann"}))
    case = restored.cases.get(name="case-0")
    assert case.training and case.training_note == "Look at the cartilage edge"
    assert sorted(tuple(r.values())[1:] for r in training_rows(restored)) == expected
