"""The Celery application, configured from Django's settings (CELERY_* names)."""

import os

from celery import Celery
from django.db import InterfaceError, OperationalError

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


# A lost database connection or a locked SQLite file is worth another try; a bad image is not.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def idempotent_task(**options):
    """Register a task that may safely run twice (for idempotent tasks only).

    The message is acknowledged after the task returns (`acks_late`), and a pool process killed
    mid-task (out of memory, SIGKILL) has its message put back on the queue
    (`reject_on_worker_lost`) rather than acknowledged as failed, so the work is done again; the
    task's writes must therefore be overwrites (`update_or_create` on a unique key). Transient database errors are retried with
    exponential back-off. Queues are chosen by CELERY_TASK_ROUTES (metrics tasks go to the
    `metrics` queue that GPU workers consume).
    """
    return app.task(
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=True,
        max_retries=5,
        **options,
    )
