"""Fixtures shared by the study app's tests."""

import pytest

from tests.readerstudy.factories import UserFactory


@pytest.fixture
def lead(client):
    """A researcher, "lead", signed in on the test client."""
    user = UserFactory(username="lead")
    client.force_login(user)
    return user
