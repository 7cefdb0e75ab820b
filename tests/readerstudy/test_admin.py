"""The admin is the researcher's editor: readers added there get their own random order."""

import pytest
from django.urls import reverse

from readerstudy.models import Reader
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_reader_added_in_the_admin_gets_every_item_in_their_own_order(client):
    study = StudyFactory()
    for _ in range(4):
        ReconstructionFactory(case__study=study)
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    reader = UserFactory()
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:readerstudy_reader_add"), {"study": study.pk, "user": reader.pk}
    )
    assert response.status_code == 302, response.content.decode()[:500]
    membership = Reader.objects.get(study=study, user=reader)
    assert membership.assignments.count() == 4
    assert sorted(membership.assignments.values_list("position", flat=True)) == [1, 2, 3, 4]


def test_admin_lists_filter_and_search(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    StudyFactory(title="Knee CS")
    client.force_login(admin_user)
    for name in (
        "study",
        "case",
        "reconstruction",
        "reader",
        "assignment",
        "score",
        "invitation",
        "studyimport",
    ):
        assert client.get(reverse(f"admin:readerstudy_{name}_changelist")).status_code == 200
    page = client.get(
        reverse("admin:readerstudy_study_changelist"), {"q": "Knee"}
    ).content.decode()
    assert "Knee CS" in page
