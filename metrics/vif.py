"""Visual information fidelity (VIF) in the steerable-pyramid domain, as the reference study's
later code computes it.

Sheikh and Bovik's VIF: how much of the information a visual system could draw from the
reference survives in the reconstruction, under a Gaussian scale mixture model of the
reference's steerable-pyramid subbands. The recipe is that of StanfordMIMI/deep-feature-mr-recon,
`dfd_mr_recon/metrics/vif.py` at HEAD 924eb9e (after github.com/abhinaukumar/vif): both images
divided by the reference's maximum and multiplied by 255; pyrtools' `SteerablePyramidSpace` of
height 4 and order 5 (six orientations) with `reflect1` edges; two orientations per scale
(eight subbands); 3x3 blocks; local moments over windows of 2^level + 1 at stride 3 with
reflected edges; sigma_n^2 = 0.1. Higher is better (1 for an identical pair).

One deliberate difference: the study's `VIF.func(preds, targets)` passes the reconstruction
where its `vif(img_ref, img_dist)` expects the reference, so its published VIF treats the
reconstruction as the reference. Here the reference is the reference, as the paper defines
it; tests/metrics/test_reference_suite.py pins both orders against that code.

References:
    Sheikh and Bovik, "Image information and visual quality", IEEE TIP 15(2), 2006,
    doi:10.1109/TIP.2005.859378.
"""

from __future__ import annotations

import numpy as np

from metrics.image import MetricInputError, check_pair

BLOCK = 3
NOISE_VARIANCE = 0.1
# The smallest side pyrtools builds the 4-scale pyramid of `_subbands` on ("Cannot build
# pyramid higher than 3 levels" at 71); tests/metrics/test_reference_suite.py checks 71 and 72.
MIN_SIDE = 72
TOLERANCE = 1e-15


def _subbands(image: np.ndarray) -> list[np.ndarray]:
    """The eight subbands VIF uses, coarsest first, cropped to whole 3x3 blocks."""
    from pyrtools.pyramids import SteerablePyramidSpace  # imports matplotlib: only when used

    coefficients = SteerablePyramidSpace(image, 4, 5, "reflect1").pyr_coeffs
    # orientations 0 and 3 of each scale, skipping the residuals; coarsest scale first
    keys = list(coefficients)[1:-2:3][::-1]
    return [_whole_blocks(coefficients[key]) for key in keys]


def _whole_blocks(band: np.ndarray) -> np.ndarray:
    rows, cols = (band.shape[0] // BLOCK) * BLOCK, (band.shape[1] // BLOCK) * BLOCK
    return band[:rows, :cols]


def _window(index: int) -> int:
    """Side of the moment window of subband `index` (coarsest first): 3, 3, 5, 5, 9, 9, 17, 17."""
    return 2 ** int(np.ceil((index + 1) / 2)) + 1


def _box_means(x: np.ndarray, size: int) -> np.ndarray:
    """Means over size x size windows at stride BLOCK, edges reflected by (size - BLOCK) / 2,
    from an integral image (one window per 3x3 block)."""
    padded = np.pad(x, (size - BLOCK) // 2, mode="reflect")
    integral = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1))
    integral[1:, 1:] = padded.cumsum(0).cumsum(1)
    s = BLOCK
    total = (
        integral[:-size:s, :-size:s]
        - integral[:-size:s, size::s]
        - integral[size::s, :-size:s]
        + integral[size::s, size::s]
    )
    return total / size**2


