"""Load on a running server over HTTP, the way readers and researchers use it (no Django here).

`paced`: each reader fetches their next item and submits a score every `think_s` seconds while
researchers poll the dashboard's analysis API as the page does (If-None-Match). `closed_loop`:
clients with no think time, to find the throughput ceiling. Every latency is wall-clock time
from request to complete response, measured in the client. `gunicorn` starts the server they
load (and that the fault tests drive).
"""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

REPOSITORY = Path(__file__).resolve().parents[2]


class ServerStartError(RuntimeError):
    """gunicorn exited, answered with a server error, or was not up within a minute."""


# One access-log line per request: method, path, status, microseconds spent in the worker.
ACCESS_LOG_FORMAT = "%(m)s %(U)s %(s)s %(D)s"


@contextlib.contextmanager
def gunicorn(
    port: int, workers: int, env: dict[str, str], log: Path, access_log: Path | None = None
) -> Iterator[str]:
    """The app under gunicorn (sync workers) on loopback with `env`, for the length of a
    `with`; yields its base URL once it answers, its output goes to `log` (and one
    ACCESS_LOG_FORMAT line per request to `access_log`, when given)."""
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "readerstudy.config.wsgi"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "60"]
    if access_log is not None:
        command += ["--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT]
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_up(server, base, log)
            yield base
        finally:
            _stop(server)


def _wait_until_up(server: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            # Anonymous, the API answers 403 once the app is up.
            with urllib.request.urlopen(f"{base}/api/studies/", timeout=5):
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return
            raise ServerStartError(f"gunicorn answers {error.code}; see {log}") from None
        except OSError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                raise ServerStartError(f"gunicorn did not start ({error}); see {log}") from None
            time.sleep(0.25)


@dataclass
class Client:
    """A signed-in user: the session and CSRF cookies, and the header a write needs."""

    username: str
    session_id: str
    csrf_token: str

    def session(self, base_url: str) -> requests.Session:
        http = requests.Session()
        host = base_url.split("//", 1)[1].split(":")[0]
        http.cookies.set("sessionid", self.session_id, domain=host)
        http.cookies.set("csrftoken", self.csrf_token, domain=host)
        http.headers.update({"X-CSRFToken": self.csrf_token, "Referer": base_url})
        return http


@dataclass
class Recorder:
    """Latencies per kind of request, errors, and every score the server accepted."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    accepted: dict[str, dict[str, int]] = field(default_factory=dict)
    resent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, kind: str, call, *args, **kwargs) -> requests.Response | None:
        start = time.perf_counter()
        try:
            response = call(*args, timeout=30, **kwargs)
        except requests.RequestException as error:
            with self.lock:
                self.errors.append(f"{kind}: {error}")
            return None
        elapsed = time.perf_counter() - start
        with self.lock:
            self.latencies[kind].append(elapsed)
            if response.status_code >= 400:
                self.errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
        return response


REQUEST_KINDS = [
    ("GET", re.compile(r"^/api/studies/[^/]+/next/$"), "next_item"),
    ("PUT", re.compile(r"^/api/items/[^/]+/scores/$"), "submit_score"),
    ("GET", re.compile(r"^/api/studies/[^/]+/analysis/$"), "dashboard_poll"),
]


def server_times(access_log: Path, start: int, end: int) -> dict[str, list[float]]:
    """Seconds each request spent in a gunicorn worker, by kind, from the bytes
    [start, end) of an ACCESS_LOG_FORMAT log. Beside the client's figures, they tell time
    in the application from time waiting for a worker (and in the load generator itself)."""
    times = defaultdict(list)
    with access_log.open("rb") as log:
        log.seek(start)
        lines = log.read(end - start).decode().splitlines()
    for line in lines:
        method, path, status, microseconds = line.split()
        seconds = int(microseconds) / 1e6
        for kind_method, pattern, kind in REQUEST_KINDS:
            if method == kind_method and pattern.match(path):
                times[kind].append(seconds)
                if kind == "dashboard_poll":
                    answer = "dashboard_unchanged" if status == "304" else "dashboard_refresh"
                    times[answer].append(seconds)
                break
    return times


def settled_size(path: Path, quiet_s: float = 0.3, timeout_s: float = 10.0) -> int:
    """The size of a log once nothing has been appended for `quiet_s` (a worker writes its
    access line just after sending the response the client has already seen)."""
    deadline = time.monotonic() + timeout_s
    size = path.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = path.stat().st_size
        if now == size:
            break
        size = now
    return size


def task_seconds(log: Path, name: str) -> dict[str, float]:
    """How many `name` tasks a Celery worker's log says succeeded, and their run times."""
    pattern = re.compile(rf"Task [\w.]*{name}\[[^\]]+\] succeeded in ([0-9.]+)s")
    times = [float(m.group(1)) for m in pattern.finditer(log.read_text())] if log.exists() else []
    if not times:
        return {"n": 0}
    return {
        "n": len(times),
        "p50_s": float(np.percentile(times, 50)),
        "max_s": float(max(times)),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000
    if array.size == 0:
        return {"n": 0}
    return {
        "n": int(array.size),
        "p50_ms": float(np.percentile(array, 50)),
        "p95_ms": float(np.percentile(array, 95)),
        "p99_ms": float(np.percentile(array, 99)),
        "max_ms": float(array.max()),
    }


def answers(item: dict) -> dict:
    """A reader's answers to an item: a Likert value per question, or a ranking of the images
    shown (a forced choice is a ranking of two)."""
    shown = len(item["images"]["reconstructions"])
    out: dict = {}
    for question in item["questions"]:
        if question["kind"] == "likert":
            out[question["key"]] = random.randint(question["scale_min"], question["scale_max"])
        else:
            out[question["key"]] = random.sample(range(1, shown + 1), shown)
    return out


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A Celery worker (the dashboards' analyses run in one) with `env`, for a `with`."""
    from readerstudy.config.celery import worker_command

    command = worker_command(
        sys.executable, "--without-gossip", "--without-mingle", "--without-heartbeat"
    )
    with log.open("w") as output:
        worker = subprocess.Popen(
            command, cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            yield worker
        finally:
            _stop(worker)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def read_one(http: requests.Session, base: str, slug: str, rec: Recorder, resend: float) -> bool:
    """Fetch the next item and score it; False when the reader has nothing left."""
    page = rec.timed("next_item", http.get, f"{base}/api/studies/{slug}/next/")
    if page is None or page.status_code != 200 or page.json()["item"] is None:
        return False
    item = page.json()["item"]
    scores = answers(item)
    body = {"scores": scores, "seconds_spent": 2.0}
    url = f"{base}/api/items/{item['public_id']}/scores/"
    saved = rec.timed("submit_score", http.put, url, json=body)
    if saved is not None and saved.status_code == 200:
        with rec.lock:
            rec.accepted[item["public_id"]] = scores
        if random.random() < resend:  # a retried request or a double click: must not duplicate
            again = rec.timed("submit_score", http.put, url, json=body)
            if again is not None and again.status_code == 200:
                with rec.lock:
                    rec.resent += 1
    return True


def warm_up(base: str, slug: str, readers: list[Client], researchers: list[Client]) -> None:
    """One untimed request per client, so that connections and worker caches exist before
    anything is measured."""
    for client in readers:
        client.session(base).get(f"{base}/api/studies/{slug}/next/", timeout=60)
    for client in researchers:
        client.session(base).get(f"{base}/api/studies/{slug}/analysis/", timeout=60)


def paced(
    base: str,
    slug: str,
    readers: list[Client],
    researchers: list[Client],
    *,
    duration_s: float,
    think_s: float = 2.0,
    poll_s: float = 2.0,
    resend: float = 0.05,
) -> Recorder:
    """Readers score every `think_s` seconds while researchers poll the dashboard."""
    rec = Recorder()
    stop = time.monotonic() + duration_s

    def reader_loop(client: Client) -> None:
        http = client.session(base)
        # Readers do not start in step: spread the first request over one think time.
        time.sleep(random.uniform(0, think_s))
        while time.monotonic() < stop:
            started = time.monotonic()
            if not read_one(http, base, slug, rec, resend):
                return
            time.sleep(max(0.0, think_s - (time.monotonic() - started)))

    def dashboard_loop(client: Client) -> None:
        http = client.session(base)
        etag = None
        time.sleep(random.uniform(0, poll_s))
        while time.monotonic() < stop:
            started = time.monotonic()
            headers: dict[str, str] = {"If-None-Match": etag} if etag else {}
            url = f"{base}/api/studies/{slug}/analysis/"
            response = rec.timed("dashboard_poll", http.get, url, headers=headers)
            if response is not None and response.status_code == 200:
                # New data: the analysis behind the page was recomputed (or taken from the
                # cache the other researcher's poll filled).
                etag = response.headers.get("ETag")
                with rec.lock:
                    rec.latencies["dashboard_refresh"].append(time.monotonic() - started)
            elif response is not None and response.status_code == 304:
                with rec.lock:
                    rec.latencies["dashboard_unchanged"].append(time.monotonic() - started)
            time.sleep(max(0.0, poll_s - (time.monotonic() - started)))

    threads = [threading.Thread(target=reader_loop, args=(c,)) for c in readers]
    threads += [threading.Thread(target=dashboard_loop, args=(c,)) for c in researchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rec


def closed_loop(
    base: str, slug: str, readers: list[Client], *, duration_s: float
) -> tuple[Recorder, float]:
    """Readers with no think time; returns the recorder and the elapsed seconds."""
    rec = Recorder()
    stop = time.monotonic() + duration_s
    start = time.perf_counter()

    def loop(client: Client) -> None:
        http = client.session(base)
        while time.monotonic() < stop:
            if not read_one(http, base, slug, rec, resend=0.0):
                return

    threads = [threading.Thread(target=loop, args=(c,)) for c in readers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rec, time.perf_counter() - start
