"""The metric lab on the study page: started by a researcher, run by the task on the study's own
references, followed as JSON; refused cleanly for bad requests, other people and repeats."""

import numpy as np
import pytest
from django.urls import reverse

from metrics.image import central_slice
from readerstudy.models import MetricLab, Study, array_file
from readerstudy.models.lab import MAX_LAB_REFERENCES, lab_cases
from readerstudy.tasks import run_metric_lab
from tests.readerstudy.factories import (
    CaseFactory,
    ReconstructionFactory,
    StudyFactory,
    UserFactory,
    smooth_image,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(lead):
    study = StudyFactory(slug="knee", status=Study.Status.DRAFT)
    study.researchers.add(lead)
    for k in range(3):
        case = CaseFactory(
            study=study,
            name=f"case-{k}",
            reference=array_file(smooth_image(seed=k, shape=(48, 48))),
            shape=[48, 48],
        )
        ReconstructionFactory(case=case)
    return study


def start(client, study, **data):
    form = {"kinds": ["noise", "translation"], "levels": "3", **data}
    return client.post(reverse("readerstudy:lab-start", args=[study.slug]), form)


def status(client, study):
    response = client.get(reverse("readerstudy:lab-status", args=[study.slug]))
    assert response.status_code == 200
    return response.json()


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


def test_a_researcher_runs_the_lab_on_the_studys_references(
    client, study, settings, django_capture_on_commit_callbacks
):
    assert status(client, study) == {"lab": None, "last_result": None}
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = start(client, study)
    assert response.status_code == 302 and response.url.endswith("#metric-lab")
    assert len(queued) == 1, "Sanity: the task is sent once the lab is committed"
    lab = MetricLab.objects.get()
    assert (lab.state, lab.kinds, lab.levels) == ("queued", ["noise", "translation"], 3)
    assert status(client, study)["lab"]["state"] == "queued"

    run_metric_lab(lab_pk=lab.pk)  # what the metrics worker runs (a real one: browser test)
    lab.refresh_from_db()
    assert lab.state == "done" and lab.finished_at is not None
    assert (lab.references_done, lab.references_total) == (3, 3)
    result = lab.result
    assert result["metrics"] == settings.METRICS_ENABLED
    assert result["cases"] == ["case-0", "case-1", "case-2"]
    assert result["kinds"] == ["noise", "translation"], "in order, whatever the database"
    assert result["summary"]["psnr"]["monotonicity"]["noise"] == pytest.approx(1.0)
    body = status(client, study)
    assert body["lab"]["state"] == "done"
    assert body["last_result"]["result"]["references"] == 3
    assert body["last_result"]["reader_agreement"] == {}, "no scores yet: nothing to set beside"

    page = client.get(reverse("readerstudy:detail", args=[study.slug])).content.decode()
    assert 'id="metric-lab"' in page and "Run the metric lab" in page

    run_metric_lab(lab_pk=lab.pk)  # a redelivered message of a finished lab changes nothing
    assert MetricLab.objects.get().result == result


def test_a_second_start_while_one_runs_adds_nothing(client, study):
    start(client, study)
    again = start(client, study)
    assert MetricLab.objects.count() == 1
    assert "already running" in " ".join(messages_of(again))
    lab = MetricLab.objects.get()
    run_metric_lab(lab_pk=lab.pk)
    start(client, study)  # once it has finished, a new one may start
    assert MetricLab.objects.count() == 2
    body = status(client, study)
    assert body["lab"]["state"] == "queued"
    assert body["last_result"]["result"]["levels"] == 3, "the last curves stay on the page"
    shown = body["last_result"]["finished_at"]
    response = client.get(
        reverse("readerstudy:lab-status", args=[study.slug]), {"shown": shown}
    ).json()
    assert response["last_result"] is None, "a page showing that result is not sent it again"
    assert response["lab"]["state"] == "queued"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"levels": "1"}, "greater than or equal to 3"),
        ({"levels": "200"}, "less than or equal to 20"),
        ({"levels": "many"}, "Enter a whole number"),
        ({"kinds": []}, "Choose at least one perturbation"),
        ({"kinds": ["wobble"]}, "wobble is not one of the available choices"),
    ],
)
def test_a_bad_form_starts_nothing_and_says_why(client, study, data, message):
    response = start(client, study, **data)
    assert response.status_code == 302
    assert MetricLab.objects.count() == 0
    assert any(message in m for m in messages_of(response)), messages_of(response)


