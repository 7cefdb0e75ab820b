"""`manage.py bench_load` end to end at a small size, so the benchmark cannot rot: gunicorn on
the test database, readers and a dashboard, the exactly-once check. (Its figures are printed
by `make bench-load`; nothing here is timed.)"""

import json

import pytest
from django.core.management import call_command
from django.db import connection

from readerstudy.models import Score, Study
from tests.conftest import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="bench_load runs on PostgreSQL (DATABASE_URL)"
    ),
]


def test_bench_load_drives_gunicorn_and_finds_every_score_once(tmp_path, capsys):
    call_command(
        "bench_load",
        readers=3,
        dashboards=1,
        duration=3.0,
        closed_duration=1.0,
        think=0.5,
        items=40,
        workers=2,
        port=free_port(),
        json=tmp_path / "figures.json",
    )
    out = capsys.readouterr().out
    assert "exactly once: every accepted score stored once" in out
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["problems"] == []
    scored = figures["paced"]["scored"]
    assert scored > 0 and figures["latency"]["submit score (paced)"]["n"] >= scored
    assert figures["closed_loop"]["cycles_per_s"] > 0
    study = Study.objects.get(slug="bench-load")
    assert Score.objects.filter(assignment__reader__study=study).exists()
    queries = figures["queries_per_request"]
    assert {"likert", "rank", "training", "repeat"} <= set(queries), "every design is read"
    assert all(row["next"] > 0 and row["submit"] > 0 for row in queries.values())
    assert "queries per request" in out
