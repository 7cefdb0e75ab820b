"""PSNR, SSIM and NMSE as batched torch maths, for a GPU (`metrics.image` has the conventions).

On a CUDA device the maths is a dozen bandwidth-bound float64 passes over (N, H, W) maps,
fused by torch.compile where the engine compiles; a CPU takes `metrics.pixel_cpu` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

import numpy as np
import torch

from metrics.image import SSIM_K1, SSIM_K2, SSIM_WINDOW


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


def values_from_sums(
    sums: torch.Tensor, peak: torch.Tensor, pixels: int, slices: int
) -> torch.Tensor:
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
def fused_pixel_values() -> Callable[..., torch.Tensor]:
    """`pixel_values` compiled by torch.compile, for CUDA tensors.

    On a GPU the eager maths is a dozen bandwidth-bound float64 passes; fused, it is 1.6x the
    pairs per second (H200, 128 pairs of 320x320: 58,400 against 36,400) and equal to the eager
    result to 1e-14. Not on a CPU: there compiling takes minutes for little gain.
    """
    return torch.compile(pixel_values)


@cache
def fused_pixel_sums() -> Callable[..., torch.Tensor]:
    """`pixel_sums` compiled, for volumes taken a chunk at a time on a GPU."""
    return torch.compile(pixel_sums)


def pixel_maths(*, compiled: bool, cuda: bool) -> Callable[..., torch.Tensor]:
    """The batched pixel maths the GPU benchmark times: fused where compiled on a GPU, else
    eager (the engine adds up `pixel_sums` per chunk instead, `case_sums_on_device`)."""
    return fused_pixel_values() if compiled and cuda else pixel_values


def case_sums_on_device(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], peak_value: float, device: str, compiled: bool
) -> np.ndarray:
    """`pixel_sums` of a case's chunks (`metrics.image.slice_chunks`) on a torch device, added
    up: (R, 3). Fused by torch.compile where `compiled` on a GPU."""
    peak = torch.tensor([peak_value], dtype=torch.float64, device=device)
    sums_of = fused_pixel_sums() if compiled and device.startswith("cuda") else pixel_sums
    total: torch.Tensor | None = None
    for gt, pred in chunks:
        sums = sums_of(
            torch.as_tensor(gt, device=device)[None], torch.as_tensor(pred, device=device), peak
        )
        total = sums if total is None else total + sums
    if total is None:
        raise ValueError("no slices: a case has at least one")
    return total.cpu().numpy()
