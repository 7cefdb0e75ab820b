"""Pixel metrics (metrics/image.py) against fastMRI's evaluate.py formulas via scikit-image."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from fixtures.images import load_slice
from fixtures.simulation import fft2c, random_mask, zero_filled
from metrics.image import (
    CHUNK_PIXELS,
    MetricInputError,
    nmse,
    pixel_metrics_for_case,
    psnr,
    slice_chunks,
    ssim,
    values_from_sums,
)
from metrics.pixel_torch import case_sums_on_device, ssim_batch

TOLERANCE = 1e-6  # float64 throughout; the bound for agreement with fastMRI/scikit-image


def fastmri_psnr(gt, pred, maxval=None):
    """fastmri/evaluate.py @91f2df4: skimage PSNR on the whole volume, data_range=gt.max()."""
    return peak_signal_noise_ratio(gt, pred, data_range=gt.max() if maxval is None else maxval)


def fastmri_ssim(gt, pred, maxval=None):
    """fastmri/evaluate.py @91f2df4: mean over slices of 2-D skimage SSIM, volume's maxval."""
    maxval = gt.max() if maxval is None else maxval
    gt, pred = np.atleast_3d(gt.T).T, np.atleast_3d(pred.T).T
    return np.mean(
        [structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred, strict=True)]
    )


def fastmri_nmse(gt, pred):
    """fastmri/evaluate.py @91f2df4."""
    return np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2


def noisy_pair(shape, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape) * 3.0
    return gt, np.abs(gt + 0.2 * rng.standard_normal(shape))


@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (4, 40, 33), (1, 320, 320)])
def test_pixel_metrics_match_fastmri_evaluate(shape):
    gt, pred = noisy_pair(shape)
    assert abs(psnr(gt, pred) - fastmri_psnr(gt, pred)) < TOLERANCE
    assert abs(ssim(gt, pred) - fastmri_ssim(gt, pred)) < TOLERANCE
    assert abs(nmse(gt, pred) - fastmri_nmse(gt, pred)) < TOLERANCE


def test_a_volume_taken_in_chunks_equals_fastmri_and_the_one_pass(monkeypatch):
    """A volume larger than one chunk of slices is summed chunk by chunk (flat memory): the
    same values as the whole volume at once, and as fastMRI's functions."""
    gt, pred = noisy_pair((11, 40, 36), seed=3)
    others = [np.abs(pred + 0.1), np.abs(pred - 0.05)]
    whole = pixel_metrics_for_case(gt, [pred, *others])
    monkeypatch.setitem(CHUNK_PIXELS, "cpu", 3 * 40 * 36 * 4)  # chunks of 4 slices: 4, 4, 3
    chunked = pixel_metrics_for_case(gt, [pred, *others])
    for a, b in zip(whole, chunked, strict=True):
        assert a == pytest.approx(b, rel=1e-12)
    assert abs(chunked[0]["psnr"] - fastmri_psnr(gt, pred)) < TOLERANCE
    assert abs(chunked[0]["ssim"] - fastmri_ssim(gt, pred)) < TOLERANCE
    assert abs(chunked[0]["nmse"] - fastmri_nmse(gt, pred)) < TOLERANCE


def test_pixel_metrics_honour_an_explicit_maxval():
    gt, pred = noisy_pair((50, 60), seed=3)
    assert abs(psnr(gt, pred, maxval=10.0) - fastmri_psnr(gt, pred, 10.0)) < TOLERANCE
    assert abs(ssim(gt, pred, maxval=10.0) - fastmri_ssim(gt, pred, 10.0)) < TOLERANCE


