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

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)

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


def psnr_batch(gt: torch.Tensor, pred: torch.Tensor, maxval: torch.Tensor) -> torch.Tensor:
    """PSNR of each pair of an (N, H, W) stack; `maxval` is (N,). Returns (N,) in dB."""
    mse = ((gt - pred) ** 2).mean(dim=(-2, -1))
    return 10 * torch.log10(maxval**2 / mse)


def nmse_batch(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """NMSE of each pair of an (N, H, W) stack. Returns (N,)."""
    return ((gt - pred) ** 2).sum(dim=(-2, -1)) / (gt**2).sum(dim=(-2, -1))


def ssim_batch(gt: torch.Tensor, pred: torch.Tensor, maxval: torch.Tensor) -> torch.Tensor:
    """SSIM of each pair of an (N, H, W) stack with per-pair data range `maxval` (N,).

    A stride-1 7x7 mean without padding visits exactly the window positions that
    scikit-image keeps after cropping its border, so no edge handling is needed.
    """
    x, y = gt.unsqueeze(1), pred.unsqueeze(1)
    window_size = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = window_size / (window_size - 1)
    # Separable: a 7x1 then a 1x7 mean equals the 7x7 mean, at 14 reads a pixel instead of 49.
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    pooled = F.avg_pool2d(
        F.avg_pool2d(stack, (SSIM_WINDOW, 1), stride=1), (1, SSIM_WINDOW), stride=1
    )
    ux, uy, uxx, uyy, uxy = pooled.unbind(dim=1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = ((SSIM_K1 * maxval) ** 2).view(-1, 1, 1)
    c2 = ((SSIM_K2 * maxval) ** 2).view(-1, 1, 1)
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    return (numerator / denominator).mean(dim=(-2, -1))


PIXEL_METRICS = ("psnr", "ssim", "nmse")
# Bump when a pixel-metric convention changes, so old and new values are never mixed.
PIXEL_METRICS_VERSION = "fastmri-1"


def pixel_metrics_for_case(
    reference: np.ndarray,
    reconstructions: list[np.ndarray],
    *,
    maxval: float | None = None,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """PSNR, SSIM and NMSE of many reconstructions of one reference, in one batch.

    Volumes are flattened to their slices; per-volume values follow the conventions above
    (PSNR and NMSE over the whole volume, SSIM the mean of slice SSIMs, `maxval` of the volume).

    Raises:
        MetricInputError: on the first reconstruction that cannot be compared with the reference.
    """
    for pred in reconstructions:
        check_pair(reference, pred)
    if not reconstructions:
        return []
    slices_per_volume = 1 if reference.ndim == 2 else reference.shape[0]
    gt = torch.as_tensor(reference, dtype=torch.float64, device=device).reshape(
        -1, *reference.shape[-2:]
    )
    pred = torch.as_tensor(np.stack(reconstructions), dtype=torch.float64, device=device).reshape(
        len(reconstructions), slices_per_volume, *reference.shape[-2:]
    )
    gt = gt.unsqueeze(0).expand_as(pred)
    peak = (
        gt.max() if maxval is None else torch.tensor(float(maxval), dtype=gt.dtype, device=device)
    )
    squared_error = ((gt - pred) ** 2).sum(dim=(-3, -2, -1))
    mse = squared_error / gt[0].numel()
    psnr_values = 10 * torch.log10(peak**2 / mse)
    nmse_values = squared_error / (gt[0] ** 2).sum()
    flat_gt, flat_pred = gt.reshape(-1, *gt.shape[-2:]), pred.reshape(-1, *gt.shape[-2:])
    ssim_values = ssim_batch(flat_gt, flat_pred, peak.expand(flat_gt.shape[0]))
    ssim_values = ssim_values.reshape(len(reconstructions), slices_per_volume).mean(dim=1)
    rows = torch.stack([psnr_values, ssim_values, nmse_values], dim=1).cpu().tolist()
    return [dict(zip(PIXEL_METRICS, row, strict=True)) for row in rows]


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
    reference: np.ndarray, reconstructions: list[np.ndarray], *, device: str = "cpu"
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
    values = iter(pixel_metrics_for_case(reference, good, device=device))
    return [errors[i] if i in errors else next(values) for i in range(len(reconstructions))]
