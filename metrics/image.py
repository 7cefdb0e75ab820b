"""Pixel metrics in fastMRI's conventions: PSNR, SSIM and NMSE, batched in torch.

Conventions (CONTRACTS.md section 2, fastMRI `evaluate.py`):
    * arguments are ordered (reference, reconstruction);
    * `maxval` is the reference's maximum, over the whole volume for 3-D data;
    * NMSE = ||ref - rec||^2 / ||ref||^2 and PSNR = 10 log10(maxval^2 / MSE), both over the whole
      image or volume;
    * SSIM is Wang et al. with a 7x7 uniform window, K1 = 0.01, K2 = 0.03, data range `maxval`
      and sample covariance (N / (N - 1)), averaged over the window positions that fit in the
      image (scikit-image's `structural_similarity` defaults); a volume's SSIM is the mean of
      its slices' SSIMs, each with the volume's `maxval`.

The batched functions take (N, H, W) stacks of 2-D pairs and run on whatever device the tensors
are on, in float64 by default, so the same code serves a CPU worker and a GPU one.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861.
    fastMRI: facebookresearch/fastMRI, fastmri/evaluate.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch

SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


class MetricInputError(ValueError):
    """A reference/reconstruction pair that a metric cannot be computed on."""


def check_pair(gt: np.ndarray, pred: np.ndarray) -> None:
    """Raise `MetricInputError` unless the pair can be compared.

    Checks: same shape, 2-D or 3-D, at least one SSIM window per slice, finite values, and a
    reference that is neither empty nor constant (PSNR and NMSE need a non-zero maximum/norm).
    """
    if gt.shape != pred.shape:
        raise MetricInputError(
            f"shape mismatch: reference {gt.shape}, reconstruction {pred.shape}"
        )
    if gt.ndim not in (2, 3):
        raise MetricInputError(f"expected 2-D images or 3-D volumes, got shape {gt.shape}")
    if min(gt.shape[-2:]) < SSIM_WINDOW:
        raise MetricInputError(
            f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {gt.shape[-2:]}"
        )
    if not (np.isfinite(gt).all() and np.isfinite(pred).all()):
        raise MetricInputError("NaN or infinite values in the reference or the reconstruction")
    if gt.max() <= 0 or gt.max() == gt.min():
        raise MetricInputError("the reference is empty or constant (maximum must exceed minimum)")


def scaled_slices(
    gt: np.ndarray, pred: np.ndarray, maxval: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as (slices, H, W) float64, divided by `maxval` (default the reference's
    maximum over the whole volume): the reference study's `/255` for 8-bit PNGs whose
    reference reaches 255 (HFEN, VIF, NQM)."""
    peak = float(gt.max()) if maxval is None else float(maxval)
    as_slices = lambda image: np.asarray(image, np.float64).reshape(-1, *image.shape[-2:]) / peak  # noqa: E731
    return as_slices(gt), as_slices(pred)


def _window_mean(x: torch.Tensor, *, pooled: bool | None = None) -> torch.Tensor:
    """Mean over every 7x7 block that fits in the last two axes (no padding), in float64.

    Two ways, each equal to scipy's uniform_filter (scikit-image's filter) to 1e-12 (tested):
    * pooled (the default on a GPU): one average-pooling kernel, which reads each pixel's 49
      neighbours from cache; the bandwidth-bound card cares about passes over memory, not adds;
    * running sums (the default on a CPU): one cumulative sum and one difference per axis,
      whatever the window size, so a compute-bound CPU does a few adds per pixel, not 49. The
      sums are float64 whatever the input, so a difference of two long sums loses about 1e-16
      of them, far below the 1e-6 that fastMRI agreement needs.
    """
    dtype = x.dtype
    if x.is_cuda if pooled is None else pooled:
        flat = x.reshape(-1, *x.shape[-2:]).to(torch.float64)
        means = torch.nn.functional.avg_pool2d(flat, SSIM_WINDOW, stride=1)
        return means.reshape(*x.shape[:-2], *means.shape[-2:]).to(dtype)
    for dim in (-1, -2):
        length = x.shape[dim] - SSIM_WINDOW + 1
        sums = torch.cumsum(x, dim=dim, dtype=torch.float64)
        blocks = sums.narrow(dim, SSIM_WINDOW - 1, length).clone()
        blocks.narrow(dim, 1, length - 1).sub_(sums.narrow(dim, 0, length - 1))
        x = blocks
    return x.div_(SSIM_WINDOW * SSIM_WINDOW).to(dtype)