def test_volume_uses_the_volume_maxval_for_every_slice():
    gt, pred = noisy_pair((3, 40, 40), seed=5)
    gt[0] *= 10  # one bright slice sets maxval for all
    per_slice_own_max = np.mean(
        [structural_similarity(g, p, data_range=g.max()) for g, p in zip(gt, pred, strict=True)]
    )
    assert abs(ssim(gt, pred) - fastmri_ssim(gt, pred)) < TOLERANCE
    assert abs(ssim(gt, pred) - per_slice_own_max) > 1e-3, (
        "Sanity: the two conventions differ here"
    )


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_batch_equals_one_pair_at_a_time(device, compiled):
    """On every device, eager or fused (compiled: fused on a GPU, eager on a CPU), the batched
    float64 metrics of a case equal fastMRI's, pair by pair."""
    gt, _ = noisy_pair((48, 48))
    recs = [noisy_pair((48, 48), seed=s)[1] for s in range(1, 6)]
    batched = pixel_metrics_for_case(gt, recs, device=device, compiled=compiled)
    for rec, values in zip(recs, batched, strict=True):
        assert abs(values["psnr"] - fastmri_psnr(gt, rec)) < TOLERANCE
        assert abs(values["ssim"] - fastmri_ssim(gt, rec)) < TOLERANCE
        assert abs(values["nmse"] - fastmri_nmse(gt, rec)) < TOLERANCE
    for rec, values in zip(recs, batched, strict=True):
        assert values["psnr"] == pytest.approx(psnr(gt, rec), abs=1e-12)
        assert values["ssim"] == pytest.approx(ssim(gt, rec), abs=1e-12)
        assert values["nmse"] == pytest.approx(nmse(gt, rec), abs=1e-12)


def test_compiled_route_equals_eager_case_after_case_of_new_shapes(device):
    """A worker sees cases of many shapes; the fused maths recompiles for them and still gives
    the eager values to 1e-12 (measured on an H200: 7e-15)."""
    for shape in [(48, 48), (3, 40, 33), (1, 320, 320), (2, 64, 57)]:
        gt, _ = noisy_pair(shape)
        recs = [noisy_pair(shape, seed=s)[1] for s in (1, 2, 3)]
        fused = pixel_metrics_for_case(gt, recs, device=device, compiled=True)
        eager = pixel_metrics_for_case(gt, recs, device=device)
        for got, want in zip(fused, eager, strict=True):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_identity_gives_perfect_scores():
    gt, _ = noisy_pair((32, 32))
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert nmse(gt, gt) == 0.0
    assert psnr(gt, gt) == np.inf


def test_ssim_is_symmetric_when_maxval_is_fixed():
    gt, pred = noisy_pair((40, 40))
    assert ssim(gt, pred, maxval=4.0) == pytest.approx(ssim(pred, gt, maxval=4.0), abs=1e-12)


def test_worse_reconstruction_scores_worse():
    gt, _ = noisy_pair((64, 64))
    rng = np.random.default_rng(1)
    mild, strong = (
        gt + 0.05 * rng.standard_normal(gt.shape),
        gt + 0.5 * rng.standard_normal(gt.shape),
    )
    assert psnr(gt, mild) > psnr(gt, strong) and ssim(gt, mild) > ssim(gt, strong)
    assert nmse(gt, mild) < nmse(gt, strong)


@pytest.mark.parametrize("pooled", [False, True], ids=["running-sums", "pooled"])
@pytest.mark.parametrize("shape", [(2, 7, 7), (3, 37, 53), (1, 320, 320)])
def test_window_mean_matches_scipy_uniform_filter(shape, pooled):
    """Both ways of taking the 7x7 mean (the CPU's running sums, the GPU's average pooling)
    equal scipy.ndimage.uniform_filter (scikit-image's filter) on every window that fits, to
    float64 rounding."""
    from scipy.ndimage import uniform_filter

    from metrics.pixel_torch import _window_mean

    x = np.random.default_rng(0).random(shape) * 4095  # 12-bit range: long sums of large values
    expected = np.stack([uniform_filter(image, 7)[3:-3, 3:-3] for image in x])
    means = _window_mean(torch.as_tensor(x), pooled=pooled).numpy()
    assert np.allclose(means, expected, rtol=1e-12, atol=0)


def test_ssim_reference_broadcasts_over_its_reconstructions():
    gt, _ = noisy_pair((40, 40))
    preds = np.stack([noisy_pair((40, 40), seed=s)[1] for s in range(1, 4)])
    x, y = torch.as_tensor(gt), torch.as_tensor(preds)
    peak = x.max()
    once = ssim_batch(x[None], y, peak)
    expanded = ssim_batch(x.expand_as(y), y, peak.expand(3))
    assert torch.allclose(once, expanded, rtol=0, atol=1e-15)


