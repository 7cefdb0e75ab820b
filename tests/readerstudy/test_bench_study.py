"""`make bench-study` at a tiny size, as a check that every stage works end to end (import,
real Celery workers on the embedded broker, the pure engine beside them, the dashboard): not a
timed test."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_study_benchmark_runs_every_stage_and_stores_every_value(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "DJANGO_SETTINGS_MODULE",
            "CELERY_WORKER_PREFETCH_MULTIPLIER",
        )
    }
    env["METRICS_ENABLED"] = "psnr,ssim,nmse"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "readerstudy.bench.study",
            "--volumes",
            "2",
            "--slices",
            "2",
            "--size",
            "48",
            "--accelerations",
            "2,4",
            "--readers",
            "2",
            "--refreshes",
            "1",
            "--json",
            str(tmp_path / "result.json"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "result.json").read_text())
    # 2 volumes x 2 masks x 2 accelerations, 2 slices each.
    assert report["size"]["reconstructions"] == 8 and report["size"]["slice_pairs"] == 16
    assert report["metrics"]["values"] == 8 * 3
    assert report["metrics"]["names"] == ["psnr", "ssim", "nmse"]
    assert report["metrics"]["overhead_ratio"] > 0
    assert report["size"]["prefetch_multiplier"] == 2, "a metrics-only worker's setting"
    assert report["import"]["peak_mib"] > 0
    assert report["dashboard"]["reconstructions_in_analysis"] == 8
    assert report["dashboard"]["metrics_in_analysis"] == 3
    assert len(report["dashboard"]["refreshes_s"]) == 2
    # A changed answer was seen through the poll's path once a real worker had analysed it.
    assert report["dashboard"]["new_score_seen_s"] >= report["dashboard"]["worker_analysis_s"] > 0
    assert "a changed score on the dashboard" in result.stdout
    assert "overhead ratio" in result.stdout and "dashboard refresh" in result.stdout


def test_the_study_benchmark_refuses_a_database_it_would_empty():
    env = {**os.environ, "BENCH_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/readerstudy"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "readerstudy.bench.study", "--volumes", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "must end in _bench" in result.stderr


def test_volumes_drawn_from_one_shipped_slice_are_not_identical(tmp_path):
    """The benchmark reuses the ten shipped slices; volumes from the same one must still
    differ, or their metric values tie, which no real study has and which would time the
    analysis on the wrong data."""
    import argparse

    import numpy as np

    from readerstudy.bench.study import write_study

    args = argparse.Namespace(seed=0, volumes=12, slices=1, size=32, accelerations=[2])
    write_study(tmp_path, args)
    first, eleventh = (np.load(tmp_path / f"vol-{v:04d}" / "reference.npy") for v in (0, 10))
    assert not np.allclose(first, eleventh)
    assert np.corrcoef(first.ravel(), eleventh.ravel())[0, 1] > 0.9, "still the same anatomy"