def ssim_batch(gt: torch.Tensor, pred: torch.Tensor, maxval: torch.Tensor) -> torch.Tensor:
    """SSIM of (..., H, W) reconstructions against references that broadcast against them.

    Args:
        gt: references, (..., H, W), broadcastable to `pred`: a case's one reference is given
            once, and its local means and variances are computed once for all reconstructions.
        pred: reconstructions, (..., H, W).
        maxval: data range, broadcastable to the leading dimensions (a scalar, or one per pair).

    Returns:
        SSIM per image, of shape pred.shape[:-2].

    A 7x7 mean without padding visits exactly the window positions that scikit-image keeps
    after cropping its border, so no edge handling is needed.
    """
    window_size = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = window_size / (window_size - 1)
    ux, uxx = _window_mean(gt), _window_mean(gt * gt)
    uy, uyy, uxy = _window_mean(pred), _window_mean(pred * pred), _window_mean(gt * pred)
    c1 = ((SSIM_K1 * maxval) ** 2)[..., None, None]
    c2 = ((SSIM_K2 * maxval) ** 2)[..., None, None]
    # In place where a map is not needed again: each pass over (N, H, W) float64 costs time.
    vx = uxx.addcmul_(ux, ux, value=-1).mul_(cov_norm)
    vy = uyy.addcmul_(uy, uy, value=-1).mul_(cov_norm)
    ux_uy = ux * uy
    two_vxy = uxy.sub_(ux_uy).mul_(2 * cov_norm)
    numerator = ux_uy.mul_(2).add_(c1).mul_(two_vxy.add_(c2))
    denominator = uy.square_().add_(ux * ux).add_(c1).mul_(vy.add_(vx).add_(c2))
    return numerator.div_(denominator).mean(dim=(-2, -1))


PIXEL_METRICS = ("psnr", "ssim", "nmse")
# Bump when a pixel-metric convention changes, so old and new values are never mixed.
PIXEL_METRICS_VERSION = "fastmri-1"