def _channel(ref: np.ndarray, dist: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Gain g and distortion variance sigma_v^2 of dist = g ref + v, per window."""
    mu_x, mu_y = _box_means(ref, size), _box_means(dist, size)
    var_x = _box_means(ref * ref, size) - mu_x**2
    var_y = _box_means(dist * dist, size) - mu_y**2
    cov = _box_means(ref * dist, size) - mu_x * mu_y
    cov[(var_x < 0) | (var_y < 0)] = 0  # rounding below zero: no signal there
    var_x, var_y = np.maximum(var_x, 0), np.maximum(var_y, 0)
    gain = cov / (var_x + TOLERANCE)
    noise = var_y - gain * cov
    flat_ref, flat_dist = var_x < TOLERANCE, var_y < TOLERANCE
    gain[flat_ref], noise[flat_ref] = 0, var_y[flat_ref]
    gain[flat_dist], noise[flat_dist] = 0, 0
    negative = gain < 0
    noise[negative], gain[negative] = var_y[negative], 0
    return gain, np.maximum(noise, TOLERANCE)


def _blocks(band: np.ndarray, stride: int) -> np.ndarray:
    """(9, positions): every 3x3 neighbourhood (at `stride`) as a column, row-major."""
    windows = np.lib.stride_tricks.sliding_window_view(band, (BLOCK, BLOCK))[::stride, ::stride]
    return windows.reshape(-1, BLOCK * BLOCK).T


class VifReference:
    """A reference's subbands and Gaussian scale mixture model, computed once per case."""

    def __init__(self, reference: np.ndarray):
        self.subbands = _subbands(reference)
        self.mixture = []  # per subband: (s, the 9 eigenvalues of the block covariance)
        for band in self.subbands:
            eigenvalues, vectors = np.linalg.eigh(np.cov(_blocks(band, 1)))
            eigenvalues = np.maximum(eigenvalues, TOLERANCE)
            covariance = vectors @ np.diag(eigenvalues) @ vectors.T
            blocks = _blocks(band, BLOCK)
            s = np.sum(np.linalg.inv(covariance) @ blocks * blocks, axis=0) / BLOCK**2
            shape = (band.shape[0] // BLOCK, band.shape[1] // BLOCK)
            self.mixture.append((s.reshape(shape), eigenvalues))

    def against(self, distorted: np.ndarray) -> float:
        numerators, denominators = [], []
        for index, (ref_band, dist_band, (s, eigenvalues)) in enumerate(
            zip(self.subbands, _subbands(distorted), self.mixture, strict=True)
        ):
            gain, noise = _channel(ref_band, dist_band, _window(index))
            edge = int(np.ceil((_window(index) - 1) / 2 / BLOCK))
            inner = (slice(edge, -edge), slice(edge, -edge))
            gain, noise, s = gain[inner], noise[inner], s[inner]
            lam = eigenvalues[:, None, None]
            numerators.append(
                np.log(1 + gain**2 * s * lam / (noise + NOISE_VARIANCE)).mean(axis=(1, 2)).sum()
            )
            denominators.append(np.log(1 + s * lam / NOISE_VARIANCE).mean(axis=(1, 2)).sum())
        return float(np.mean(np.add(numerators, 1e-4)) / np.mean(np.add(denominators, 1e-4)))


def vif_for_case(
    reference: np.ndarray, reconstructions: list[np.ndarray], *, maxval: float | None = None
) -> list[float | MetricInputError]:
    """VIF of each reconstruction against one reference, or the error of a pair it cannot
    compare or is undefined on; the reference is scaled and modelled once per slice."""
    if not reconstructions:
        return []
    peak = float(reference.max()) if maxval is None else float(maxval)

    def to_255(image: np.ndarray) -> np.ndarray:
        return 255 * np.asarray(image, np.float64).reshape(-1, *image.shape[-2:]) / peak

    models = None
    values: list[float | MetricInputError] = []
    for pred in reconstructions:
        try:
            check_pair(reference, pred)
        except MetricInputError as error:
            values.append(error)
            continue
        models = models or [VifReference(ref_slice) for ref_slice in to_255(reference)]
        value = float(np.mean([m.against(s) for m, s in zip(models, to_255(pred), strict=True)]))
        values.append(
            value
            if np.isfinite(value)
            else MetricInputError("vif: undefined for this pair (a flat reference subband)")
        )
    return values


def vif(gt: np.ndarray, pred: np.ndarray, *, maxval: float | None = None) -> float:
    """Steerable-pyramid VIF of a reconstruction against its reference (mean over slices).

    Args:
        gt: reference, (H, W) or (slices, H, W); each slice at least 48 pixels a side (four
            pyramid scales of whole 3x3 blocks).
        pred: reconstruction, same shape.
        maxval: what both images are divided by before the x255; default the reference's max.

    Returns:
        VIF, 1 for an identical pair, lower as information is lost. Higher is better.
    """
    (value,) = vif_for_case(gt, [pred], maxval=maxval)
    if isinstance(value, MetricInputError):
        raise value
    return value
