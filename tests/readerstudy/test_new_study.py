"""Creating a study in the browser's form: a draft, its default questions, its creator."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from readerstudy.models import Study
from tests.readerstudy.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher():
    user = UserFactory(username="lead")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
    )
    return user


def test_only_users_allowed_to_create_studies_get_the_form(client, researcher):
    url = reverse("readerstudy:new-study")
    assert client.get(url).status_code == 302, "anonymous: to the sign-in page"
    client.force_login(UserFactory())
    assert client.get(url).status_code == 403
    assert "New study" not in client.get(reverse("readerstudy:home")).content.decode()
    client.force_login(researcher)
    assert client.get(url).status_code == 200
    assert "New study" in client.get(reverse("readerstudy:home")).content.decode()


def test_a_new_study_is_a_draft_with_the_default_questions_run_by_its_creator(client, researcher):
    client.force_login(researcher)
    response = client.post(
        reverse("readerstudy:new-study"),
        {
            "title": "Knee CS 2027",
            "slug": "",
            "instructions": "Score it.",
            "presentation": "alone",
        },
    )
    study = Study.objects.get()
    assert response.status_code == 302 and response["Location"] == study.get_absolute_url()
    assert study.slug == "knee-cs-2027" and study.status == Study.Status.DRAFT
    assert study.presentation == "alone" and study.instructions == "Score it."
    assert list(study.researchers.all()) == [researcher]
    assert list(study.questions.values_list("key", flat=True)) == [
        "overall",
        "artifacts",
        "snr",
        "sharpness",
    ]
    assert client.get(study.get_absolute_url()).status_code == 200


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"title": "Knee", "slug": "taken"}, "slug", "exists already"),
        ({"title": "Knee", "slug": "-x"}, "slug", "may not start with"),
        ({"title": "Knee\x07", "slug": ""}, "title", "control character"),
        ({"title": "Knee\x00", "slug": ""}, "title", "Null characters"),
        ({"title": "", "slug": "k"}, "title", "required"),
    ],
)
def test_a_bad_field_is_explained_beside_it_and_nothing_is_created(
    client, researcher, data, field, message
):
    StudyFactory(slug="taken")
    client.force_login(researcher)
    response = client.post(reverse("readerstudy:new-study"), {"presentation": "alone", **data})
    assert response.status_code == 200
    assert message in response.context["form"].errors[field][0]
    assert f'id="{field}-error"' in response.content.decode()
    assert Study.objects.count() == 1