def test_a_study_without_images_starts_no_lab(client, lead):
    empty = StudyFactory(slug="empty")
    empty.researchers.add(lead)
    response = start(client, empty)
    assert MetricLab.objects.count() == 0
    assert "needs images" in " ".join(messages_of(response))


def test_a_lab_whose_images_went_away_fails_with_a_sentence(client, study):
    start(client, study)
    lab = MetricLab.objects.get()
    study.cases.all().delete()
    run_metric_lab(lab_pk=lab.pk)
    lab.refresh_from_db()
    assert lab.state == "failed" and "no images yet" in lab.problem
    assert status(client, study)["lab"]["problem"] == lab.problem


def test_an_unreadable_reference_fails_the_lab_and_keeps_the_study(client, study):
    start(client, study)
    lab = MetricLab.objects.get()
    case = study.cases.first()
    with open(case.reference.path, "wb") as broken:
        broken.write(b"not an array")
    run_metric_lab(lab_pk=lab.pk)
    lab.refresh_from_db()
    assert lab.state == "failed" and lab.problem.startswith("the lab stopped unexpectedly")
    assert study.cases.count() == 3


def test_other_people_get_404_and_strangers_the_login(client, study):
    start(client, study)
    for person in (UserFactory(username="other-researcher"), UserFactory(username="reader")):
        client.force_login(person)
        assert start(client, study).status_code == 404
        assert client.get(reverse("readerstudy:lab-status", args=[study.slug])).status_code == 404
    client.logout()
    response = client.get(reverse("readerstudy:lab-status", args=[study.slug]))
    assert response.status_code == 302 and "/accounts/login/" in response.url
    assert client.get(reverse("readerstudy:lab-start", args=[study.slug])).status_code in (
        302,
        405,
    )
    assert MetricLab.objects.count() == 1


def test_a_volume_gives_its_central_slice_and_many_cases_an_even_spread(lead):
    volume = np.stack([np.full((4, 4), k, float) for k in range(5)])
    assert np.array_equal(central_slice(volume), volume[2])
    image = volume[0]
    assert central_slice(image) is image
    study = StudyFactory(slug="big")
    cases = [CaseFactory(study=study, name=f"c{k:02d}") for k in range(25)]
    picked = lab_cases(study)
    assert len(picked) == MAX_LAB_REFERENCES
    assert picked[0] == cases[0] and picked[-1] == cases[-1]
    assert len(set(picked)) == MAX_LAB_REFERENCES


def test_the_lab_goes_to_the_metrics_queue_where_the_gpu_workers_are():
    from readerstudy.config.celery import app

    route = app.amqp.router.route({}, "readerstudy.tasks.run_metric_lab")
    assert route["queue"].name == "metrics"


def test_a_constant_reference_is_left_out_and_named(client, study):
    blank = study.cases.get(name="case-1")
    blank.reference = array_file(np.full((48, 48), 7.0, np.float32))
    blank.save()
    start(client, study)
    lab = MetricLab.objects.get()
    run_metric_lab(lab_pk=lab.pk)
    lab.refresh_from_db()
    assert lab.state == "done", lab.problem
    assert lab.result["cases"] == ["case-0", "case-2"] and lab.result["skipped"] == ["case-1"]
    assert (lab.result["references"], lab.references_total) == (2, 2)
    study.cases.exclude(pk=blank.pk).delete()
    start(client, study)
    second = MetricLab.objects.exclude(pk=lab.pk).get()
    run_metric_lab(lab_pk=second.pk)
    second.refresh_from_db()
    assert second.state == "failed" and "constant" in second.problem


def test_a_reference_with_negative_values_is_left_out_with_its_reason(client, study):
    """The lab's copies are magnitudes: a signed reference would differ from its own copy at
    severity zero (issue 32). It is left out, named, with the reason."""
    signed = study.cases.get(name="case-1")
    signed.reference = array_file(np.linspace(-1, 1, 48 * 48, dtype=np.float32).reshape(48, 48))
    signed.save()
    start(client, study)
    lab = MetricLab.objects.get()
    run_metric_lab(lab_pk=lab.pk)
    lab.refresh_from_db()
    assert lab.state == "done", lab.problem
    assert lab.result["skipped"] == ["case-1"]
    assert "negative values" in lab.result["skipped_reasons"]["case-1"]
