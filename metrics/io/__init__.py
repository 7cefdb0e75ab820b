"""Read MR images from the formats researchers bring: NumPy, DICOM (files or series folders),
NIfTI, PNG, fastMRI HDF5.

Every reader returns a finite float64 magnitude array, 2-D (H, W) or 3-D (slices, H, W).
Anything else raises `ImageReadError` with a message that names the file and the problem, so
command lines and the importer can report it as one line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metrics.io.dicom import read_dicom, read_dicom_series
from metrics.io.hdf5 import FASTMRI_DATASETS, read_fastmri_h5
from metrics.io.limits import (
    DEFAULT_MAX_VOXELS,
    ImageReadError,
    ImageTooLargeError,
    Limits,
)
from metrics.io.nifti import read_nifti

SUPPORTED_SUFFIXES = (".npy", ".dcm", ".nii", ".nii.gz", ".png", ".h5")

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "FASTMRI_DATASETS",
    "SUPPORTED_SUFFIXES",
    "ImageReadError",
    "ImageTooLargeError",
    "Limits",
    "load_image",
    "suffix_of",
]


def _read_npy(path: Path, limits: Limits) -> np.ndarray:
    limits.check_file_bytes(path)
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ImageReadError(f"{path.name}: .npy format {version[0]}.{version[1]} is unknown")
        # Format 3.0 has 2.0's layout; only its header's text encoding (UTF-8, for structured
        # field names, which no image has) differs, so 2.0's reader gives its shape.
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(handle)
        limits.check_voxels(path, shape)
    return np.load(path, allow_pickle=False)


def _read_png(path: Path, limits: Limits) -> np.ndarray:
    from PIL import Image

    limits.check_file_bytes(path)
    # formats=: a TIFF or PSD named .png is not decoded by another plug-in. Pillow's own
    # bomb warning is replaced by the check below, which refuses before decoding.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path, formats=["PNG"])
    with image:
        limits.check_voxels(path, (image.height, image.width, len(image.getbands())))
        data = np.asarray(image)
    if data.ndim == 3:
        if data.shape[-1] == 4 or not (data[..., :1] == data[..., :3]).all():
            raise ImageReadError(
                f"{path.name}: PNG has colour or alpha channels; expected greyscale"
            )
        data = data[..., 0]
    return data


READERS: dict[str, Callable[[Path, Limits], np.ndarray]] = {
    ".npy": _read_npy,
    ".dcm": read_dicom,
    ".nii": read_nifti,
    ".nii.gz": read_nifti,
    ".png": _read_png,
    ".h5": read_fastmri_h5,
}


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def load_image(path: str | Path, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> np.ndarray:
    """Load one MR image or volume as a finite float64 magnitude array.

    Args:
        path: a `.npy`, `.dcm` (single or multi-frame), `.nii`/`.nii.gz`, `.png` or fastMRI
            `.h5` file, or a folder of single-frame DICOM files (one series, one volume).
        max_voxels: the most voxels the image may declare; a file that declares more, is
            larger on disk than such an image can be, or holds a compressed part that
            inflates past it is refused before it is decoded (docs/deployment.md, Limits).

    Returns:
        (H, W) or (slices, H, W) float64 array; complex data is taken as magnitude.

    Raises:
        ImageReadError: the file is missing, unreadable, of an unknown type, not 2-D or 3-D,
            empty, or holds NaN or infinite values; ImageTooLargeError (one of them) when it
            is larger than `max_voxels`.
    """
    path = Path(path)
    try:
        is_folder = path.is_dir()
    except OSError:  # a name too long for the file system, say: reported below as unusable
        is_folder = False
    reader = read_dicom_series if is_folder else READERS.get(suffix_of(path))
    if reader is None:
        raise ImageReadError(
            f"{path.name}: unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        present = path.exists()
    except OSError as error:
        raise ImageReadError(f"{path.name[:80]}: not a usable path ({error.strerror})") from None
    if not present:
        raise ImageReadError(f"{path}: no such file")
    try:
        data = np.asarray(reader(path, Limits(max_voxels)))
    except ImageReadError:
        raise
    except Exception as error:  # each library raises its own types for a corrupt file
        raise ImageReadError(f"{path.name}: cannot read as {suffix_of(path)} ({error})") from error
    if np.iscomplexobj(data):
        data = np.abs(data)
    # kind: signed, unsigned, float, complex (timedelta64 counts as a number to NumPy).
    if data.dtype.kind not in "iufc":
        raise ImageReadError(f"{path.name}: holds {data.dtype} values, not image intensities")
    data = np.squeeze(data.astype(np.float64))
    if data.ndim not in (2, 3) or data.size == 0:
        raise ImageReadError(
            f"{path.name}: expected a 2-D image or 3-D volume, got shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ImageReadError(f"{path.name}: contains NaN or infinite values")
    return data
