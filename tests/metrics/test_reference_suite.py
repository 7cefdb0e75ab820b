"""HFEN, VIF and NQM against the reference study's own code, on 8-bit PNG pairs.

Pinned values: StanfordMIMI/deep-feature-mr-recon at HEAD 924eb9e (`dfd_mr_recon/metrics/
hfen.py`, `vif.py`, `nqm.py`), run on 2026-12-01 with pyrtools 1.1.1, scipy 1.17.1, numpy 2.4.6
and torch 2.14.1 on the PNGs in tests/metrics/data/reference_suite/ (make_pairs.py there).
Images loaded as the study's `reader_study_metrics.load_image` does (PIL "L", ToTensor), and
each metric called as that script calls it, `metric(reconstruction, reference)`; meddlr's base
class stubbed, since only the metrics' own `func` runs. VIF is pinned twice: as the study's
`func` computes it (reconstruction in the reference's place) and with the reference first.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_laplace

from metrics.engine import MetricEngine
from metrics.hfen import hfen
from metrics.image import MetricInputError
from metrics.nqm import nqm
from metrics.vif import vif

DATA = Path(__file__).parent / "data" / "reference_suite"
STUDY = {  # pair: (hfen, vif as the study's func computes it, vif reference first, nqm)
    "abdomen-fat-8x-256x200": (0.847748875617981, 0.26914607788274675, 0.19940241278853096, 6.462148672021705),
    "colin27-axial-2x": (0.38137954473495483, 0.6637698124797226, 0.6833526136568647, 19.659651141813544),
    "s1-axial-4x": (0.6610759496688843, 0.37318026148958233, 0.38808767320286974, 10.445671742752705),
}  # fmt: skip


def pair(name):
    load = lambda which: np.asarray(Image.open(DATA / f"{name}-{which}.png"), np.float64)  # noqa: E731
    return load("reference"), load("reconstruction")


@pytest.mark.parametrize("name", STUDY)
def test_vif_equals_the_studys_code(name):
    """float64 throughout, same pyramid: equal to 1e-12 in either order of the images."""
    gt, rec = pair(name)
    _, study_order, reference_first, _ = STUDY[name]
    assert vif(gt, rec) == pytest.approx(reference_first, rel=1e-12)
    # the study's VIF.func puts the reconstruction in the reference's place
    assert vif(rec, gt, maxval=gt.max()) == pytest.approx(study_order, rel=1e-12)


@pytest.mark.parametrize("name", STUDY)
def test_nqm_equals_the_studys_code(name):
    """The study feeds float32 tensors (ToTensor) through float64 NumPy: 1e-7 relative."""
    gt, rec = pair(name)
    assert nqm(gt, rec) == pytest.approx(STUDY[name][3], rel=1e-7)


@pytest.mark.parametrize("name", STUDY)
def test_hfen_is_the_2d_log_within_6e_4_of_the_studys_4d_one(name):
    """The study's LoG runs over a (1, 1, H, W) array: the same maths on 4-D float64 equals it
    to 1e-6 (its float32), and the 2-D LoG used here is within 6e-4 relative of it
    (measured: 1.7e-4, 5.0e-4, 2.2e-4 on these pairs)."""
    gt, rec = pair(name)
    study = STUDY[name][0]
    g, r = gt[None, None] / 255, rec[None, None] / 255
    four_d = np.linalg.norm(gaussian_laplace(g, 1.5) - gaussian_laplace(r, 1.5)) / np.linalg.norm(
        gaussian_laplace(g, 1.5)
    )
    assert four_d == pytest.approx(study, rel=1e-6)
    two_d = np.linalg.norm(gaussian_laplace(gt - rec, 1.5)) / np.linalg.norm(
        gaussian_laplace(gt, 1.5)
    )
    assert hfen(gt, rec) == pytest.approx(two_d, rel=1e-12)
    assert hfen(gt, rec) == pytest.approx(study, rel=6e-4)


def test_identical_pairs_are_perfect_and_scale_does_not_matter():
    gt, rec = pair("s1-axial-4x")
    assert hfen(gt, gt) == 0 and vif(gt, gt) == pytest.approx(1, abs=1e-12)
    assert nqm(gt, gt) == float("inf")
    for metric in (hfen, vif, nqm):  # both images divided by the reference's maximum
        assert metric(3 * gt, 3 * rec) == pytest.approx(metric(gt, rec), rel=1e-9)


def test_a_volume_is_the_mean_of_its_slices():
    (a, b), (c, d) = pair("s1-axial-4x"), pair("colin27-axial-2x")
    volume, recon = np.stack([a, c]), np.stack([b, d])
    peak = volume.max()
    for metric in (hfen, vif, nqm):
        expected = np.mean([metric(a, b, maxval=peak), metric(c, d, maxval=peak)])
        assert metric(volume, recon) == pytest.approx(expected, rel=1e-12)


def test_bad_pairs_are_clear_errors():
    gt, rec = pair("s1-axial-4x")
    for metric in (hfen, vif, nqm):
        with pytest.raises(MetricInputError, match="shape mismatch"):
            metric(gt, rec[:, :-1])
        with pytest.raises(MetricInputError, match="NaN or infinite"):
            metric(gt, np.where(rec > 100, np.nan, rec))


def test_the_engine_computes_the_suite_per_case_with_errors_per_reconstruction(tmp_path):
    gt, rec = pair("s1-axial-4x")
    engine = MetricEngine(["hfen", "vif", "nqm"], weights_dir=tmp_path)
    by_metric = engine.by_metric(gt, [rec, rec[:, :-1], gt])
    for name, function in (("hfen", hfen), ("vif", vif), ("nqm", nqm)):
        good, bad, identical = by_metric[name]
        assert good == pytest.approx(function(gt, rec), rel=1e-12)
        assert isinstance(bad, MetricInputError)
        assert identical == function(gt, gt)


def test_each_metric_computes_at_its_declared_minimum_and_is_refused_below_it():
    """The declared minimum is the real one: VIF's pyramid is refused by pyrtools itself one
    pixel below it (so the check is not stricter than needed) and every metric of the suite
    computes at it."""
    from pyrtools.pyramids import SteerablePyramidSpace

    from metrics.engine import minimum_side

    assert minimum_side("vif") == 72
    with pytest.raises(ValueError, match="Cannot build pyramid"):
        SteerablePyramidSpace(np.ones((71, 200)), 4, 5, "reflect1")
    rng = np.random.default_rng(2)
    for name in ("psnr", "ssim", "nmse", "hfen", "vif", "nqm"):
        side = minimum_side(name)
        for shape, computes in (((side, side + 30), True), ((side + 30, side - 1), False)):
            reference = rng.random(shape) + 1
            (value,) = MetricEngine([name], weights_dir=Path("/nonexistent")).by_metric(
                reference, [reference + 0.1 * rng.random(shape)]
            )[name]
            if computes:
                assert isinstance(value, float) and np.isfinite(value), (name, value)
            else:
                assert f"are too small (it needs at least {side} x {side})" in str(value)
