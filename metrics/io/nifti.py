"""NIfTI-1 and NIfTI-2 single files (`.nii`, `.nii.gz`), read as untrusted, and turned the way
a radiologist reads them.

The header is read first (gunzipping only its bytes), its shape is checked against the limit,
and then exactly the bytes it declares (extensions and voxels) are read: a `.nii.gz` of a few
kilobytes cannot inflate to more than the image it admits to being.

A NIfTI's voxel order is whatever its writer chose; its affine says where each axis points.
Shown in array order, Colin27's axial brain lay on its side. So a volume is brought to the
closest RAS+ axes (nibabel's `as_closest_canonical`: flips and transposes only, never a
resampling, an oblique affine taking its nearest axes), sliced across the plane it was
acquired in (the file's third axis), and each slice laid out in the radiological convention
(docs/interfaces.md): axial and coronal slices with the patient's right on the viewer's left,
anterior (axial) or superior (coronal, sagittal) at the top, and sagittal slices with anterior
on the left.
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
    if len(shape) < 3 or any(side != 1 for side in shape[3:]):
        # Not one spatial volume (2-D, or a series in time): array order, slices first;
        # the caller refuses what is not an image.
        volume = np.squeeze(np.asanyarray(image.dataobj))
        return np.moveaxis(volume, -1, 0) if volume.ndim == 3 else volume
    volume = np.asanyarray(image.dataobj).reshape(shape[:3])
    return np.squeeze(radiological(volume, image.affine))


def radiological(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(slices, rows, columns) of a 3-D `volume` whose voxel-to-world `affine` is given:
    sliced across its own third axis's plane, each slice in the radiological convention.
    Flips and transposes only; an affine that names no direction (all zero) is taken as is."""
    import nibabel as nib

    if not np.isfinite(affine).all() or not np.abs(affine[:3, :3]).sum(axis=0).all():
        return np.moveaxis(volume, -1, 0)
    orientation = nib.orientations.io_orientation(affine)  # per array axis: RAS axis, sign
    ras = nib.orientations.apply_orientation(volume, orientation)  # axes now R, A, S (+)
    across = int(orientation[2, 0])  # the plane the slices were acquired in
    # Indexing RAS+ axes: [::-1] on R puts the patient's right first (the viewer's left),
    # on A anterior first, on S superior first (the top row).
    if across == 2:  # axial: slices inferior to superior, rows anterior to posterior
        laid_out = np.transpose(ras[::-1, ::-1, :], (2, 1, 0))
    elif across == 1:  # coronal: slices posterior to anterior, rows superior to inferior
        laid_out = np.transpose(ras[::-1, :, ::-1], (1, 2, 0))
    else:  # sagittal: slices right to left, rows superior to inferior, anterior on the left
        laid_out = np.transpose(ras[::-1, ::-1, ::-1], (0, 2, 1))
    return np.ascontiguousarray(laid_out)
