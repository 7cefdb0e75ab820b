"""`python -m metrics` as a user runs it: a subprocess, its output and its exit status."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from fixtures.images import load_slice
from fixtures.simulation import fft2c, random_mask, zero_filled
from metrics.image import pixel_metrics_for_case

ROOT = Path(__file__).resolve().parents[2]


def run(*args, weights_dir=None):
    env = {**os.environ, "DFD_WEIGHTS_DIR": str(weights_dir or ROOT / "var/no-weights-here")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-m", "metrics", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    reference = load_slice("shoulder-t1-se").astype(np.float64)
    mask = random_mask(256, acceleration=4, center_fraction=0.08, rng=np.random.default_rng(0))
    reconstruction = np.abs(zero_filled(fft2c(reference), mask))
    np.save(folder / "ref.npy", reference)
    np.save(folder / "rec.npy", reconstruction)
    return folder, reference, reconstruction


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


def test_compare_json_prints_one_object_with_every_available_metric(pair):
    folder, reference, reconstruction = pair
    result = run("compare", folder / "ref.npy", folder / "rec.npy", "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert list(values)[:3] == ["psnr", "ssim", "nmse"]
    assert {"dfd-resnet50-random", "dfd-efficientnet-lite0"} <= set(values)
    assert "dfd-vgg16" not in values, "unavailable encoders are left out by default"
    expected = pixel_metrics_for_case(reference, [reconstruction])[0]
    for name in ("psnr", "ssim", "nmse"):
        assert values[name] == pytest.approx(expected[name], abs=1e-9)


def test_compare_selected_metrics_in_a_table(pair):
    folder, _, _ = pair
    result = run(
        "compare", folder / "ref.npy", folder / "rec.npy", "--metric", "ssim", "--metric", "psnr"
    )
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["ssim", "psnr"]


@pytest.mark.parametrize("suffix", [".png", ".nii.gz", ".h5"])
def test_compare_reads_other_formats(tmp_path, suffix):
    image = (load_slice("abdomen-fat")).astype(np.uint8)
    noisy = np.clip(
        image.astype(int) + np.random.default_rng(0).integers(-9, 10, image.shape), 0, 255
    ).astype(np.uint8)
    for name, data in (("ref", image), ("rec", noisy)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".png":
            Image.fromarray(data).save(path)
        elif suffix == ".nii.gz":
            nib.save(nib.Nifti1Image(data[:, :, None].astype(np.float32), np.eye(4)), path)
        else:
            with h5py.File(path, "w") as handle:
                handle["reconstruction_rss"] = data[None].astype(np.float32)
    result = run(
        "compare",
        tmp_path / f"ref{suffix}",
        tmp_path / f"rec{suffix}",
        "--metric",
        "psnr",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    expected = pixel_metrics_for_case(image.astype(float), [noisy.astype(float)])[0]["psnr"]
    assert json.loads(result.stdout)["psnr"] == pytest.approx(expected, abs=1e-9)


def test_compare_volume_is_the_mean_over_slices_for_ssim(tmp_path):
    rng = np.random.default_rng(2)
    volume = rng.random((3, 32, 32)) + 1
    noisy = volume + 0.1 * rng.standard_normal(volume.shape)
    np.save(tmp_path / "v.npy", volume)
    np.save(tmp_path / "n.npy", noisy)
    result = run("compare", tmp_path / "v.npy", tmp_path / "n.npy", "--metric", "ssim", "--json")
    expected = pixel_metrics_for_case(volume, [noisy])[0]["ssim"]
    assert json.loads(result.stdout)["ssim"] == pytest.approx(expected, abs=1e-12)


def test_identical_images_give_null_psnr_in_json(pair):
    folder, _, _ = pair
    result = run("compare", folder / "ref.npy", folder / "ref.npy", "--metric", "psnr", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == {"psnr": None}
    assert "infinite" in result.stderr


def test_bad_inputs_exit_2_with_one_line(tmp_path, pair):
    folder, _, _ = pair
    np.save(tmp_path / "small.npy", np.ones((16, 16)))
    np.save(tmp_path / "nan.npy", np.full((256, 256), np.nan))
    np.save(tmp_path / "flat.npy", np.ones((256, 256)))
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 200)
    ref, rec = folder / "ref.npy", folder / "rec.npy"
    assert_one_line_error(run("compare", tmp_path / "missing.npy", rec), "no such file")
    assert_one_line_error(run("compare", ref, tmp_path / "small.npy"), "shape mismatch")
    assert_one_line_error(run("compare", ref, tmp_path / "nan.npy"), "NaN")
    assert_one_line_error(run("compare", tmp_path / "flat.npy", rec), "constant")
    assert_one_line_error(
        run("compare", tmp_path / "broken.dcm", rec), "broken.dcm", "cannot read"
    )
    assert_one_line_error(run("compare", ref, rec, "--metric", "fsim"), "unknown metric 'fsim'")
    assert_one_line_error(
        run("compare", ref, rec, "--metric", "dfd-vgg16"), "fetch-weights dfd-vgg16"
    )


def test_weights_override_computes_with_a_researchers_checkpoint(tmp_path, pair):
    folder, _, _ = pair
    torch.manual_seed(0)
    checkpoint = tmp_path / "my-resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), checkpoint)
    result = run(
        "compare",
        folder / "ref.npy",
        folder / "rec.npy",
        "--metric",
        "dfd-resnet50",
        "--weights",
        f"dfd-resnet50={checkpoint}",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dfd-resnet50"] > 0
    assert "SHA-256" in result.stderr and str(checkpoint) in result.stderr
    bad = run(
        "compare", folder / "ref.npy", folder / "rec.npy", "--weights", "dfd-ssfd=/nope.ckpt"
    )
    assert_one_line_error(bad, "no such file")


def test_batch_writes_long_format_and_reports_bad_rows(tmp_path, pair):
    folder, reference, reconstruction = pair
    np.save(tmp_path / "ref.npy", reference)
    np.save(tmp_path / "rec.npy", reconstruction)
    np.save(tmp_path / "small.npy", np.ones((16, 16)))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "id,reference,reconstruction\nok-1,ref.npy,rec.npy\nbad-size,ref.npy,small.npy\n"
        "missing,ref.npy,nope.npy\nok-2,ref.npy,ref.npy\n"
    )
    result = run(
        "batch", manifest, "--out", tmp_path / "out.csv", "--metric", "psnr", "--metric", "ssim"
    )
    assert result.returncode == 1, "some rows failed"
    assert (
        "line 3: shape mismatch" in result.stderr
        and "line 4: nope.npy: no such file" in result.stderr.replace(str(tmp_path) + "/", "")
    )
    with (tmp_path / "out.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["metric"]) for r in rows] == [
        ("ok-1", "psnr"),
        ("ok-1", "ssim"),
        ("ok-2", "psnr"),
        ("ok-2", "ssim"),
    ]
    expected = pixel_metrics_for_case(reference, [reconstruction])[0]
    assert float(rows[0]["value"]) == pytest.approx(expected["psnr"], abs=1e-9)


def test_batch_refuses_a_manifest_without_the_columns(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("ref,rec\na,b\n")
    assert_one_line_error(
        run("batch", manifest, "--out", tmp_path / "o.csv"),
        "missing column(s) reference, reconstruction",
    )


def test_list_json_describes_every_metric(tmp_path):
    result = run("list", "--json", weights_dir=tmp_path)
    listing = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listing["psnr"] == {
        "name": "psnr",
        "kind": "pixel",
        "domain": None,
        "available": True,
        "polarity": 1,
    }
    assert {name: e["polarity"] for name, e in listing.items() if e["kind"] == "pixel"} == {
        "psnr": 1, "ssim": 1, "nmse": -1, "hfen": -1, "vif": 1, "nqm": 1,
    }  # fmt: skip
    assert {e["polarity"] for e in listing.values() if e["kind"] == "dfd"} == {-1}
    assert listing["dfd-efficientnet-lite0"]["available"] is True
    assert listing["dfd-radimagenet-resnet50"]["domain"] == "domain-adjacent"
    vgg = listing["dfd-lpips-vgg"]
    assert vgg["available"] is False and "fetch-weights dfd-lpips-vgg" in vgg["reason"]
    assert all(e["kind"] == "dfd" for n, e in listing.items() if n.startswith("dfd-"))


def test_fetch_weights_without_internet_fails_in_one_line(tmp_path):
    result = run("fetch-weights", "dfd-resnet50", weights_dir=tmp_path)
    assert_one_line_error(result, "cannot download", "resnet50-0676ba61.pth")
    assert not list(tmp_path.iterdir()), "no partial file is left behind"
    assert_one_line_error(
        run("fetch-weights", "dfd-radimagenet-resnet50", weights_dir=tmp_path), "cannot be fetched"
    )


def test_compare_reads_a_volume_past_the_servers_image_limit_and_refuses_past_its_own(tmp_path):
    """The command line reads a user's own files up to 2**27 voxels (a 400-slice 320 x 320
    volume is 41 M; the server takes 2**24 from uploads), and --max-voxels bounds it: one
    line, exit 2 (issue 31)."""
    big = tmp_path / "big.npy"  # a header declaring 2**25 voxels: read past the server's limit
    np.lib.format.open_memmap(big, mode="w+", dtype=np.uint8, shape=(32, 1024, 1024))[0, 0, 0] = 1
    assert run("compare", big, big, "--metric", "nmse", "--json").returncode == 0
    volume = np.zeros((2, 8, 8), np.float32)
    volume[:, 2:6, 2:6] = 1.0
    np.save(tmp_path / "v.npy", volume)
    ok = run(
        "compare", str(tmp_path / "v.npy"), str(tmp_path / "v.npy"), "--metric", "nmse", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    refused = run(
        "compare", str(tmp_path / "v.npy"), str(tmp_path / "v.npy"), "--max-voxels", "64"
    )
    assert refused.returncode == 2 and "more than the 64 allowed per image" in refused.stderr
    assert "Traceback" not in refused.stderr
