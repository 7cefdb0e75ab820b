"""The audit trail of score edits: who, when, old and new value, for researchers only."""

import csv
import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from readerstudy.export import HISTORY_COLUMNS
from readerstudy.models import Score, ScoreRevision
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory
from tests.readerstudy.test_api import client_for, next_item, put


@pytest.fixture
def study():
    study = StudyFactory(slug="knee")
    ReconstructionFactory(case__study=study, case__name="case-7", method="cs-tv", acceleration=8)
    return study


@pytest.mark.django_db
def test_every_submission_records_who_when_old_and_new(study, client):
    reader = UserFactory(username="dr-lee")
    study.assign_reader(reader)
    api = client_for(reader)
    item = next_item(api, study)["item"]["public_id"]
    before = timezone.now()
    put(api, item, {"scores": {"overall": 2, "snr": 4}, "seconds_spent": 3})
    put(api, item, {"scores": {"overall": 2, "snr": 4}, "seconds_spent": 1})  # resubmitted
    put(api, item, {"scores": {"overall": 5}, "seconds_spent": 2})  # changed their mind

    trail = list(
        ScoreRevision.objects.order_by("pk").values_list(
            "score__question__key", "previous_value", "value", "recorded_by__username"
        )
    )
    assert trail == [
        ("overall", None, 2, "dr-lee"),
        ("snr", None, 4, "dr-lee"),
        ("overall", 2, 5, "dr-lee"),
    ], "a resubmitted identical answer is not an edit"
    assert all(r.recorded_at >= before for r in ScoreRevision.objects.all())

    researcher = UserFactory(username="lead")
    study.researchers.add(researcher)
    client.force_login(researcher)
    page = client.get(reverse("readerstudy:score-history", args=["knee"]))
    assert page.status_code == 200
    rows = page.context["page"].object_list
    assert [(r.previous_value, r.value) for r in rows] == [(2, 5)], "edits only by default"
    html = page.content.decode()
    assert "dr-lee" in html and "case-7" in html and "1 edit" in html
    everything = client.get(reverse("readerstudy:score-history", args=["knee"]), {"all": "1"})
    assert len(everything.context["page"].object_list) == 3

    download = client.get(reverse("readerstudy:export", args=["knee", "score-history"]))
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert list(table[0]) == HISTORY_COLUMNS
    assert [(r["question"], r["previous_value"], r["value"]) for r in table] == [
        ("overall", "2", "5"),
        ("snr", "", "4"),
        ("overall", "", "2"),
    ], "newest first"
    assert {r["reader"] for r in table} == {r["recorded_by"] for r in table} == {"dr-lee"}
    assert table[0]["method"] == "cs-tv"


@pytest.mark.django_db
def test_history_is_404_for_readers_and_other_researchers(study, client):
    reader = UserFactory()
    study.assign_reader(reader)
    stranger = UserFactory()
    StudyFactory(slug="other").researchers.add(stranger)
    for user in (reader, stranger):
        client.force_login(user)
        assert client.get(reverse("readerstudy:score-history", args=["knee"])).status_code == 404
        url = reverse("readerstudy:export", args=["knee", "score-history"])
        assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_staff_see_scores_in_the_admin_but_cannot_change_or_delete_them(study, client):
    reader = UserFactory()
    study.assign_reader(reader).assignments.get().save_scores({"overall": 3})
    score = Score.objects.get()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    change_url = reverse("admin:readerstudy_score_change", args=[score.pk])
    page = client.get(change_url)
    assert page.status_code == 200 and "Score revisions" in page.content.decode()
    response = client.post(change_url, {"value": 1})
    assert response.status_code == 403
    delete = client.post(
        reverse("admin:readerstudy_score_delete", args=[score.pk]), {"post": "yes"}
    )
    assert delete.status_code == 403
    score.refresh_from_db()
    assert score.value == 3 and score.revisions.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_in_the_trail_of_existing_revisions():
    """Revisions stored before the audit fields existed get their previous value (the
    revision before) and who (the item's reader)."""
    executor = MigrationExecutor(connection)
    executor.migrate([("readerstudy", "0001_initial")])
    old = executor.loader.project_state([("readerstudy", "0001_initial")]).apps
    User = old.get_model("auth", "User")
    models = {
        name: old.get_model("readerstudy", name)
        for name in (
            "Study",
            "Question",
            "Case",
            "Reconstruction",
            "Reader",
            "Assignment",
            "Score",
            "ScoreRevision",
        )
    }
    user = User.objects.create(username="early-reader")
    study = models["Study"].objects.create(slug="early", title="Early")
    question = models["Question"].objects.create(study=study, key="overall", label="Overall")
    case = models["Case"].objects.create(study=study, name="c", reference="r.npy", shape=[8, 8])
    recon = models["Reconstruction"].objects.create(
        case=case, method="zf", acceleration=4, image="i.npy"
    )
    reader = models["Reader"].objects.create(study=study, user=user)
    item = models["Assignment"].objects.create(reader=reader, reconstruction=recon, position=0)
    score = models["Score"].objects.create(assignment=item, question=question, value=4)
    for value in (2, 3, 4):
        models["ScoreRevision"].objects.create(score=score, value=value)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    trail = list(
        ScoreRevision.objects.order_by("pk").values_list(
            "previous_value", "value", "recorded_by__username"
        )
    )
    assert trail == [(None, 2, "early-reader"), (2, 3, "early-reader"), (3, 4, "early-reader")]