def pixel_sums(gt: torch.Tensor, pred: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """What PSNR, SSIM and NMSE need, summed over the given slices, so that a volume can be
    taken a chunk of slices at a time.

    Args:
        gt: references, (G, S, H, W), with G = 1 (one reference broadcast against all
            reconstructions: its SSIM statistics are computed once) or G = R.
        pred: reconstructions, (R, S, H, W).
        peak: data range of each reference, (G,).

    Returns:
        (R, 3): squared error, sum of the slice SSIMs, and the reference's energy.
    """
    squared_error = ((gt - pred) ** 2).sum(dim=(-3, -2, -1))
    energy = (gt**2).sum(dim=(-3, -2, -1)).expand_as(squared_error)
    ssim_sum = ssim_batch(gt, pred, peak[:, None]).sum(dim=1)
    return torch.stack([squared_error, ssim_sum, energy], dim=1)


def values_from_sums(sums: torch.Tensor, peak: torch.Tensor, pixels: int, slices: int):
    """(R, 3) PSNR, SSIM, NMSE from `pixel_sums` added up over a whole volume."""
    squared_error, ssim_sum, energy = sums.unbind(dim=1)
    psnr_values = 10 * torch.log10(peak**2 / (squared_error / pixels))
    return torch.stack([psnr_values, ssim_sum / slices, squared_error / energy], dim=1)


def pixel_values(gt: torch.Tensor, pred: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """PSNR, SSIM and NMSE of volumes given as (slices, H, W) stacks with leading dimensions.

    Args:
        gt: references, (G, S, H, W), with G = 1 or G = R (as `pixel_sums`).
        pred: reconstructions, (R, S, H, W).
        peak: data range of each reference, (G,).

    Returns:
        (R, 3): PSNR, SSIM, NMSE (the order of `PIXEL_METRICS`), each over the whole volume.
    """
    return values_from_sums(pixel_sums(gt, pred, peak), peak, gt[0].numel(), gt.shape[-3])


@cache
def fused_pixel_values():
    """`pixel_values` compiled by torch.compile, for CUDA tensors.

    On a GPU the eager maths is a dozen bandwidth-bound float64 passes; fused, it is 1.6x the
    pairs per second (H200, 128 pairs of 320x320: 58,400 against 36,400) and equal to the eager
    result to 1e-14. Not on a CPU: there compiling takes minutes for little gain.
    """
    return torch.compile(pixel_values)


@cache
def fused_pixel_sums():
    """`pixel_sums` compiled, for volumes taken a chunk at a time on a GPU."""
    return torch.compile(pixel_sums)


def pixel_maths(*, compiled: bool, cuda: bool) -> Callable[..., torch.Tensor]:
    """The pixel maths every caller runs: fused where compiled on a GPU, else eager."""
    return fused_pixel_values() if compiled and cuda else pixel_values


# Pixels of all reconstructions in one chunk of slices: 4 M pixels is 32 MiB per float64
# array on a CPU, where the SSIM maps of a whole 400-slice volume at once took 3.9 GB and
# most of the time went to page faults; a GPU takes larger chunks to stay busy.
CHUNK_PIXELS = {"cpu": 1 << 22, "cuda": 1 << 25}


def pixel_metrics_for_case(
    reference: np.ndarray,
    reconstructions: list[np.ndarray],
    *,
    maxval: float | None = None,
    device: str = "cpu",
    compiled: bool = False,
) -> list[dict[str, float]]:
    """PSNR, SSIM and NMSE of many reconstructions of one reference, in one batch.

    Volumes are taken a bounded chunk of slices at a time (memory stays flat however many
    slices there are); per-volume values follow the conventions above (PSNR and NMSE over the
    whole volume, SSIM the mean of slice SSIMs, `maxval` of the volume). With `compiled`, a
    CUDA device runs the fused maths; a CPU ignores it.

    Raises:
        MetricInputError: on the first reconstruction that cannot be compared with the reference.
    """
    for pred in reconstructions:
        check_pair(reference, pred)
    if not reconstructions:
        return []
    slices, (height, width) = (
        (1 if reference.ndim == 2 else reference.shape[0]),
        reference.shape[-2:],
    )
    ref_slices = reference.reshape(slices, height, width)
    rec_slices = [r.reshape(slices, height, width) for r in reconstructions]
    peak_value = float(reference.max()) if maxval is None else float(maxval)
    peak = torch.tensor([peak_value], dtype=torch.float64, device=device)
    budget = CHUNK_PIXELS["cuda" if device.startswith("cuda") else "cpu"]
    chunk = max(1, budget // (len(reconstructions) * height * width))
    if chunk >= slices:  # one pass: the whole case at once, as the benchmark times it
        gt = torch.as_tensor(ref_slices, dtype=torch.float64, device=device)[None]
        pred = torch.as_tensor(np.stack(rec_slices), dtype=torch.float64, device=device)
        values = pixel_maths(compiled=compiled, cuda=gt.is_cuda)(gt, pred, peak)
    else:
        sums_of = fused_pixel_sums() if compiled and device.startswith("cuda") else pixel_sums
        total = None
        for start in range(0, slices, chunk):
            part = slice(start, start + chunk)
            gt = torch.as_tensor(ref_slices[part], dtype=torch.float64, device=device)[None]
            pred = torch.as_tensor(
                np.stack([r[part] for r in rec_slices]), dtype=torch.float64, device=device
            )
            sums = sums_of(gt, pred, peak)
            total = sums if total is None else total + sums
        values = values_from_sums(total, peak, slices * height * width, slices)
    return [dict(zip(PIXEL_METRICS, row, strict=True)) for row in values.cpu().tolist()]


def psnr(gt: np.ndarray, pred: np.ndarray, *, maxval: float | None = None) -> float:
    """Peak signal-to-noise ratio (dB) of a reconstruction against its reference.

    Args:
        gt: reference, (H, W) image or (slices, H, W) volume.
        pred: reconstruction, same shape.
        maxval: peak value; default the reference's maximum over the whole volume.

    Returns:
        10 log10(maxval^2 / MSE), MSE over the whole image or volume. Higher is better.

    References:
        fastMRI evaluate.py `psnr` (scikit-image `peak_signal_noise_ratio`, data_range=maxval).
    """
    return pixel_metrics_for_case(gt, [pred], maxval=maxval)[0]["psnr"]


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised mean squared error ||gt - pred||^2 / ||gt||^2 over the whole image or volume.

    Args:
        gt: reference, (H, W) or (slices, H, W).
        pred: reconstruction, same shape.

    Returns:
        NMSE, 0 for a perfect reconstruction. Lower is better.

    References:
        fastMRI evaluate.py `nmse`.
    """
    return pixel_metrics_for_case(gt, [pred])[0]["nmse"]


def ssim(gt: np.ndarray, pred: np.ndarray, *, maxval: float | None = None) -> float:
    """Structural similarity with fastMRI's (scikit-image's default) settings.

    Args:
        gt: reference, (H, W) or (slices, H, W).
        pred: reconstruction, same shape.
        maxval: data range; default the reference's maximum over the whole volume.

    Returns:
        Mean SSIM (per-slice mean for a volume), at most 1. Higher is better.

    References:
        Wang et al. 2004, doi:10.1109/TIP.2003.819861; fastMRI evaluate.py `ssim`.
    """
    return pixel_metrics_for_case(gt, [pred], maxval=maxval)[0]["ssim"]


def pixel_metrics_or_errors(
    reference: np.ndarray,
    reconstructions: list[np.ndarray],
    *,
    device: str = "cpu",
    compiled: bool = False,
) -> list[dict[str, float] | MetricInputError]:
    """As `pixel_metrics_for_case`, but a pair that cannot be compared yields its error.

    One bad reconstruction (wrong shape, NaN) must not sink the metrics of its siblings.
    """
    errors: dict[int, MetricInputError] = {}
    for index, pred in enumerate(reconstructions):
        try:
            check_pair(reference, pred)
        except MetricInputError as error:
            errors[index] = error
    good = [pred for index, pred in enumerate(reconstructions) if index not in errors]
    values = iter(pixel_metrics_for_case(reference, good, device=device, compiled=compiled))
    return [errors[i] if i in errors else next(values) for i in range(len(reconstructions))]
