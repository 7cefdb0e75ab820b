"""Every page and API endpoint against every kind of visitor: who gets what, in one table.

Roles: anonymous; the item's own reader; another reader of the same study; a researcher of
another study; the study's researcher; staff (admin only, not a researcher of the study).
Anything a role may not see is 404 (its existence is not confirmed), or the login page for
anonymous visitors of pages (401/403 for anonymous API calls).
"""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from readerstudy.dashboard_store import store_analysis
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "reader", "other_reader", "other_researcher", "researcher", "staff")
LOGIN = "login"  # a redirect to the login page
DENIED = "denied"  # 401 or 403: an API call without credentials


@pytest.fixture
def world():
    study = StudyFactory(slug="knee")
    recon = ReconstructionFactory(case__study=study)
    users = {
        "reader": UserFactory(username="reader"),
        "other_reader": UserFactory(username="other_reader"),
        "other_researcher": UserFactory(username="other_researcher"),
        "researcher": UserFactory(username="researcher"),
        "staff": UserFactory(username="staff", is_staff=True, is_superuser=True),
    }
    study.researchers.add(users["researcher"])
    users["researcher"].user_permissions.add(
        Permission.objects.get(content_type__app_label="readerstudy", codename="add_study")
    )
    StudyFactory(slug="elsewhere").researchers.add(users["other_researcher"])
    item = study.assign_reader(users["reader"]).assignments.get()
    study.assign_reader(users["other_reader"])
    store_analysis(study)  # what the dashboard's worker task does: its table is then there
    return study, recon, item, users


def matrix(study, recon, item):
    """(method, url, body, {role: expected}) for every endpoint."""
    from readerstudy.models import StudyImport

    slug, public_id = study.slug, item.public_id
    job = StudyImport.objects.create(study=study, state=StudyImport.State.DONE)
    reader_only = {
        "anonymous": LOGIN,
        "reader": 200,
        "other_reader": 404,
        "other_researcher": 404,
        "researcher": 404,
        "staff": 404,
    }
    researcher_only = {**reader_only, "reader": 404, "researcher": 200}
    study_readers = {**reader_only, "other_reader": 200}
    api = {"anonymous": DENIED}
    scores = {"scores": {q.key: 3 for q in study.questions.all()}, "seconds_spent": 1}
    return [
        (
            "get",
            reverse("readerstudy:home"),
            None,
            dict.fromkeys(ROLES, 200) | {"anonymous": LOGIN},
        ),
        (
            "get",
            reverse("readerstudy:new-study"),
            None,
            dict.fromkeys(ROLES, DENIED) | {"anonymous": LOGIN, "researcher": 200, "staff": 200},
        ),
        ("get", reverse("readerstudy:read", args=[slug]), None, study_readers),
        (
            "get",
            reverse("readerstudy:item-image", args=[public_id, "reconstruction"]),
            None,
            reader_only,
        ),
        (
            "get",
            reverse("readerstudy:item-image", args=[public_id, "reference"]),
            None,
            reader_only,
        ),
        ("get", reverse("readerstudy:detail", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:export", args=[slug, "scores"]), None, researcher_only),
        ("get", reverse("readerstudy:export", args=[slug, "metrics"]), None, researcher_only),
        ("get", reverse("readerstudy:score-history", args=[slug]), None, researcher_only),
        (
            "get",
            reverse("readerstudy:export", args=[slug, "score-history"]),
            None,
            researcher_only,
        ),
        ("get", reverse("readerstudy:dashboard", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:setup", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:images", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:people", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:archive", args=[slug]), None, researcher_only),
        # A bad status change is refused back to the study page (302) for its researchers.
        (
            "post",
            reverse("readerstudy:status", args=[slug]),
            {"status": "draft"},
            {**researcher_only, "researcher": 302},
        ),
        # An unusable invitation link says so to anyone (410), signed in or not.
        (
            "get",
            reverse("readerstudy:invitation", args=["x" * 32]),
            None,
            dict.fromkeys(ROLES, 410),
        ),
        ("get", reverse("api:imports", args=[slug]), None, researcher_only | api),
        ("get", reverse("api:import-detail", args=[slug, job.pk]), None, researcher_only | api),
        ("get", reverse("readerstudy:dashboard-table", args=[slug]), None, researcher_only),
        ("get", reverse("readerstudy:lab-status", args=[slug]), None, researcher_only),
        # A bad lab form is refused back to the study page (302) for its researchers.
        (
            "post",
            reverse("readerstudy:lab-start", args=[slug]),
            {"levels": "0"},
            {**researcher_only, "researcher": 302},
        ),
        (
            "get",
            reverse("readerstudy:preview", args=[slug, recon.public_id, "reference"]),
            None,
            researcher_only,
        ),
        ("get", reverse("api:studies"), None, dict.fromkeys(ROLES, 200) | api),
        ("get", reverse("api:next-item", args=[slug]), None, study_readers | api),
        ("get", reverse("api:item", args=[public_id]), None, reader_only | api),
        ("put", reverse("api:item-scores", args=[public_id]), scores, reader_only | api),
        ("get", reverse("api:analysis", args=[slug]), None, researcher_only | api),
        ("get", reverse("admin:index"), None, dict.fromkeys(ROLES, LOGIN) | {"staff": 200}),
    ]


def outcome(response) -> int | str:
    if response.status_code == 302:
        return LOGIN if "login" in response["Location"] else response.status_code
    if response.status_code in (401, 403):
        return DENIED
    return response.status_code


def test_permission_matrix(world):
    study, recon, item, users = world
    failures = []
    for method, url, body, expected in matrix(study, recon, item):
        for role in ROLES:
            client = Client(enforce_csrf_checks=False)
            if role != "anonymous":
                client.force_login(users[role])
            if method == "put":
                response = client.put(url, body, content_type="application/json")
            elif method == "post":
                response = client.post(url, body)
            else:
                response = client.get(url)
            got = outcome(response)
            if got != expected[role]:
                failures.append(
                    f"{method.upper()} {url} as {role}: {got}, expected {expected[role]}"
                )
    assert not failures, "\n".join(failures)


def test_state_changing_requests_need_the_csrf_token(world):
    """Session-authenticated writes without the CSRF token are refused, and store nothing."""
    study, _, item, users = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["reader"])
    response = client.put(
        reverse("api:item-scores", args=[item.public_id]),
        {"scores": {q.key: 3 for q in study.questions.all()}, "seconds_spent": 1},
        content_type="application/json",
    )
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert not item.scores.exists()
    logout = client.post(reverse("logout"))
    assert logout.status_code == 403, "logging out is a state change too"
