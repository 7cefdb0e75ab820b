"""Weights checked before anything loads, per-metric failures, image sizes, and versions that
name the file a value was computed with."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.dfd.encoders import ENCODERS
from metrics.dfd.weights import (
    EFFICIENTNET_LITE0_FILE,
    RADIMAGENET_FILE,
    WeightsChecksumError,
    availability,
    weights_version,
)
from metrics.engine import MetricEngine, metric_version
from metrics.image import MetricInputError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tampered(tmp_path):
    """A weights folder whose EfficientNet-Lite0 file is not the registered one."""
    (tmp_path / EFFICIENTNET_LITE0_FILE.filename).write_bytes(b"not the published weights")
    return tmp_path


def test_a_file_failing_its_checksum_is_unavailable_with_the_reason(tampered):
    available, reason = availability(ENCODERS["dfd-efficientnet-lite0"], tampered)
    assert not available and "does not match the registered" in reason
    listing = subprocess.run(
        [sys.executable, "-m", "metrics", "list", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"DFD_WEIGHTS_DIR": str(tampered), "PATH": "/usr/bin:/bin"},
    )
    entry = next(e for e in json.loads(listing.stdout) if e["name"] == "dfd-efficientnet-lite0")
    assert entry["available"] is False and "does not match the registered" in entry["reason"]


def test_a_failing_encoder_is_its_own_metrics_error_and_the_rest_are_computed(tampered):
    reference = np.random.default_rng(0).random((64, 64)) + 1
    names = ["psnr", "hfen", "dfd-efficientnet-lite0", "dfd-resnet50-random"]
    with pytest.raises(WeightsChecksumError):
        MetricEngine(names, weights_dir=tampered)  # the command line stops, with the reason
    engine = MetricEngine(names, weights_dir=tampered, tolerate_load_errors=True)
    results = engine.by_metric(reference, [reference * 0.9, reference * 0.8])
    assert all(isinstance(e, WeightsChecksumError) for e in results["dfd-efficientnet-lite0"])
    for name in ("psnr", "hfen", "dfd-resnet50-random"):
        assert all(isinstance(v, float) for v in results[name]), name


def test_an_image_too_small_for_an_encoder_is_a_per_metric_error(tmp_path):
    small = np.random.default_rng(0).random((12, 12)) + 1
    engine = MetricEngine(["psnr", "dfd-efficientnet-lite0"], weights_dir=tmp_path)
    results = engine.by_metric(small, [small * 0.9])
    assert isinstance(results["psnr"][0], float)
    (error,) = results["dfd-efficientnet-lite0"]
    assert isinstance(error, MetricInputError) and "too small" in str(error)
    np.save(tmp_path / "a.npy", small)
    np.save(tmp_path / "b.npy", small * 0.9)
    compare = subprocess.run(
        [sys.executable, "-m", "metrics", "compare", tmp_path / "a.npy", tmp_path / "b.npy",
         "--metric", "dfd-efficientnet-lite0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert compare.returncode == 2 and compare.stderr.count("\n") == 1
    assert "too small" in compare.stderr and "Traceback" not in compare.stderr


def test_every_encoder_measures_at_its_declared_minimum_size(tmp_path):
    for name in ("dfd-resnet50-random", "dfd-efficientnet-lite0", "dfd-ssfd-local"):
        side = ENCODERS[name].min_side
        image = np.random.default_rng(1).random((side, side)) + 1
        (value,) = MetricEngine([name], weights_dir=tmp_path).by_metric(
            image, [image[::-1].copy()]
        )[name]
        assert isinstance(value, float) and value > 0, name


def test_two_user_supplied_files_never_share_a_version(tmp_path):
    spec = ENCODERS["dfd-radimagenet-resnet50"]
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, seed in ((first, 0), (second, 1)):
        folder.mkdir()
        torch.save({"seed": torch.tensor(seed)}, folder / RADIMAGENET_FILE.filename)
    one, two = weights_version(spec, first), weights_version(spec, second)
    assert one != two and one.startswith(spec.weights_version + "+")
    assert metric_version("dfd-radimagenet-resnet50", "fp32", first) == one
    assert weights_version(spec, tmp_path) == spec.weights_version, "no file: the bare version"
    registered = ENCODERS["dfd-efficientnet-lite0"]
    assert weights_version(registered, first) == registered.weights_version, (
        "a registered checksum already pins the file"
    )
