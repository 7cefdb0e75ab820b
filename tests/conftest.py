"""Shared fixtures: a real Celery worker process on the configured broker and database."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from hypothesis import settings as hypothesis_settings

from readerstudy.bench import loadtest
from readerstudy.config.celery import worker_command
from readerstudy.config.database import database_url

# CI replays the same examples on every run, so a red build is reproducible and a property
# failure is found by `HYPOTHESIS_PROFILE=search`, not by chance on someone else's push.
hypothesis_settings.register_profile("ci", derandomize=True, max_examples=40)
hypothesis_settings.register_profile(
    "search", max_examples=int(os.environ.get("HYPOTHESIS_SEARCH_EXAMPLES", "10000"))
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.skip_summary"]


def database_url_for_worker() -> str:
    """The URL of the database the tests are using right now (pytest-django's test database)."""
    return database_url(connection.settings_dict)


def purge_queues() -> None:
    from readerstudy.config.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "metrics"):
            # A queue that does not exist yet has nothing to purge.
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)


@pytest.fixture
def start_worker(transactional_db, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start real `celery worker` processes consuming both queues, on the test database;
    `extra_env` configures one differently from the web process (weights, metrics), as a
    split deployment does. Stopped at the end of the test.

    Tests using it need committed data (transactional_db), since the worker has its own
    connection.
    """
    purge_queues()
    started: list[tuple[subprocess.Popen, object]] = []

    def start(**extra_env: str) -> subprocess.Popen:
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = log_path.open("w")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            **extra_env,
        }
        worker = subprocess.Popen(
            worker_command(
                sys.executable, "--without-gossip", "--without-mingle", "--without-heartbeat"
            ),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker.log_path = log_path  # type: ignore[attr-defined]
        started.append((worker, log))
        return worker

    yield start
    for worker, log in started:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()  # type: ignore[attr-defined]


@pytest.fixture
def celery_worker_process(start_worker) -> subprocess.Popen:
    """A real `celery worker` process configured as the tests' web process is."""
    return start_worker()


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(database_url: str, log_path: Path, *, workers: int = 2) -> Iterator[str]:
    """The production web server (gunicorn, sync workers) on the test database; yields its URL.

    Tests using it need committed data (transactional_db).
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "60",  # as in production: kept, health-checked connections
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    try:
        with loadtest.gunicorn(free_port(), workers, env, log_path) as url:
            yield url
    except loadtest.ServerStartError as error:
        pytest.fail(f"{error}\n{log_path.read_text()[-3000:]}")


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """Poll `condition` until it holds, or fail after `timeout` seconds with `message`."""

    def wait(
        condition: Callable[[], bool], *, timeout: float, message: str, log: Path | None = None
    ):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        tail = log.read_text()[-3000:] if log and log.exists() else ""
        pytest.fail(f"{message} (waited {timeout} s)\n{tail}")

    return wait
