"""`manage.py build_demo`: the demo study from the shipped real slices, idempotent."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from fixtures.demo import DEMO_PROTOCOLS
from fixtures.images import slice_sources
from metrics.models import MetricValue
from readerstudy.models import Assignment, Case, Question, Reader, Reconstruction, Score, Study


def snapshot():
    models = [Study, Question, Case, Reconstruction, Reader, Assignment, Score, get_user_model()]
    return {model.__name__: sorted(map(str, model.objects.values_list())) for model in models}


@pytest.mark.slow
@pytest.mark.django_db
def test_build_demo_builds_a_real_study_and_a_second_run_changes_nothing(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("build_demo")
    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.OPEN
    assert study.cases.count() == len(slice_sources()) >= 8
    assert {c.anatomy for c in study.cases.all()} >= {"brain", "shoulder", "abdomen"}
    assert Reconstruction.objects.filter(case__study=study).count() == len(slice_sources()) * len(
        DEMO_PROTOCOLS
    )
    assert len({(p.method, p.acceleration) for p in DEMO_PROTOCOLS}) >= 5
    assert study.researchers.filter(username="researcher").exists()
    readers = list(study.readers.all())
    assert len(readers) == 3
    orders = {tuple(r.assignments.values_list("reconstruction_id", flat=True)) for r in readers}
    assert len(orders) == 3, "each reader has their own order"
    assert len(callbacks) == study.cases.count(), "metrics are queued for every case"

    before = snapshot()
    call_command("build_demo")
    assert snapshot() == before, "a second build changes nothing"
    assert not MetricValue.objects.exists()
