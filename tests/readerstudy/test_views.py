from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from metrics.image import PIXEL_METRICS_VERSION
from metrics.models import MetricValue
from tests.readerstudy.factories import ReconstructionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    study = StudyFactory(title="Knee CS study")
    recon = ReconstructionFactory(case__study=study, method="cs-secret-method", acceleration=6)
    MetricValue.objects.create(
        reconstruction=recon, metric="psnr", version=PIXEL_METRICS_VERSION, value=31.25
    )
    return study


def test_pages_need_a_login(client, study):
    for url in (reverse("readerstudy:home"), study.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_reader_sees_their_progress_but_nothing_about_methods(client, study):
    user = UserFactory()
    study.assign_reader(user)
    client.force_login(user)
    page = client.get(reverse("readerstudy:home")).content.decode()
    assert "Knee CS study" in page and "0/1" in page
    assert "cs-secret-method" not in page and "31.25" not in page


def test_study_page_is_404_for_readers_and_other_researchers(client, study):
    reader = UserFactory()
    study.assign_reader(reader)
    other_researcher = UserFactory()
    StudyFactory().researchers.add(other_researcher)
    for user in (reader, other_researcher):
        client.force_login(user)
        assert client.get(study.get_absolute_url()).status_code == 404


def test_researcher_sees_methods_metrics_and_progress(client, study):
    researcher = UserFactory()
    study.researchers.add(researcher)
    client.force_login(researcher)
    page = client.get(study.get_absolute_url()).content.decode()
    assert "cs-secret-method" in page and "31.2500" in page
    assert "1/4 computed" in page, "one of four configured metrics is stored"


def test_login_page_logs_a_reader_in(client):
    UserFactory(username="radiologist")
    response = client.post(reverse("login"), {"username": "radiologist", "password": "password"})
    assert response.status_code == 302 and response["Location"] == reverse("readerstudy:home")


def sign_in(client, password, address="10.0.0.1", username="radiologist"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_repeated_wrong_passwords_pause_sign_in_for_that_user_from_that_address(client, settings):
    UserFactory(username="radiologist")
    UserFactory(username="colleague")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "guess").status_code == 200, "the form again, with its error"
    locked = sign_in(client, "guess")
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page and "radiologist" in page and "15 minutes" in page

    # The right password does not get through while paused ...
    assert sign_in(client, "password").status_code == 429
    assert "_auth_user_id" not in client.session
    # ... but the same user from another address, and another user here, still can.
    assert sign_in(Client(), "password", address="10.0.0.2").status_code == 302
    assert sign_in(Client(), "password", username="colleague").status_code == 302


def test_the_pause_ends_after_the_cool_off(client, settings):
    UserFactory(username="radiologist")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "guess")
    assert sign_in(client, "password").status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert sign_in(client, "password").status_code == 302
    assert AccessAttempt.objects.count() == 0, "a successful sign-in clears the failures"


def test_every_page_carries_a_content_security_policy(client, study):
    """Scripts from this site only (no inline script, no eval), no plugins, no framing; the
    browser tests run every page under it and fail on any violation."""
    reader = study.readers.first().user if study.readers.exists() else UserFactory()
    client.force_login(reader)
    for url in (reverse("login"), reverse("readerstudy:home")):
        policy = client.get(url)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'"
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert "blob:" in directives["worker-src"], "the viewer decodes in blob: workers"


# --- behind a proxy (issue 31): the address is the proxy's own entry, never the client's ---


def through_proxy(style: str, client_address: str, forged: str = ""):
    """The request an nginx in front would pass on for a client at `client_address` who sent
    `X-Forwarded-For: forged`: `append` is `$proxy_add_x_forwarded_for`, `set` `$remote_addr`."""
    if style == "append":
        header = f"{forged}, {client_address}" if forged else client_address
    else:
        header = client_address
    return {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": header}


def proxied_sign_in(password, style, client_address, forged="", username="radiologist"):
    return Client().post(
        reverse("login"),
        {"username": username, "password": password},
        **through_proxy(style, client_address, forged),
    )


@pytest.mark.parametrize("style", ["append", "set"])
def test_behind_a_proxy_forged_addresses_do_not_escape_the_throttle(settings, style):
    settings.TRUSTED_PROXY_HOPS = 1
    UserFactory(username="radiologist")
    for attempt in range(2 * settings.AXES_FAILURE_LIMIT):
        response = proxied_sign_in("guess", style, "203.0.113.5", forged=f"10.9.8.{attempt}")
        if attempt >= settings.AXES_FAILURE_LIMIT:
            assert response.status_code == 429, f"attempt {attempt + 1} was not paused"
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.5"}


@pytest.mark.parametrize("style", ["append", "set"])
def test_behind_a_proxy_one_attacker_does_not_lock_the_user_out_everywhere(settings, style):
    settings.TRUSTED_PROXY_HOPS = 1
    UserFactory(username="radiologist")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        proxied_sign_in("guess", style, "203.0.113.5")
    assert proxied_sign_in("password", style, "203.0.113.5").status_code == 429
    # The radiologist at another address still gets in, whatever they or the attacker sent.
    assert (
        proxied_sign_in("password", style, "198.51.100.7", forged="203.0.113.5").status_code == 302
    )


def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings):
    settings.TRUSTED_PROXY_HOPS = 0
    UserFactory(username="radiologist")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        Client().post(
            reverse("login"),
            {"username": "radiologist", "password": "guess"},
            REMOTE_ADDR="192.0.2.1",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{attempt}",
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.1"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1.2.3.4, 203.0.113.5", "203.0.113.5"),
        ("203.0.113.5:4431", "203.0.113.5"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("1.2.3.4, not-an-address", "127.0.0.1"),
        ("", "127.0.0.1"),
    ],
)
def test_client_ip_takes_the_trusted_proxys_entry(rf, settings, header, expected):
    from readerstudy.client_ip import client_ip

    settings.TRUSTED_PROXY_HOPS = 1
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=header)
    assert client_ip(request) == expected
    settings.TRUSTED_PROXY_HOPS = 2
    two = rf.get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.9, 10.0.0.2"
    )
    assert client_ip(two) == "198.51.100.9", "two trusted proxies: the second entry from the right"
