"""schemathesis against the app's own OpenAPI schema: no generated request gets a 500.

Requests go through the whole WSGI stack (middleware, sessions, CSRF, DRF) in process, as a
signed-in reader and as the study's researcher, on a real study. Path parameters are both
generated (unknown slugs and ids: 404, never 500) and set to the real ones, so bodies and
queries are fuzzed against objects that exist.
"""

import json
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from readerstudy.config.wsgi import application
from readerstudy.management.commands import bench_load
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

# Each example is a full request through Django; 25 per operation and role keeps it brief.
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def world():
    # In-process WSGI requests would close the test's database connection when they end;
    # django.test.Client keeps it open the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    study = StudyFactory(slug="knee")
    for _ in range(3):
        ReconstructionFactory(case__study=study)
    reader = UserFactory(username="reader")
    items = study.assign_reader(reader).assignments.order_by("position")
    researcher = UserFactory(username="lead")
    study.researchers.add(researcher)
    yield {
        "real": {"slug": study.slug, "public_id": items.first().public_id},
        "users": {"reader": reader, "researcher": researcher},
    }
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def signed_in(user) -> dict:
    """Session and CSRF cookies of a signed-in user, and the CSRF header writes need."""
    client = bench_load.signed_in(user)
    return {
        "cookies": {"sessionid": client.session_id, "csrftoken": client.csrf_token},
        "headers": {"X-CSRFToken": client.csrf_token},
    }


def operations():
    # The schema is served to signed-in users only: built here as /api/schema/ builds it,
    # then every generated request goes through the app.
    generated = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(generated)))
    schema.app = application
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 5, "the schema lists the reader and researcher API"
    return found


def fuzz(operation, credentials, real_objects=None) -> Counter:
    """Run generated requests of one operation; the count of each status code seen."""
    seen = Counter()

    @FUZZ
    @given(case=operation.as_strategy())
    def run(case):
        for name in case.path_parameters or {}:
            if real_objects and name in real_objects:
                case.path_parameters[name] = real_objects[name]
        response = case.call_and_validate(checks=[not_a_server_error], **credentials)
        seen[response.status_code] += 1

    run()
    return seen


@pytest.mark.parametrize("role", ["reader", "researcher"])
def test_generated_requests_never_get_a_server_error(world, role):
    credentials = signed_in(world["users"][role])
    statuses = {}
    for operation in operations():
        generated = fuzz(operation, credentials)
        on_real = fuzz(operation, credentials, real_objects=world["real"])
        statuses[operation.label] = generated + on_real
    print(role, {label: dict(seen) for label, seen in statuses.items()})
    assert all(code < 500 for seen in statuses.values() for code in seen)
    # The fuzzing reached real code, not only 404s and 400s.
    assert sum(seen[200] for seen in statuses.values()) > 0, statuses
