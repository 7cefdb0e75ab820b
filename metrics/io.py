"""Read MR images from the formats researchers bring: NumPy, DICOM, NIfTI, PNG, fastMRI HDF5.

Every reader returns a finite float64 magnitude array, 2-D (H, W) or 3-D (slices, H, W).
Anything else raises `ImageReadError` with a message that names the file and the problem, so
command lines and the importer can report it as one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

FASTMRI_DATASETS = ("reconstruction", "reconstruction_rss")
# 512 x 512 x 512 voxels, 1 GiB as float64: far above any MR series, and low enough that a
# file whose header claims absurd dimensions is refused before anything is decoded.
MAX_VOXELS = 2**27
SUPPORTED_SUFFIXES = (".npy", ".dcm", ".nii", ".nii.gz", ".png", ".h5")


class ImageReadError(ValueError):
    """A file that cannot be used as an MR image (missing, unreadable, wrong shape, not finite)."""


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse, from the header alone, an image too large to decode safely."""
    voxels = int(np.prod([int(side) for side in shape], dtype=object))
    if voxels > MAX_VOXELS:
        raise ImageReadError(
            f"{path.name}: declares {' x '.join(str(int(s)) for s in shape)} = {voxels:,} voxels,"
            f" more than the {MAX_VOXELS:,} an MR image or volume may have"
        )


def _read_npy(path: Path) -> np.ndarray:
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
        _check_size(path, shape)
    return np.load(path, allow_pickle=False)


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.pixels.processing import apply_rescale

    dataset = pydicom.dcmread(path)
    if "PixelData" not in dataset:
        raise ImageReadError(f"{path.name}: DICOM file has no pixel data")
    _check_size(
        path,
        (int(dataset.get("NumberOfFrames", 1) or 1), int(dataset.Rows), int(dataset.Columns)),
    )
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise ImageReadError(
            f"{path.name}: DICOM is colour (SamplesPerPixel > 1), not an MR image"
        )
    return apply_rescale(dataset.pixel_array.astype(np.float64), dataset)


def _read_nifti(path: Path) -> np.ndarray:
    import nibabel as nib

    image = nib.load(path)
    if not isinstance(image, nib.spatialimages.SpatialImage):
        raise ImageReadError(f"{path.name}: not a NIfTI image")
    _check_size(path, image.shape)
    data = np.asanyarray(image.dataobj)
    data = np.squeeze(data)
    # NIfTI stores slices along the last axis; this project puts them first.
    return np.moveaxis(data, -1, 0) if data.ndim == 3 else data


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        _check_size(path, (image.height, image.width, len(image.getbands())))
        data = np.asarray(image)
    if data.ndim == 3:
        if data.shape[-1] == 4 or not (data[..., :1] == data[..., :3]).all():
            raise ImageReadError(
                f"{path.name}: PNG has colour or alpha channels; expected greyscale"
            )
        data = data[..., 0]
    return data


def _read_fastmri_h5(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as handle:
        names = [name for name in handle if isinstance(handle[name], h5py.Dataset)]
        chosen = next((name for name in FASTMRI_DATASETS if name in names), None)
        if chosen is None and len(names) == 1:
            chosen = names[0]
        if chosen is None:
            raise ImageReadError(
                f"{path.name}: expected a dataset named {' or '.join(FASTMRI_DATASETS)} or a single "
                f"dataset; found {', '.join(names) or 'none'}"
            )
        _check_size(path, handle[chosen].shape)
        return handle[chosen][()]


READERS: dict[str, Callable[[Path], np.ndarray]] = {
    ".npy": _read_npy,
    ".dcm": _read_dicom,
    ".nii": _read_nifti,
    ".nii.gz": _read_nifti,
    ".png": _read_png,
    ".h5": _read_fastmri_h5,
}


def suffix_of(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def load_image(path: str | Path) -> np.ndarray:
    """Load one MR image or volume as a finite float64 magnitude array.

    Args:
        path: a `.npy`, `.dcm` (single or multi-frame), `.nii`/`.nii.gz`, `.png` or fastMRI
            `.h5` file.

    Returns:
        (H, W) or (slices, H, W) float64 array; complex data is taken as magnitude.

    Raises:
        ImageReadError: the file is missing, unreadable, of an unknown type, not 2-D or 3-D,
            empty, larger than MAX_VOXELS (judged from its header, before decoding), or holds
            NaN or infinite values.
    """
    path = Path(path)
    reader = READERS.get(suffix_of(path))
    if reader is None:
        raise ImageReadError(
            f"{path.name}: unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        data = np.asarray(reader(path))
    except ImageReadError:
        raise
    except Exception as error:  # each library raises its own types for a corrupt file
        raise ImageReadError(f"{path.name}: cannot read as {suffix_of(path)} ({error})") from error
    if np.iscomplexobj(data):
        data = np.abs(data)
    if not np.issubdtype(data.dtype, np.number) or data.dtype == bool:
        raise ImageReadError(f"{path.name}: holds {data.dtype} values, not image intensities")
    data = np.squeeze(data.astype(np.float64))
    if data.ndim not in (2, 3) or data.size == 0:
        raise ImageReadError(
            f"{path.name}: expected a 2-D image or 3-D volume, got shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ImageReadError(f"{path.name}: contains NaN or infinite values")
    return data
