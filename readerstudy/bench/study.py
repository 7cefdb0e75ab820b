"""`make bench-study` (`BENCH_ARGS` for the size): a whole study through the pipeline, end to
end as a researcher runs it, stage by stage (issue 21).

1. **generate**: simulated volumes (the shipped real MR slices, one per volume, varied from
   slice to slice) and their zero-filled reconstructions (fixtures.simulation: random and
   equispaced fastMRI masks at each acceleration), as `.npy` files and a manifest;
2. **import**: `manage.py import_study` in its own process: rows per second and peak memory;
3. **workers**: real `celery worker` processes on the configured broker and database compute
   every configured metric of every case; timed from their start until every value is stored,
   against **the pure engine** (metrics.engine.MetricEngine) on the same images in this
   process, per metric and all together (the overhead ratio: image loading, task dispatch,
   database writes);
4. **dashboard**: simulated readers score every reconstruction, and the dashboard's analysis is
   built at that size: once in a fresh process (imports, memory not yet taken from the
   system), then `--refreshes` more times, as a running server refreshes it.

The workers hold one message beyond the one they run (CELERY_WORKER_PREFETCH_MULTIPLIER=2,
as docs/deployment.md advises for a metrics-only worker) unless the environment says otherwise.
Everything runs on a scratch data folder. The database and broker are the embedded defaults
(SQLite for both) unless BENCH_DATABASE_URL and BENCH_BROKER_URL name others, e.g. PostgreSQL
and Redis (never the server's own DATABASE_URL: the benchmark empties its database first, so a
PostgreSQL database's name must end in `_bench`).

    python -m readerstudy.bench.study [--volumes 4] [--slices 8] [--size 128]
        [--accelerations 2,4,8] [--readers 10] [--workers 1] [--refreshes 3]
        [--json RESULT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
MASKS = ("random", "equispaced")


def write_study(folder: Path, args: argparse.Namespace) -> tuple[Path, int]:
    """Volumes and reconstructions as .npy files and their manifest; (manifest, rows)."""
    from skimage.transform import resize

    from fixtures.images import load_slices
    from fixtures.simulation import zero_filled_series

    rng = np.random.default_rng(args.seed)
    slices = list(load_slices().values())
    rows = ["case,reference,reconstruction,method,acceleration"]
    accelerations = tuple(args.accelerations)
    bias_rows, bias_columns = np.mgrid[0 : args.size, 0 : args.size] / args.size
    for volume in range(args.volumes):
        base = resize(slices[volume % len(slices)], (args.size, args.size), anti_aliasing=True)
        # Volumes drawn from the same shipped slice get their own smooth intensity bias (as
        # a coil's sensitivity gives), so that no two volumes, and none of their
        # reconstructions' metric values, are identical: real studies have no such ties.
        phase = rng.uniform(0, 2 * np.pi, size=2)
        bias = np.sin(2 * np.pi * bias_rows + phase[0]) * np.cos(np.pi * bias_columns + phase[1])
        base = base * (1 + 0.15 * bias)
        # Neighbouring slices of one volume: the same anatomy, gently shifted and reweighted.
        reference = np.stack(
            [
                np.roll(base, k - args.slices // 2, axis=0) * (1 + 0.05 * np.sin(k))
                for k in range(args.slices)
            ]
        ).astype(np.float32)
        case = f"vol-{volume:04d}"
        (folder / case).mkdir()
        np.save(folder / case / "reference.npy", reference)
        for mask in MASKS:
            per_slice = [
                zero_filled_series(s, accelerations, rng=rng, mask=mask) for s in reference
            ]
            for k, acceleration in enumerate(accelerations):
                name = f"{case}/zf-{mask}-{acceleration:g}x.npy"
                np.save(folder / name, np.stack([s[k] for s in per_slice]).astype(np.float32))
                rows.append(
                    f"{case},{case}/reference.npy,{name},zero-filled-{mask},{acceleration:g}"
                )
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest, len(rows) - 1


def scratch_environment(data: Path) -> dict[str, str]:
    """The settings of a scratch server: embedded SQLite database and broker unless the
    environment names others."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "readerstudy.config.settings",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-study-only"),
        "READERSTUDY_DATA_DIR": str(data),
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{data / 'db.sqlite3'}",
        "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL")
        or f"sqla+sqlite:///{data / 'broker.sqlite3'}",
        "DJANGO_DEBUG": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        # The benchmark's workers do nothing but the metrics queue (docs/deployment.md).
        "CELERY_WORKER_PREFETCH_MULTIPLIER": os.environ.get(
            "CELERY_WORKER_PREFETCH_MULTIPLIER", "2"
        ),
    }


