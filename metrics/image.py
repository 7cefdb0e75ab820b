"""Pixel metrics in fastMRI's conventions: PSNR, SSIM and NMSE, many reconstructions at once.

Conventions (docs/metrics.md, fastMRI `evaluate.py`):
    * arguments are ordered (reference, reconstruction);
    * `maxval` is the reference's maximum, over the whole volume for 3-D data;
    * NMSE = ||ref - rec||^2 / ||ref||^2 and PSNR = 10 log10(maxval^2 / MSE), both over the whole
      image or volume;
    * SSIM is Wang et al. with a 7x7 uniform window, K1 = 0.01, K2 = 0.03, data range `maxval`
      and sample covariance (N / (N - 1)), averaged over the window positions that fit in the
      image (scikit-image's `structural_similarity` defaults); a volume's SSIM is the mean of
      its slices' SSIMs, each with the volume's `maxval`.

Two implementations of the same sums, in float64: on a CPU a compiled one-pass kernel
(`metrics.pixel_cpu`, numba), which needs no torch; on a GPU the batched torch maths
(`metrics.pixel_torch`). Both are compared with scikit-image in the tests.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), 2004, doi:10.1109/TIP.2003.819861.
    fastMRI: facebookresearch/fastMRI, fastmri/evaluate.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

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


def central_slice(image: np.ndarray) -> np.ndarray:
    """A 2-D image as it is; a (slices, H, W) volume's middle slice."""
    return image if image.ndim == 2 else image[image.shape[0] // 2]


def scaled_slices(
    gt: np.ndarray, pred: np.ndarray, maxval: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as (slices, H, W) float64, divided by `maxval` (default the reference's
    maximum over the whole volume): the reference study's `/255` for 8-bit PNGs whose
    reference reaches 255 (HFEN, VIF, NQM)."""
    peak = float(gt.max()) if maxval is None else float(maxval)

    def as_slices(image: np.ndarray) -> np.ndarray:
        return np.asarray(image, np.float64).reshape(-1, *image.shape[-2:]) / peak

    return as_slices(gt), as_slices(pred)


PIXEL_METRICS = ("psnr", "ssim", "nmse")
# Bump when a pixel-metric convention changes, so old and new values are never mixed.
PIXEL_METRICS_VERSION = "fastmri-1"


# Pixels of all reconstructions in one chunk of slices: 4 M pixels is 32 MiB per float64
# array on a CPU, where the SSIM maps of a whole 400-slice volume at once took 3.9 GB and
# most of the time went to page faults; a GPU takes larger chunks to stay busy.
CHUNK_PIXELS = {"cpu": 1 << 22, "cuda": 1 << 25}
# The CPU kernel runs its slices on numba's thread pool, which one caller at a time may use
# (its default layer aborts the process on concurrent launches): callers on threads queue.
_CPU_KERNEL = threading.Lock()


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
    on_gpu = device.startswith("cuda")
    budget = CHUNK_PIXELS["cuda" if on_gpu else "cpu"]
    chunk = max(1, budget // (len(reconstructions) * height * width))
    chunks = slice_chunks(ref_slices, rec_slices, chunk)
    if on_gpu:
        from metrics.pixel_torch import case_sums_on_device

        total = case_sums_on_device(chunks, peak_value, device, compiled)
    else:
        from metrics.pixel_cpu import pixel_sums_cpu

        total = np.zeros((len(reconstructions), 3))
        for gt, pred in chunks:
            with _CPU_KERNEL:
                total += pixel_sums_cpu(gt, pred, peak_value)
    return values_from_sums(total, peak_value, slices * height * width, slices)


def slice_chunks(
    ref_slices: np.ndarray, rec_slices: list[np.ndarray], chunk: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The case `chunk` slices at a time, as float64 and contiguous (one compiled kernel for
    every input dtype): the reference's (c, H, W) and the reconstructions' (R, c, H, W)."""
    for start in range(0, len(ref_slices), chunk):
        part = slice(start, start + chunk)
        yield (
            np.ascontiguousarray(ref_slices[part], dtype=np.float64),
            np.stack([np.asarray(r[part], dtype=np.float64) for r in rec_slices]),
        )


def values_from_sums(
    total: np.ndarray, peak: float, pixels: int, slices: int
) -> list[dict[str, float]]:
    """PSNR, SSIM and NMSE of each reconstruction from its (squared error, sum of slice SSIMs,
    reference energy) summed over the whole volume."""
    squared_error, ssim_sum, energy = np.asarray(total, dtype=np.float64).T
    with np.errstate(divide="ignore"):  # a perfect reconstruction: infinite PSNR
        psnr_values = 10 * np.log10(peak**2 / (squared_error / pixels))
    values = np.stack([psnr_values, ssim_sum / slices, squared_error / energy], axis=1)
    return [dict(zip(PIXEL_METRICS, row, strict=True)) for row in values.tolist()]


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
