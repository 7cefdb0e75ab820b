"""Writes the 8-bit PNG pairs on which HFEN, VIF and NQM are pinned against the reference
study's code: `python tests/metrics/data/reference_suite/make_pairs.py` (seeded; the PNGs are
committed, so the pinned values never depend on re-running this).

Each reference is a demo slice scaled to reach 255 (the study's images are 8-bit PNGs read as
[0, 1]); each reconstruction a zero-filled one of it, rounded to 8 bits. One pair is cropped
to 256 x 200, so that a non-square image is pinned too.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from fixtures.images import load_slice
from fixtures.simulation import zero_filled_series

HERE = Path(__file__).resolve().parent
PAIRS = {  # name: (slice, columns kept, acceleration, mask)
    "s1-axial-4x": ("s1-axial", slice(None), 4, "random"),
    "abdomen-fat-8x-256x200": ("abdomen-fat", slice(28, 228), 8, "equispaced"),
    "colin27-axial-2x": ("colin27-axial", slice(None), 2, "random"),
}


def to_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(path)


def main() -> None:
    for name, (slice_id, columns, acceleration, mask) in PAIRS.items():
        reference = load_slice(slice_id).astype(np.float64)[:, columns]
        reference = 255 * reference / reference.max()
        (reconstruction,) = zero_filled_series(
            reference, (acceleration,), rng=np.random.default_rng(0), mask=mask
        )
        to_png(reference, HERE / f"{name}-reference.png")
        to_png(reconstruction, HERE / f"{name}-reconstruction.png")


if __name__ == "__main__":
    main()
