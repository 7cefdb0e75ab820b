"""`make bench-upload`: a study archive of a given size uploaded to gunicorn and imported by
the import task, end to end as a researcher's browser and a worker do it, on a scratch data
folder. Reports upload and import times and the peak memory of the web worker and of the
import, at two sizes, so that one sees whether memory grows with the archive (it must not).

    python -m readerstudy.bench.upload [--gigabytes 1.0] [--small-gigabytes 0.25]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from readerstudy.bench import loadtest

REPOSITORY = Path(__file__).resolve().parents[2]
VOLUME = (32, 256, 256)  # float32: 8 MiB per image, a small MR series
RECONSTRUCTIONS_PER_CASE = 3
PASSWORD = "bench-upload-Pw-1"


def write_archive(path: Path, gigabytes: float, seed: int = 0) -> tuple[int, int]:
    """Cases of one reference and three reconstructions (random volumes: MR data hardly
    compresses, nor does this) until the archive holds `gigabytes`; (cases, bytes)."""
    rng = np.random.default_rng(seed)
    per_image = int(np.prod(VOLUME)) * 4
    cases = max(1, round(gigabytes * 2**30 / (per_image * (1 + RECONSTRUCTIONS_PER_CASE))))
    rows = ["case,reference,reconstruction,method,acceleration"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for case in range(cases):
            reference = rng.random(VOLUME, dtype=np.float32) + 0.5
            _write_npy(archive, f"case-{case:03d}/reference.npy", reference)
            for k in range(RECONSTRUCTIONS_PER_CASE):
                noisy = reference + 0.05 * (k + 1) * rng.standard_normal(VOLUME, dtype=np.float32)
                _write_npy(archive, f"case-{case:03d}/rec-{k}.npy", noisy)
                rows.append(
                    f"case-{case:03d},case-{case:03d}/reference.npy,case-{case:03d}/rec-{k}.npy,m{k},{2 + 2 * k}"
                )
        archive.writestr("manifest.csv", "\n".join(rows) + "\n")
    return cases, path.stat().st_size


def _write_npy(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(name, "w", force_zip64=True) as out:
        np.save(out, array)


def _manage(env: dict[str, str], code: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]  # the shell may print a banner first


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    if found is None:
        raise SystemExit(f"no VmHWM in /proc/{pid}/status: peak memory needs Linux")
    return int(found.group(1)) / 1024


def _upload(base: str, archive: Path, session: str, csrf: str) -> tuple[float, dict]:
    """Stream the archive as the upload form does (multipart, one file); (seconds, reply)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="paths"\r\n\r\nstudy.zip\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="study.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=600)
    start = time.perf_counter()
    conn.putrequest("POST", "/api/studies/bench/imports/")
    for name, value in {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + archive.stat().st_size + len(tail)),
        "Cookie": f"sessionid={session}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
        "Accept": "application/json",
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(head)
    with archive.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            conn.send(chunk)
    conn.send(tail)
    response = conn.getresponse()
    reply = json.loads(response.read() or b"{}")
    if response.status != 202:
        raise SystemExit(f"upload refused ({response.status}): {reply}")
    return time.perf_counter() - start, reply


def run_size(gigabytes: float, folder: Path) -> dict:
    data = folder / f"data-{gigabytes:g}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "readerstudy.config.settings",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": "bench-upload-only",
        "READERSTUDY_DATA_DIR": str(data),
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "CELERY_BROKER_URL": f"sqla+sqlite:///{data / 'broker.sqlite3'}",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_SECURE_COOKIES": "false",
        "DJANGO_HSTS_SECONDS": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
    }
    data.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPOSITORY, env=env, check=True
    )
    # A researcher's session, as after signing in (bench_load's way), and a CSRF token.
    session = _manage(
        env,
        "from django.contrib.auth.models import User; from django.test import Client; "
        "from readerstudy.models import Study; "
        f"u = User.objects.create_user('bench', password='{PASSWORD}'); "
        "s = Study.objects.create(slug='bench', title='Upload benchmark'); "
        "s.add_default_questions(); s.researchers.add(u); "
        "c = Client(); c.force_login(u); print(c.cookies['sessionid'].value)",
    )
    csrf = uuid.uuid4().hex
    archive = folder / f"archive-{gigabytes:g}.zip"
    cases, size = write_archive(archive, gigabytes)
    with loadtest.gunicorn(_free_port(), 1, env, folder / "gunicorn.log") as base:
        master = int(
            subprocess.run(
                ["pgrep", "-f", "-o", "gunicorn readerstudy.config.wsgi"],
                capture_output=True,
                text=True,
            ).stdout.split()[0]
        )
        upload_s, reply = _upload(base, archive, session, csrf)
        web_peak = max(_peak_rss_mib(pid) for pid in _children(master))
    archive.unlink()
    start = time.perf_counter()
    task = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from readerstudy.tasks import import_upload; import_upload(import_pk={reply['id']})",
        ],
        cwd=REPOSITORY,
        env=env,
    )
    _, status, usage = os.wait4(task.pid, 0)
    import_s = time.perf_counter() - start
    outcome = json.loads(
        _manage(
            env,
            (
                "import json; from readerstudy.models import StudyImport; "
                f"j = StudyImport.objects.get(pk={reply['id']}); "
                "print(json.dumps({'state': j.state, 'cases': j.cases_added, 'problems': j.problems[:3]}))"
            ),
        )
    )
    return {
        "archive_bytes": size,
        "cases": cases,
        "images": cases * (1 + RECONSTRUCTIONS_PER_CASE),
        "upload_s": round(upload_s, 2),
        "upload_mib_per_s": round(size / 2**20 / upload_s, 1),
        "web_worker_peak_rss_mib": round(web_peak, 1),
        "import_s": round(import_s, 2),
        "import_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "import": outcome,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--small-gigabytes", type=float, default=0.25)
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as folder:
        for size in (args.small_gigabytes, args.gigabytes):
            results[f"{size:g} GB"] = run_size(size, Path(folder))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
