"""The metric lab (metrics/lab.py, `python -m metrics lab`): its summaries on worked examples,
against scipy, and end to end through the real metric engine and the command line."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.transform import resize

from fixtures.images import load_slices
from metrics.engine import MetricEngine
from metrics.lab import (
    JND_FRACTION,
    aligned_monotonicity,
    noise_response_range,
    run_lab,
    shift_to_noise,
)

CHEAP = ["psnr", "ssim", "nmse", "hfen"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def references():
    slices = list(load_slices().values())[:2]
    return [resize(s.astype(np.float64), (96, 96), anti_aliasing=True) for s in slices]


@pytest.fixture(scope="module")
def lab(references, tmp_path_factory):
    engine = MetricEngine(CHEAP, weights_dir=tmp_path_factory.mktemp("weights"))
    return run_lab(references, engine, levels=6, seed=3)


def test_monotonicity_is_spearman_of_badness_with_severity_averaged_over_references():
    severities = [1, 2, 3, 4, 5]
    badness = np.array([[0.1, 0.3, 0.2, 0.5, 0.9], [5, 4, 3, 2, 1.0]])
    expected = np.mean([spearmanr(severities, row).statistic for row in badness])
    assert aligned_monotonicity(severities, badness) == pytest.approx(expected, abs=1e-12)
    assert aligned_monotonicity(severities, badness[:1]) == pytest.approx(0.9)
    assert aligned_monotonicity(severities, np.ones((1, 5))) is None, "a flat metric has none"


def test_noise_onset_and_saturation_on_a_worked_example():
    severities = [0.01, 0.1, 1, 10, 100]
    # Change from the mildest level: 0, 0.04, 0.5, 0.96, 1 of the whole response.
    badness = np.array([[2.0, 2.04, 2.5, 2.96, 3.0]])
    assert noise_response_range(severities, badness) == (1, 10)
    assert JND_FRACTION == 0.05
    assert noise_response_range(severities, np.full((1, 5), 2.0)) == (None, None)
    # Still rising at the end: 95 % is reached only at the strongest level, not a saturation.
    rising = np.array([[2.0, 2.04, 2.5, 2.9, 3.0]])
    assert noise_response_range(severities, rising) == (1, None)


def test_shift_to_noise_divides_by_the_matched_noise_on_a_worked_example():
    # From the mildest noise (badness -3): a shift moves the metric by 1 where noise of the
    # same NMSE moves it by 2 (ratio 1/2); at the second level the matched noise moves it by
    # 0.1, under 5 % of the sweep's whole response of 3 (null).
    badness = {"noise": np.array([[-3.0, -2.0, -1.0, 0.0]]), "translation": np.array([[-2.0, 5]])}
    ratio = shift_to_noise({}, badness, matched=np.array([[-1.0, -2.9]]))
    assert ratio["by_level"] == [pytest.approx(0.5), None]
    assert ratio["median"] == pytest.approx(0.5)


@pytest.mark.parametrize("levels", [6, 10])
def test_the_nmse_metric_counts_a_shift_exactly_as_noise_of_equal_nmse(references, levels):
    """NMSE against noise of the same NMSE is 1 by construction: it read 0.52 at 6 levels and
    0.85 at 10 when the matched noise was interpolated between the sweep's levels. PSNR, a
    function of the MSE alone, is 1 too."""
    engine = MetricEngine(["nmse", "psnr"], weights_dir=Path("/nonexistent"))
    result = run_lab(references, engine, kinds=["noise", "translation"], levels=levels, seed=3)
    for name in ("nmse", "psnr"):
        ratios = [r for r in result["summary"][name]["shift_to_noise"]["by_level"] if r]
        assert len(ratios) >= levels - 1, name
        assert np.allclose(ratios, 1.0, atol=0.01), (name, ratios)
    severities = np.array(result["matched_noise"]["severities"], dtype=float)
    assert np.isfinite(severities).all()
    assert result["summary"]["nmse"]["noise_saturation"] is None
    assert result["summary"]["nmse"]["noise_saturation_reason"].startswith("not reached")


def test_matched_noise_has_the_target_nmse_to_a_millionth(references):
    from metrics.image import nmse
    from metrics.lab import matched_noise

    for target in (1e-4, 3e-3, 0.2):
        std, copy = matched_noise(references[0], target, [1, 2, 3, 4])
        assert nmse(references[0], copy) == pytest.approx(target, rel=1e-6)
        assert std == pytest.approx(np.sqrt(target), rel=0.2), "about sqrt(NMSE) for noise"
    assert matched_noise(references[0], 1e6, [1, 2, 3, 4]) is None, "out of reach"


def test_pixel_metrics_get_worse_with_every_step_of_noise_and_blur(lab):
    for name in CHEAP:
        for kind in ("noise", "blur"):
            assert lab["summary"][name]["monotonicity"][kind] == pytest.approx(1.0), (name, kind)
    # NMSE is its own NMSE: the lab's NMSE column and the metric agree.
    assert np.allclose(
        lab["values"]["nmse"]["blur"], lab["perturbations"]["blur"]["nmse"], rtol=1e-6
    )


def test_curves_are_normalised_to_the_noise_sweep(lab):
    for name in CHEAP:
        noise = lab["curves"][name]["noise"]
        assert noise[0] == pytest.approx(0.0, abs=1e-12) and noise[-1] == pytest.approx(1.0)
    assert lab["normalisation"].startswith("0 = the metric at the mildest noise")


def test_the_result_is_strict_json_and_the_same_for_the_same_seed(lab, references, tmp_path):
    text = json.dumps(lab, allow_nan=False)
    engine = MetricEngine(CHEAP, weights_dir=tmp_path)
    again = run_lab(references, engine, levels=6, seed=3)
    assert again["values"] == lab["values"]
    other = run_lab(references[:1], engine, kinds=["noise"], levels=6, seed=4)
    assert other["values"]["psnr"]["noise"][0] != lab["values"]["psnr"]["noise"][0]
    assert json.loads(text)["levels"] == 6


def test_bad_requests_are_refused(references, tmp_path):
    engine = MetricEngine(["psnr"], weights_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown perturbation 'wobble'"):
        run_lab(references, engine, kinds=["wobble"])
    with pytest.raises(ValueError, match="at least 2 levels"):
        run_lab(references, engine, levels=1)
    with pytest.raises(ValueError, match="at least one reference"):
        run_lab([], engine)
    with pytest.raises(ValueError, match="reference 2 is constant"):
        run_lab([references[0], np.ones((16, 16))], engine)


def _lab_command(*args):
    return subprocess.run(
        [sys.executable, "-m", "metrics", "lab", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_the_command_writes_a_summary_json_and_plots(references, tmp_path):
    paths = []
    for k, image in enumerate(references):
        paths.append(tmp_path / f"ref{k}.npy")
        np.save(paths[-1], image.astype(np.float32))
    out = tmp_path / "lab.json"
    result = _lab_command(
        *paths,
        "--metric", "psnr", "--metric", "ssim",
        "--perturbation", "noise", "--perturbation", "translation", "--perturbation", "motion",
        "--levels", "4", "--json", out, "--plot", tmp_path / "lab.png"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header[:4] == ["metric", "mono:noise", "mono:translation", "mono:motion"]
    assert "shift/noise" in header
    saved = json.loads(out.read_text())
    assert saved["references"] == 2
    assert saved["kinds"] == ["noise", "translation", "motion"]
    assert (tmp_path / "lab.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = _lab_command(
        paths[0], "--metric", "nmse", "--levels", "3", "--plot", tmp_path / "lab.svg"
    )
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in (tmp_path / "lab.svg").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--levels", "1"], "--levels must be at least 2"),
        (["--plot", "curves.pdf"], "must end in .png or .svg"),
        (["--metric", "nope"], "unknown metric 'nope'"),
        # Before the run, not after it (issue 32): a missing folder for either output.
        (["--json", "missing/lab.json"], "no folder missing to write it into"),
        (["--plot", "missing/curves.png"], "no folder missing to write it into"),
    ],
)
def test_the_command_refuses_bad_options_in_one_line(args, message, tmp_path):
    np.save(tmp_path / "ref.npy", np.random.default_rng(0).random((32, 32)))
    result = _lab_command(tmp_path / "ref.npy", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_reference_with_negative_values_is_refused(references, tmp_path):
    engine = MetricEngine(["nmse"], weights_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="reference 1 has negative values"):
        run_lab([references[0] - references[0].mean()], engine)
    np.save(tmp_path / "signed.npy", references[0] - references[0].mean())
    result = _lab_command(tmp_path / "signed.npy", "--metric", "nmse", "--levels", "2")
    assert result.returncode == 2 and "has negative values" in result.stderr


def test_the_command_refuses_an_empty_or_unreadable_reference(tmp_path):
    np.save(tmp_path / "zeros.npy", np.zeros((32, 32)))
    result = _lab_command(tmp_path / "zeros.npy")
    assert result.returncode == 2 and "constant" in result.stderr
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    result = _lab_command(tmp_path / "broken.npy")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_without_noise_curves_span_each_metrics_own_range(references, tmp_path):
    engine = MetricEngine(["psnr", "ssim"], weights_dir=tmp_path)
    result = run_lab(references, engine, kinds=["blur", "translation"], levels=4)
    assert result["normalisation"].startswith("0 = the metric's least bad mean")
    for name in ("psnr", "ssim"):
        pooled = [v for curve in result["curves"][name].values() for v in curve]
        assert min(pooled) == pytest.approx(0.0) and max(pooled) == pytest.approx(1.0)
        assert "noise_onset" not in result["summary"][name]
        assert "shift_to_noise" not in result["summary"][name]