def test_ssim_batch_float32_close_to_float64():
    gt, pred = noisy_pair((2, 64, 64))
    x64, y64 = torch.as_tensor(gt), torch.as_tensor(pred)
    peak = x64.amax(dim=(1, 2))
    exact = ssim_batch(x64, y64, peak)
    single = ssim_batch(x64.float(), y64.float(), peak.float())
    assert torch.allclose(single.double(), exact, atol=1e-4)


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        (np.ones((8, 8)), np.ones((8, 9)), "shape mismatch"),
        (np.ones((8, 8)), np.ones((8, 8)), "constant"),
        (np.zeros((8, 8)), np.zeros((8, 8)), "constant"),
        (np.eye(8), np.full((8, 8), np.nan), "NaN"),
        (np.eye(8), np.full((8, 8), np.inf), "NaN or infinite"),
        (np.eye(5), np.eye(5), "at least 7x7"),
        (np.ones((2, 2, 8, 8)), np.ones((2, 2, 8, 8)), "2-D images or 3-D volumes"),
    ],
)
def test_bad_pairs_raise_a_clear_error(gt, pred, message):
    with pytest.raises(MetricInputError, match=message):
        pixel_metrics_for_case(gt, [pred])


def test_pinned_values_on_a_shipped_slice():
    """Pinned with scikit-image 0.26.0 / NumPy 2.4.6 on 2026-11-24:
    ref = load_slice("abdomen-fat"); rec = |zero_filled(fft2c(ref), random_mask(256,
    acceleration=4, center_fraction=0.08, rng=default_rng(0)))|; skimage PSNR/SSIM with
    data_range=ref.max(), NMSE as fastMRI."""
    ref = load_slice("abdomen-fat").astype(np.float64)
    mask = random_mask(256, acceleration=4, center_fraction=0.08, rng=np.random.default_rng(0))
    rec = np.abs(zero_filled(fft2c(ref), mask))
    values = pixel_metrics_for_case(ref, [rec])[0]
    assert values["psnr"] == pytest.approx(23.871963040868845, abs=TOLERANCE)
    assert values["ssim"] == pytest.approx(0.7078733048776753, abs=TOLERANCE)
    assert values["nmse"] == pytest.approx(0.05444951323400755, abs=TOLERANCE)


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_the_gpu_maths_equal_fastmri_too(chunk):
    """The torch maths a GPU worker runs (here on the CPU, chunked or in one pass) gives
    fastMRI's values as the CPU kernel does."""
    gt, pred = noisy_pair((5, 40, 36), seed=7)
    others = [np.abs(pred + 0.1)]
    chunks = slice_chunks(gt, [pred, *others], chunk)
    sums = case_sums_on_device(chunks, float(gt.max()), "cpu", False)
    values = values_from_sums(sums, float(gt.max()), gt.size, len(gt))
    cpu = pixel_metrics_for_case(gt, [pred, *others])
    for on_device, on_cpu in zip(values, cpu, strict=True):
        assert on_device == pytest.approx(on_cpu, rel=1e-12)
    assert abs(values[0]["ssim"] - fastmri_ssim(gt, pred)) < TOLERANCE


def test_float32_and_integer_images_give_the_float64_values():
    gt, pred = noisy_pair((3, 32, 32), seed=8)
    exact = pixel_metrics_for_case(gt, [pred])[0]
    single = pixel_metrics_for_case(gt.astype(np.float32), [pred.astype(np.float32)])[0]
    assert single == pytest.approx(
        pixel_metrics_for_case(
            gt.astype(np.float32).astype(np.float64), [pred.astype(np.float32).astype(np.float64)]
        )[0],
        rel=1e-12,
    )
    assert single["ssim"] == pytest.approx(exact["ssim"], abs=1e-5)
    eight_bit = (gt * 80).astype(np.uint8), (pred * 80).astype(np.uint8)
    assert (
        abs(
            pixel_metrics_for_case(eight_bit[0], [eight_bit[1]])[0]["ssim"]
            - fastmri_ssim(*(a.astype(np.float64) for a in eight_bit))
        )
        < TOLERANCE
    )
