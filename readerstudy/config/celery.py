"""The Celery application, configured from Django's settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.config.settings")

app = Celery("readerstudy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

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
