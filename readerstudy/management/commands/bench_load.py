"""`manage.py bench_load`: 50 readers and 2 dashboards against gunicorn on PostgreSQL.

Run by `make bench-load`, which points DATABASE_URL at a scratch database. The command replaces
its own study (slug bench-load) and users (bench-*) there and touches nothing else: it adds a
study (readers, items, metric values), starts gunicorn on loopback, drives it with
readerstudy.bench.loadtest, prints latency percentiles and the closed-loop ceiling, and checks that every
score the server accepted is in the database exactly once. Bounded: about a minute.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client as DjangoClient
from django.utils.crypto import get_random_string

from metrics.engine import metric_version
from metrics.models import MetricValue
from readerstudy.bench import loadtest
from readerstudy.bench.queries import reader_path_queries
from readerstudy.config.database import database_url
from readerstudy.models import (
    Case,
    Question,
    Reconstruction,
    Score,
    ScoreRevision,
    Study,
    array_file,
)

SLUG = "bench-load"
METRICS = ["psnr", "ssim", "nmse"]
TARGET_P99_MS = 50.0


class Command(BaseCommand):
    help = "Load benchmark: readers scoring and researchers polling, on gunicorn + PostgreSQL."

    def add_arguments(self, parser):
        parser.add_argument("--readers", type=int, default=50)
        parser.add_argument("--dashboards", type=int, default=2)
        parser.add_argument("--duration", type=float, default=30.0, help="paced phase, seconds")
        parser.add_argument("--closed-duration", type=float, default=10.0)
        parser.add_argument("--think", type=float, default=2.0, help="seconds between scores")
        parser.add_argument("--items", type=int, default=120, help="reconstructions per reader")
        # The load generator's 52 threads share the machine with the server: one gunicorn worker
        # per core plus one did best on 2 cores (3: p99 30-43 ms; 4: 30-58 ms; 2: 90 ms).
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1)),
        )
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--json", type=Path, help="also write the figures to this file")

    def handle(self, *args, **options):
        # django-axes logs every sign-in at INFO; the benchmark signs in 52 users.
        logging.getLogger("axes").setLevel(logging.WARNING)
        if connection.vendor != "postgresql":
            raise CommandError(
                "bench_load needs PostgreSQL: set DATABASE_URL to a scratch database "
                "(make bench-load uses postgres://postgres@127.0.0.1:5432/readerstudy_bench)"
            )
        call_command("migrate", verbosity=0)
        self.stdout.write(f"seeding {options['readers']} readers x {options['items']} items ...")
        study, readers, researchers = seed(
            options["readers"], options["dashboards"], options["items"]
        )
        queries = self.queries_per_request(study)
        # As autovacuum leaves the tables of a server that has run a study a while: without
        # it (off on some test servers) every run re-seeds over the last one's dead rows, and
        # each was slower than the one before (123,003 dead assignment rows after 7 runs).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        server_log = Path(settings.DATA_DIR) / "bench-load-gunicorn.log"
        # The dashboards' analyses run in a worker, as in production (never in a request).
        worker_log = Path(settings.DATA_DIR) / "bench-load-worker.log"
        access_log = Path(settings.DATA_DIR) / "bench-load-access.log"
        access_log.unlink(missing_ok=True)  # gunicorn appends
        try:
            with (
                loadtest.celery_worker(server_environment(), worker_log),
                loadtest.gunicorn(
                    options["port"],
                    options["workers"],
                    server_environment(),
                    server_log,
                    access_log,
                ) as base,
            ):
                self.stdout.write(
                    f"gunicorn: {options['workers']} sync workers on {base}; cache "
                    f"{settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}; paced phase "
                    f"{options['duration']:.0f} s, then closed loop {options['closed_duration']:.0f} s"
                )
                loadtest.warm_up(base, SLUG, readers, researchers)
                paced_from = loadtest.settled_size(access_log)
                paced = loadtest.paced(
                    base,
                    SLUG,
                    readers,
                    researchers,
                    duration_s=options["duration"],
                    think_s=options["think"],
                )
                in_worker = loadtest.server_times(
                    access_log, paced_from, loadtest.settled_size(access_log)
                )
                closed, elapsed = loadtest.closed_loop(
                    base, SLUG, readers, duration_s=options["closed_duration"]
                )
        except loadtest.ServerStartError as error:
            raise CommandError(str(error)) from None
        figures = report(paced, in_worker, closed, elapsed, options)
        figures["queries_per_request"] = queries
        figures["analyses"] = loadtest.task_seconds(worker_log, "refresh_dashboard")
        problems = exactly_once(study, {**paced.accepted, **closed.accepted})
        problems += [f"request failed: {e}" for e in (paced.errors + closed.errors)[:10]]
        self.print_figures(figures, problems)
        if options["json"]:
            options["json"].write_text(json.dumps({**figures, "problems": problems}, indent=2))
        if problems:
            self.stderr.write(f"server log: {server_log}")
            raise CommandError(f"{len(problems)} problem(s); see above")

    def queries_per_request(self, study: Study) -> dict[str, dict[str, int]]:
        """Queries per next-item request and submission, by kind of item, from a probe
        reader who reads the whole study through the real views (then removed)."""
        user = get_user_model().objects.create_user("bench-probe")
        reader = study.assign_reader(user)
        try:
            return reader_path_queries(study, user)
        finally:
            reader.delete()
            user.delete()

    def print_figures(self, figures: dict, problems: list[str]) -> None:
        out = self.stdout.write
        out("")
        out("queries per request (most, per kind of item; a probe reader read them all):")
        for kind, row in figures["queries_per_request"].items():
            out(
                f"  {kind:<10} {row['items']:>4} items: next {row['next']}, submit {row['submit']}"
            )
        analyses = figures["analyses"]
        if analyses["n"]:
            out(
                f"dashboard analyses in the worker: {analyses['n']}, p50 {analyses['p50_s']:.2f} s, "
                f"max {analyses['max_s']:.2f} s (never in a web request)"
            )
        out("")
        out(f"{'request':<34}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for label, row in figures["latency"].items():
            if row["n"]:
                out(
                    f"{label:<34}{row['n']:>7}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
                    f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}"
                )
        ceiling = figures["closed_loop"]
        out("")
        out(
            f"closed loop, {ceiling['clients']} clients, no think time: "
            f"{ceiling['cycles_per_s']:.0f} items scored/s ({ceiling['requests_per_s']:.0f} "
            f"requests/s); submit p99 {ceiling['submit_p99_ms']:.1f} ms"
        )
        paced = figures["paced"]
        out(
            f"paced: {paced['scored']} items scored ({paced['resent']} sent twice on purpose), "
            f"{paced['requests_per_s']:.1f} requests/s offered"
        )
        for name, met in figures["targets"].items():
            out(f"target {name}: {'met' if met else 'MISSED'}")
        out(
            "exactly once: every accepted score stored once, with one revision"
            if not problems
            else "PROBLEMS:\n  " + "\n  ".join(problems)
        )


def seed(n_readers: int, n_dashboards: int, n_items: int):
    """A fresh benchmark study: `n_items` reconstructions every reader reads (with repeat
    reads, a training case and a ranking question), metric values."""
    users = get_user_model()
    Study.objects.filter(slug=SLUG).delete()
    users.objects.filter(username__startswith="bench-").delete()
    # Every design a reader meets: repeat reads, a training case first, and a ranking of
    # each case's reconstructions beside the Likert questions.
    study = Study.objects.create(
        slug=SLUG, title="Load benchmark", status=Study.Status.OPEN, repeat_share=0.1
    )
    study.add_default_questions()
    Question.objects.create(study=study, key="rank", label="Rank", kind="rank", position=9)
    rng = np.random.default_rng(0)
    for case_index in range(int(np.ceil(n_items / 5))):
        case = Case.objects.create(
            study=study,
            name=f"case-{case_index:03d}",
            reference=array_file(rng.random((32, 32))),
            shape=[32, 32],
            training=case_index == 0,
            training_note="Look at the edges" if case_index == 0 else "",
        )
        for method_index in range(min(5, n_items - case_index * 5)):
            recon = Reconstruction.objects.create(
                case=case,
                method=f"method-{method_index}",
                acceleration=4,
                image=array_file(rng.random((32, 32))),
            )
            MetricValue.objects.bulk_create(
                MetricValue(
                    reconstruction=recon,
                    metric=name,
                    version=metric_version(name),
                    value=float(rng.random()),
                )
                for name in METRICS
            )
    readers = []
    for i in range(n_readers):
        user = users.objects.create_user(f"bench-reader-{i:03d}")
        study.assign_reader(user)
        readers.append(signed_in(user))
    researchers = []
    for i in range(n_dashboards):
        user = users.objects.create_user(f"bench-lead-{i}")
        study.researchers.add(user)
        researchers.append(signed_in(user))
    return study, readers, researchers


def signed_in(user) -> loadtest.Client:
    """A session for `user` (as after signing in) and a CSRF token for its writes."""
    client = DjangoClient()
    client.force_login(user)
    return loadtest.Client(user.username, client.cookies["sessionid"].value, get_random_string(32))


def server_environment() -> dict[str, str]:
    """The production settings on loopback HTTP, on this command's database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "readerstudy.config.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        # Loopback HTTP: no TLS to redirect to.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_HSTS_SECONDS": "0",
        "METRICS_ENABLED": ",".join(METRICS),
        "DJANGO_LOG_LEVEL": "WARNING",
    }


