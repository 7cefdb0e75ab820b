"""Noise quality measure (NQM), as the reference study's later code computes it.

Damera-Venkata et al.'s NQM: both images are decomposed into Peli's contrast pyramid (cosine
log bandpass filters of one octave), contrasts below the eye's detection threshold are dropped,
the reconstruction's contrasts are replaced by the reference's where their difference would
be masked, and NQM is the SNR (dB) of the two images rebuilt from what is left. The recipe is
that of StanfordMIMI/deep-feature-mr-recon, `dfd_mr_recon/metrics/nqm.py` at HEAD 924eb9e
(after github.com/lucia15/Image-Quality-Assessment): both images divided by the reference's
maximum and multiplied by 255; viewing angle 1/3.5 rad. Higher is better.

That code flattens some arrays in Fortran order and reshapes them in C order; it does so
alike for both images, so the pairing of pixels, and the SNR, is unchanged. This module keeps
every array in its own layout (tests/metrics/test_reference_suite.py pins the values).

References:
    Damera-Venkata, Kite, Geisler, Evans and Bovik, "Image quality assessment based on a
    degradation model", IEEE TIP 9(4), 2000, doi:10.1109/83.841940.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.image import MetricInputError, check_pair, scaled_slices

VIEWING_ANGLE = (1 / 3.5) * (180 / np.pi)
# (band, lower and upper radius of the band's log-cosine filter, value outside it, phase)
BANDS = (
    (2, 1, 4, 4.0, np.pi),  # the low-pass: radius r + 2 in [1, 4]
    (0, 1, 4, 4.0, np.pi),
    (0, 2, 8, 0.5, 0.0),
    (0, 4, 16, 4.0, np.pi),
    (0, 8, 32, 0.5, 0.0),
    (0, 16, 64, 4.0, np.pi),
)


def contrast_threshold(frequency: float) -> float:
    """The contrast threshold function (inverse of the contrast sensitivity) at `frequency`."""
    gamma = 0.0192 + 0.114 * frequency
    return float(1.0 / (520.0 * gamma * np.exp(-((0.114 * frequency) ** 1.1))))


def _filters(shape: tuple[int, int]) -> list[np.ndarray]:
    """The six frequency responses, in numpy's FFT layout, for an (H, W) image."""
    rows, cols = shape
    # np.mgrid[-cols / 2 : cols / 2, -rows / 2 : rows / 2], as the reference's meshgrid
    x, y = np.meshgrid(
        np.arange(-cols / 2, cols / 2), np.arange(-rows / 2, rows / 2), indexing="ij"
    )
    radius = np.abs(x + 1j * y)
    responses = []
    for offset, low, high, outside, phase in BANDS:
        r = radius + offset
        inside = (r >= low) & (r <= high)
        w = r * inside + outside * ~inside
        response = 0.5 * (1 + np.cos(np.pi * np.log2(w) - phase))
        responses.append(np.fft.fftshift(response).T)
    return responses


def _pyramid(spectrum: np.ndarray, filters: list[np.ndarray]) -> tuple[np.ndarray, list[Any]]:
    low, *bands = (np.real(np.fft.ifft2(f * spectrum)) for f in filters)
    return low, bands


def _contrasts(low: np.ndarray, bands: list[np.ndarray]) -> list[np.ndarray]:
    """Band k over the low-pass plus every band below it (local luminance)."""
    contrasts, mean_luminance = [], low
    for band in bands:
        contrasts.append(band / mean_luminance)
        mean_luminance = mean_luminance + band
    return contrasts


def nqm_slice(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """NQM (dB) of one 2-D pair already on the 0-255 scale."""
    filters = _filters(reference.shape)
    ref_low, ref_bands = _pyramid(np.fft.fft2(reference), filters)
    rec_low, rec_bands = _pyramid(np.fft.fft2(reconstruction), filters)
    ref_contrast, rec_contrast = _contrasts(ref_low, ref_bands), _contrasts(rec_low, rec_bands)
    detection = [contrast_threshold(f / VIEWING_ANGLE) for f in (2.0, 4.0, 8.0, 16.0, 32.0)]
    ref_total = rec_total = np.zeros(reference.shape)
    for band, (a, ai, c, ci, threshold) in enumerate(
        zip(ref_bands, rec_bands, ref_contrast, rec_contrast, detection, strict=True), start=1
    ):
        # Supra-threshold masking: where the difference of contrasts would not be seen, the
        # reconstruction's band takes the reference's. (The code clips |ci| > 1 to +1.)
        clipped = np.where(np.abs(ci) > 1.0, 1.0, ci)
        ct = contrast_threshold(band)
        masking = ct * (0.86 * (c / ct - 1.0) + 0.3)
        ai = np.where(np.abs(clipped - c) - masking < 0, a, ai)
        ref_total = ref_total + np.where(np.abs(c) < threshold, 0.0, a)
        rec_total = rec_total + np.where(np.abs(ci) < threshold, 0.0, ai)
    signal, error = np.mean(ref_total**2), np.mean((ref_total - rec_total) ** 2)
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(signal / error)) if error else float("inf")


def nqm(gt: np.ndarray, pred: np.ndarray, *, maxval: float | None = None) -> float:
    """NQM (dB) of a reconstruction against its reference; the mean over slices for a volume.

    Args:
        gt: reference, (H, W) or (slices, H, W).
        pred: reconstruction, same shape.
        maxval: what both images are divided by before the x255; default the reference's max.

    Returns:
        NQM in dB; infinite for a reconstruction whose visible contrasts equal the reference's.

    Raises:
        MetricInputError: the pair cannot be compared, or NQM is undefined for it (a low-pass
            image of zero: the contrasts divide by it).
    """
    check_pair(gt, pred)
    ref, rec = scaled_slices(gt, pred, maxval)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(
            np.mean([nqm_slice(255 * r, 255 * p) for r, p in zip(ref, rec, strict=True)])
        )
    if np.isnan(value):
        raise MetricInputError("nqm: undefined for this pair (its low-pass image reaches zero)")
    return value
