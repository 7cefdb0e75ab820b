"""Database queries per request on a reader's path, per kind of item: what `make bench-load`
prints and tests/readerstudy/test_api.py pins, so that a feature that adds a query to the hot
path fails a test rather than a benchmark nobody runs (issue 33)."""

from __future__ import annotations

import json
from collections import defaultdict

from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from readerstudy.bench.loadtest import answers
from readerstudy.models import Assignment, Study

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def item_kind(public_id: str) -> str:
    """likert, rank or choice; training or repeat where the item is one."""
    item = Assignment.objects.select_related(
        "reconstruction__case", "comparison__case", "comparison__question"
    ).get(public_id=public_id)
    comparison, reconstruction = item.comparison, item.reconstruction
    case = comparison.case if comparison is not None else reconstruction.case  # type: ignore[union-attr]
    if case.training:
        return "training"
    if item.repeat_of_id:
        return "repeat"
    return comparison.question.kind if comparison is not None else "likert"


def reader_path_queries(study: Study, user) -> dict[str, dict[str, int]]:
    """Read every item of `user` (a reader of `study`) through the real views, in order, and
    count the queries of each next-item request and each submission: per kind of item, the
    most either took, and how many items of that kind there were."""
    # As a browser reaches the server: a host it serves, over HTTPS (production settings
    # redirect plain HTTP, and refuse the test client's default host).
    client = Client(headers={"host": settings.ALLOWED_HOSTS[0]})
    client.force_login(user, backend=MODEL_BACKEND)
    most: dict[str, dict[str, int]] = defaultdict(lambda: {"items": 0, "next": 0, "submit": 0})
    next_url = reverse("api:next-item", args=[study.slug])
    while True:
        with CaptureQueriesContext(connection) as fetch:
            response = client.get(next_url, secure=True)
        item = response.json()["item"]
        if item is None:
            return dict(most)
        body = json.dumps({"scores": answers(item), "seconds_spent": 1.0})
        with CaptureQueriesContext(connection) as save:
            saved = client.put(
                reverse("api:item-scores", args=[item["public_id"]]),
                body,
                content_type="application/json",
                secure=True,
            )
        if saved.status_code != 200:
            raise RuntimeError(f"the probe's answer was refused: {saved.content[:300]!r}")
        row = most[item_kind(item["public_id"])]
        row["items"] += 1
        row["next"] = max(row["next"], len(fetch))
        row["submit"] = max(row["submit"], len(save))