def timed_child(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """(seconds, peak resident MiB, exit status) of a child process."""
    started = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def pure_engine(names: list[str], cases: list[Any]) -> dict[str, float]:
    """Seconds the metric engine alone takes on every case (images already in memory, the
    engine warm): per metric, and for all metrics in one engine as a worker runs them."""
    from django.conf import settings

    from metrics.device import resolve_device
    from metrics.tasks import configured_engine

    device = resolve_device(settings.METRICS_DEVICE)
    images = [
        (case.load_reference(), [r.load_image() for r in case.reconstructions.order_by("pk")])
        for case in cases
    ]

    def run(metric_names: list[str]) -> float:
        engine = configured_engine(metric_names, device)
        # Warm (untimed) on the first case: a first call's imports would land on whichever
        # metric runs first; the workers' cold start is in their own figure.
        engine.by_metric(*images[0])
        started = time.perf_counter()
        for reference, reconstructions in images:
            engine.by_metric(reference, reconstructions)
        return time.perf_counter() - started

    timings = {name: run([name]) for name in names}
    timings["all"] = run(names)
    return timings


def simulate_readers(study, readers: int, seed: int) -> int:
    """Every reader scores every reconstruction on every Likert question; rows written."""
    from django.contrib.auth import get_user_model

    from readerstudy.models import Score

    rng = np.random.default_rng(seed)
    users = get_user_model()
    scores = []
    for number in range(readers):
        reader = study.assign_reader(users.objects.create(username=f"bench-reader-{number}"))
        questions = list(study.questions.filter(kind="likert"))
        for item in reader.assignments.select_related("reconstruction"):
            quality = 5 - np.log2(item.reconstruction.acceleration)
            for question in questions:
                value = int(np.clip(round(quality + rng.normal(0, 0.7)), 1, 5))
                scores.append(Score(assignment=item, question=question, value=value))
    Score.objects.bulk_create(scores, batch_size=5000)
    return len(scores)


def wait_for_values(
    expected: int, timeout: float, workers: list[subprocess.Popen]
) -> tuple[float, float]:
    """Seconds until the first and until all `expected` metric values are stored (polled
    every 0.2 s): the first includes the workers' start (imports, models)."""
    from metrics.models import MetricValue

    started = time.perf_counter()
    first = None
    while (stored := MetricValue.objects.count()) < expected:
        if first is None and stored:
            first = time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{stored} of {expected} values stored")
        if any(worker.poll() is not None for worker in workers):
            raise RuntimeError("a worker stopped; see its log")
        time.sleep(0.2)
    done = time.perf_counter() - started
    return (done if first is None else first), done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="matrix size of each slice")
    parser.add_argument(
        "--accelerations", type=lambda text: [float(a) for a in text.split(",")], default=[2, 4, 8]
    )
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="celery worker processes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the workers")
    parser.add_argument(
        "--refreshes",
        type=int,
        default=3,
        help="dashboard refreshes timed after the first (their median is reported)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--keep", type=Path, help="a new folder to run in and keep (images, database, logs)"
    )
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True)  # a new folder: it is the scratch data folder
        result = run(args.keep, args)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-study-") as scratch:
            result = run(Path(scratch), args)
    print_table(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def print_table(result: dict[str, Any]) -> None:
    size, metrics, board = result["size"], result["metrics"], result["dashboard"]
    print(
        f"{size['volumes']} volumes x {size['slices']} slices of {size['matrix']}^2: "
        f"{size['reconstructions']} reconstructions, {size['slice_pairs']:,} slice pairs; "
        f"{len(metrics['names'])} metrics ({', '.join(metrics['names'])}); "
        f"{size['workers']} worker(s), prefetch multiplier {size['prefetch_multiplier']}; "
        f"database {size['database']}, broker {size['broker']}"
    )
    rows = [
        (
            "import",
            f"{result['import']['seconds']} s",
            f"{result['import']['rows_per_s']} rows/s, peak {result['import']['peak_mib']} MiB",
        ),
        (
            "workers: every value stored",
            f"{metrics['workers_s']} s",
            f"{metrics['workers_pairs_per_s']} pairs/s, {metrics['values_per_s']} values/s "
            f"(first value after {metrics['workers_first_value_s']} s)",
        ),
        (
            "pure engine, same images",
            f"{metrics['engine_s']} s",
            f"{metrics['engine_pairs_per_s']} pairs/s; overhead ratio {metrics['overhead_ratio']}",
        ),
        *[
            (f"  engine: {name} alone", "", f"{rate} pairs/s")
            for name, rate in metrics["engine_pairs_per_s_by_metric"].items()
        ],
        (
            "dashboard refresh",
            f"{board['refresh_s']} s",
            f"{board['scores']:,} scores, {board['reconstructions_in_analysis']} reconstructions x "
            f"{board['metrics_in_analysis']} metrics (median of the later ones; "
            f"first in the process {board['first_refresh_s']} s)",
        ),
        (
            "a changed score on the dashboard",
            f"{board['new_score_seen_s']} s",
            f"polled through the API's path, analysed by a running worker in "
            f"{board['worker_analysis_s']:.2f} s (its first: seen after "
            f"{board['new_score_first_seen_s']} s); the dashboard polls every "
            f"{int(os.environ.get('DASHBOARD_POLL_MS', 2000)) / 1000:g} s on top",
        ),
    ]
    for stage, seconds, detail in rows:
        print(f"{stage:<30} {seconds:>10}  {detail}")


def run(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    images = scratch / "images"
    images.mkdir()
    data = scratch / "data"
    data.mkdir()
    env = scratch_environment(data)
    database = env["DATABASE_URL"]
    if not database.startswith("sqlite") and not database.rstrip("/").endswith("_bench"):
        raise SystemExit(
            f"BENCH_DATABASE_URL {database.split('@')[-1]!r}: the benchmark empties its "
            "database, so its name must end in _bench"
        )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from readerstudy.bench.freshness import seconds_until_seen
    from readerstudy.config.celery import worker_command
    from readerstudy.dashboard import build_payload
    from readerstudy.dashboard_data import data_version
    from readerstudy.models import Study

    call_command("migrate", verbosity=0)
    if not env["DATABASE_URL"].startswith("sqlite"):
        call_command("flush", interactive=False, verbosity=0)  # a scratch database, emptied
    started = time.perf_counter()
    manifest, rows = write_study(images, args)
    generate_s = time.perf_counter() - started
    pairs = rows * args.slices
    report: dict[str, Any] = {
        "size": {
            "volumes": args.volumes,
            "slices": args.slices,
            "matrix": args.size,
            "reconstructions": rows,
            "slice_pairs": pairs,
            "readers": args.readers,
            "workers": args.workers,
            "prefetch_multiplier": int(env["CELERY_WORKER_PREFETCH_MULTIPLIER"]),
            "database": env["DATABASE_URL"].split(":", 1)[0],
            "broker": env["CELERY_BROKER_URL"].split(":", 1)[0],
        },
        "generate_s": round(generate_s, 2),
    }

    import_s, import_mib, status = timed_child(
        [
            sys.executable,
            "manage.py",
            "import_study",
            str(manifest),
            "--study",
            "bench",
            "--title",
            "Pipeline benchmark",
        ],
        env,
        scratch / "import.log",
    )
    if status != 0:
        raise RuntimeError(f"import failed: {(scratch / 'import.log').read_text()[-2000:]}")
    report["import"] = {
        "seconds": round(import_s, 2),
        "rows_per_s": round(rows / import_s, 1),
        "peak_mib": round(import_mib),
    }

    from metrics.models import configured_metrics

    study = Study.objects.get(slug="bench")
    names = configured_metrics()
    expected = rows * len(names)
    logs = [(scratch / f"worker-{k}.log").open("w") for k in range(args.workers)]
    workers = [
        subprocess.Popen(
            worker_command(
                sys.executable, "--without-gossip", "--without-mingle", "-n", f"bench{k}@%h"
            ),
            cwd=REPOSITORY,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for k, log in enumerate(logs)
    ]
    try:
        first_s, worker_s = wait_for_values(expected, args.timeout, workers)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for log in logs:
            log.close()
    engine = pure_engine(names, list(study.cases.order_by("pk")))
    report["metrics"] = {
        "names": names,
        "values": expected,
        "workers_s": round(worker_s, 2),
        "workers_first_value_s": round(first_s, 2),
        "workers_pairs_per_s": round(pairs / worker_s, 1),
        "values_per_s": round(expected / worker_s, 1),
        "engine_s": round(engine["all"], 2),
        "engine_pairs_per_s": round(pairs / engine["all"], 1),
        "overhead_ratio": round(worker_s / engine["all"], 2),
        "engine_pairs_per_s_by_metric": {name: round(pairs / engine[name], 1) for name in names},
    }

    started = time.perf_counter()
    scores = simulate_readers(study, args.readers, args.seed)
    readers_s = time.perf_counter() - started
    # The first refresh in a process also pays for imports and for memory the process has not
    # yet taken from the system; a running server's refreshes are the later ones.
    refreshes = []
    for _ in range(1 + args.refreshes):
        started = time.perf_counter()
        payload = build_payload(study, data_version(study))
        refreshes.append(time.perf_counter() - started)
    analysed = payload["analysis"] or {}
    freshness = seconds_until_seen(study, env, scratch / "dashboard-worker.log")
    report["dashboard"] = {
        "scores": scores,
        "assign_and_score_s": round(readers_s, 2),
        "first_refresh_s": round(refreshes[0], 2),
        "refresh_s": round(float(np.median(refreshes[1:] or refreshes)), 2),
        "refreshes_s": [round(seconds, 2) for seconds in refreshes],
        "metrics_in_analysis": len(payload["metrics"]),
        "reconstructions_in_analysis": analysed.get("n_reconstructions"),
        "new_score_seen_s": freshness["seen_s"],
        "new_score_first_seen_s": freshness["first_seen_s"],
        "worker_analysis_s": freshness["analysis_s"],
    }
    report["peak_mib_this_process"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return report


if __name__ == "__main__":
    raise SystemExit(main())
