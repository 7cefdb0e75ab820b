"""PSNR, SSIM and NMSE sums on the CPU: one compiled pass per slice, no torch.

The conventions are those of `metrics.image` (fastMRI's, scikit-image's SSIM defaults). On a
CPU the torch maths makes a dozen float64 passes over every map and needs torch itself, whose
import alone took longer than a plain scikit-image loop spends on a 400-slice volume. Here each
slice is read once per statistic into 7-wide running sums, rows then columns, and the SSIM map
is summed as it is formed; slices run in parallel on the machine's cores.

Numba compiles the kernel on first use and caches it on disk beside this file
(`__pycache__`), so later processes load it in milliseconds.
"""

from __future__ import annotations

import numba
import numpy as np

from metrics.image import SSIM_K1, SSIM_K2, SSIM_WINDOW


@numba.njit(cache=True, nogil=True)
def _window_sums(image: np.ndarray, out: np.ndarray, row: np.ndarray) -> None:
    """Sums of every 7x7 block of `image` that fits (no padding) into `out`, (H-6, W-6).

    `row` is scratch of shape (H, W-6) for the horizontal pass. Running sums in float64:
    one add and one subtract per pixel per axis, whatever the window size.
    """
    height, width = image.shape
    k = SSIM_WINDOW
    for i in range(height):
        total = 0.0
        for j in range(k):
            total += image[i, j]
        row[i, 0] = total
        for j in range(k, width):
            total += image[i, j] - image[i, j - k]
            row[i, j - k + 1] = total
    cols = width - k + 1
    for j in range(cols):
        total = 0.0
        for i in range(k):
            total += row[i, j]
        out[0, j] = total
    for i in range(1, height - k + 1):
        for j in range(cols):
            out[i, j] = out[i - 1, j] + row[i + k - 1, j] - row[i - 1, j]


@numba.njit(cache=True, parallel=True)
def pixel_sums_cpu(gt: np.ndarray, preds: np.ndarray, peak: float) -> np.ndarray:
    """What PSNR, SSIM and NMSE need, summed over the slices given.

    Args:
        gt: references, (S, H, W) float64, C-contiguous.
        preds: reconstructions of that reference, (R, S, H, W) float64.
        peak: the data range (the volume reference's maximum).

    Returns:
        (R, 3) float64: squared error, sum of the slice SSIMs, and the reference's energy.
    """
    n_recs, n_slices, height, width = preds.shape
    k = SSIM_WINDOW
    rows, cols = height - k + 1, width - k + 1
    window = k * k
    cov_norm = window / (window - 1.0)
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    per_slice = np.zeros((n_slices, n_recs, 3))
    for s in numba.prange(n_slices):
        x = gt[s]
        scratch = np.empty((height, cols))
        sx = np.empty((rows, cols))
        sxx = np.empty((rows, cols))
        sy = np.empty((rows, cols))
        syy = np.empty((rows, cols))
        sxy = np.empty((rows, cols))
        xx = x * x
        _window_sums(x, sx, scratch)
        _window_sums(xx, sxx, scratch)
        energy = xx.sum()
        for r in range(n_recs):
            y = preds[r, s]
            difference = x - y
            _window_sums(y, sy, scratch)
            _window_sums(y * y, syy, scratch)
            _window_sums(x * y, sxy, scratch)
            ssim_total = 0.0
            for i in range(rows):
                for j in range(cols):
                    ux = sx[i, j] / window
                    uy = sy[i, j] / window
                    vx = cov_norm * (sxx[i, j] / window - ux * ux)
                    vy = cov_norm * (syy[i, j] / window - uy * uy)
                    vxy = cov_norm * (sxy[i, j] / window - ux * uy)
                    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
                    denominator = (ux * ux + uy * uy + c1) * (vx + vy + c2)
                    ssim_total += numerator / denominator
            per_slice[s, r, 0] = (difference * difference).sum()
            per_slice[s, r, 1] = ssim_total / (rows * cols)
            per_slice[s, r, 2] = energy
    return per_slice.sum(axis=0)
