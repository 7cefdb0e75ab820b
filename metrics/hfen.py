"""High-frequency error norm (HFEN), as the reference study's later code computes it.

HFEN = ||LoG(ref) - LoG(rec)|| / ||LoG(ref)||, the Laplacian of Gaussian with sigma 1.5, both
images first divided by the reference's maximum (docs/metrics.md). Lower is better.

The reference study (StanfordMIMI/deep-feature-mr-recon, `dfd_mr_recon/metrics/hfen.py`, HEAD
924eb9e) calls scipy's `gaussian_laplace` on a (1, 1, H, W) array, so its "Laplacian" also
differentiates along the two singleton axes. scipy's sampled second-derivative kernel sums to
-9.6e-5 rather than 0 at sigma 1.5, so that 4-D LoG is the 2-D one plus 2 x (-9.6e-5) x the
smoothed image. This module uses the 2-D LoG of the HFEN paper, per slice; on 8-bit PNG pairs
the two differ by 1.7e-4 to 5.0e-4 relative (tests/metrics/test_reference_suite.py pins it).

References:
    Ravishankar and Bresler, "MR image reconstruction from highly undersampled k-space data by
    dictionary learning", IEEE TMI 30(5), 2011, doi:10.1109/TMI.2010.2090538.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_laplace

from metrics.image import MetricInputError, check_pair, scaled_slices

HFEN_SIGMA = 1.5


def hfen(gt: np.ndarray, pred: np.ndarray, *, maxval: float | None = None) -> float:
    """HFEN of a reconstruction against its reference; the mean over slices for a volume.

    Args:
        gt: reference, (H, W) or (slices, H, W).
        pred: reconstruction, same shape.
        maxval: the value both images are divided by; default the reference's maximum.

    Returns:
        ||LoG(gt - pred)|| / ||LoG(gt)|| (the LoG is linear), 0 for a perfect reconstruction.

    Raises:
        MetricInputError: the pair cannot be compared, or a reference slice has no
            high-frequency content (a flat slice: the ratio is undefined).
    """
    check_pair(gt, pred)
    ref, rec = scaled_slices(gt, pred, maxval)
    values = []
    for ref_slice, rec_slice in zip(ref, rec, strict=True):
        denominator = np.linalg.norm(gaussian_laplace(ref_slice, HFEN_SIGMA))
        if denominator == 0:
            raise MetricInputError("hfen: a reference slice is flat (its LoG is zero)")
        values.append(
            np.linalg.norm(gaussian_laplace(ref_slice - rec_slice, HFEN_SIGMA)) / denominator
        )
    return float(np.mean(values))