def report(paced, in_worker: dict, closed, elapsed: float, options: dict) -> dict:
    """Latencies as the clients saw them (request to complete response), and for the paced
    phase also the time inside a gunicorn worker (from its access log): the difference is
    time spent waiting for a free worker or CPU, and in the load generator itself."""
    latency = {
        "next item (paced)": loadtest.percentiles(paced.latencies["next_item"]),
        "submit score (paced)": loadtest.percentiles(paced.latencies["submit_score"]),
        "dashboard poll, unchanged (304)": loadtest.percentiles(
            paced.latencies["dashboard_unchanged"]
        ),
        "dashboard refresh, new data (200)": loadtest.percentiles(
            paced.latencies["dashboard_refresh"]
        ),
        "  in the worker: next item": loadtest.percentiles(in_worker["next_item"]),
        "  in the worker: submit score": loadtest.percentiles(in_worker["submit_score"]),
        "  in the worker: dashboard 304": loadtest.percentiles(in_worker["dashboard_unchanged"]),
        "  in the worker: dashboard 200": loadtest.percentiles(in_worker["dashboard_refresh"]),
        "next item (closed loop)": loadtest.percentiles(closed.latencies["next_item"]),
        "submit score (closed loop)": loadtest.percentiles(closed.latencies["submit_score"]),
    }
    # (dashboard_refresh and dashboard_unchanged split the dashboard_poll requests by answer)
    sent = ("next_item", "submit_score", "dashboard_poll")
    requests_paced = sum(len(paced.latencies[kind]) for kind in sent)
    closed_requests = sum(len(closed.latencies[kind]) for kind in sent)
    return {
        "setup": {
            "readers": options["readers"],
            "dashboards": options["dashboards"],
            "workers": options["workers"],
            "think_s": options["think"],
            "paced_s": options["duration"],
            "closed_s": options["closed_duration"],
        },
        "latency": latency,
        "paced": {
            "scored": len(paced.accepted),
            "resent": paced.resent,
            "requests_per_s": requests_paced / options["duration"],
        },
        "closed_loop": {
            "clients": options["readers"],
            "scored": len(closed.accepted),
            "cycles_per_s": len(closed.accepted) / elapsed,
            "requests_per_s": closed_requests / elapsed,
            "submit_p99_ms": latency["submit score (closed loop)"].get("p99_ms", float("nan")),
        },
        "targets": {
            f"next item p99 < {TARGET_P99_MS:.0f} ms (paced)": latency["next item (paced)"].get(
                "p99_ms", float("inf")
            )
            < TARGET_P99_MS,
            f"submit score p99 < {TARGET_P99_MS:.0f} ms (paced)": latency[
                "submit score (paced)"
            ].get("p99_ms", float("inf"))
            < TARGET_P99_MS,
        },
    }


def exactly_once(study: Study, accepted: dict[str, dict[str, int]]) -> list[str]:
    """Every score the server answered 200 for is stored once, with its value, and nothing else."""
    problems = []
    stored = {}
    for public_id, key, value, ranks in Score.objects.filter(
        assignment__reader__study=study
    ).values_list("assignment__public_id", "question__key", "value", "ranks"):
        if (public_id, key) in stored:
            problems.append(f"duplicate score {public_id}/{key}")
        stored[(public_id, key)] = value if ranks is None else ranks
    expected = {
        (item, key): value for item, scores in accepted.items() for key, value in scores.items()
    }
    if stored != expected:
        missing = set(expected) - set(stored)
        extra = set(stored) - set(expected)
        changed = {k for k in set(expected) & set(stored) if expected[k] != stored[k]}
        problems.append(
            f"stored scores differ from accepted: {len(missing)} missing, {len(extra)} extra, "
            f"{len(changed)} with another value"
        )
    revisions = ScoreRevision.objects.filter(score__assignment__reader__study=study).count()
    if revisions != len(expected):
        problems.append(f"{revisions} revisions for {len(expected)} scores (resends must not add)")
    return problems
