"""The Celery application, configured from Django's settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.config.settings")

app = Celery("readerstudy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _poll_the_sqlite_broker_sooner(**_) -> None:
    """kombu polls its SQLAlchemy transport once a second, which left a worker idle for up to
    a second between two cases (make bench-study: 12 cheap cases took 15.5 s, 6.8 s at 0.1 s).
    Its transport options go to SQLAlchemy's create_engine, which refuses `polling_interval`,
    so the interval is set on the class, in the worker alone (producers do not poll)."""
    from django.conf import settings
    from kombu.transport import sqlalchemy

    sqlalchemy.Transport.polling_interval = settings.BROKER_POLLING_INTERVAL


# What `make demo` and the tests run: one worker process consuming both queues.
WORKER_QUEUES = "default,metrics"


def worker_command(python: str, *extra: str) -> list[str]:
    return [
        python,
        "-m",
        "celery",
        "-A",
        "readerstudy.config",
        "worker",
        "--queues",
        WORKER_QUEUES,
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        *extra,
    ]
