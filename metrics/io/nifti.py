"""NIfTI-1 and NIfTI-2 single files (`.nii`, `.nii.gz`), read as untrusted.

The header is read first (gunzipping only its bytes), its shape is checked against the limit,
and then exactly the bytes it declares (extensions and voxels) are read: a `.nii.gz` of a few
kilobytes cannot inflate to more than the image it admits to being.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Literal

import numpy as np

from metrics.io.limits import HEADER_ALLOWANCE, ImageReadError, Limits

_SIZES = {348: "Nifti1", 540: "Nifti2"}
_BYTE_ORDERS: tuple[Literal["little", "big"], ...] = ("little", "big")


def read_nifti(path: Path, limits: Limits) -> np.ndarray:
    import nibabel as nib

    limits.check_file_bytes(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        head = handle.read(540)
        kind = next(
            (
                name
                for order in _BYTE_ORDERS
                if (name := _SIZES.get(int.from_bytes(head[:4], order))) is not None
            ),
            None,
        )
        if kind is None:
            raise ImageReadError(f"{path.name}: not a NIfTI-1 or NIfTI-2 file")
        image_class = nib.Nifti1Image if kind == "Nifti1" else nib.Nifti2Image
        size = 348 if kind == "Nifti1" else 540
        header = image_class.header_class.from_fileobj(io.BytesIO(head[:size]))
        shape = header.get_data_shape()
        limits.check_voxels(path, shape)
        offset = int(header.get_data_offset())
        if not size <= offset <= size + HEADER_ALLOWANCE:
            raise ImageReadError(
                f"{path.name}: voxel offset {offset:,}; at most {HEADER_ALLOWANCE:,} bytes of "
                "extensions are read"
            )
        expected = offset + int(np.prod(shape, dtype=np.int64)) * header.get_data_dtype().itemsize
        data = head[:expected] + handle.read(max(0, expected - len(head)))
    if len(data) < expected:
        raise ImageReadError(
            f"{path.name}: holds {len(data):,} bytes where its header declares {expected:,}"
        )
    image = image_class.from_bytes(data)
    volume = np.squeeze(np.asanyarray(image.dataobj))
    # NIfTI stores slices along the last axis; this project puts them first.
    return np.moveaxis(volume, -1, 0) if volume.ndim == 3 else volume
