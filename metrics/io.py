"""Read MR images from the formats researchers bring: NumPy, DICOM (files or series folders),
NIfTI, PNG, fastMRI HDF5.

Every reader returns a finite float64 magnitude array, 2-D (H, W) or 3-D (slices, H, W).
Anything else raises `ImageReadError` with a message that names the file and the problem, so
command lines and the importer can report it as one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# Geometry must agree to this (direction cosines, millimetres) for slices to form one volume;
# slice gaps may differ from their median by this fraction before one counts as missing.
GEOMETRY_TOLERANCE = 1e-3
SPACING_TOLERANCE = 0.1


def _series_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise ImageReadError(f"{folder.name}/: the DICOM series folder is empty")
    others = [p for p in files if not p.is_file()]
    if others:
        raise ImageReadError(f"{others[0].name}: a DICOM series folder holds only files")
    return files


def _slice_geometry(path: Path, dataset: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(orientation as 6 direction cosines, position) of a slice, or None without them."""
    orientation = dataset.get("ImageOrientationPatient")
    position = dataset.get("ImagePositionPatient")
    if orientation is None or position is None:
        return None
    try:
        cosines = np.array([float(v) for v in orientation], dtype=np.float64)
        origin = np.array([float(v) for v in position], dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageReadError(
            f"{path.name}: unreadable ImageOrientationPatient or ImagePositionPatient"
        ) from None
    if cosines.shape != (6,) or origin.shape != (3,) or not np.isfinite([*cosines, *origin]).all():
        raise ImageReadError(
            f"{path.name}: malformed ImageOrientationPatient or ImagePositionPatient"
        )
    return cosines, origin


def _read_dicom_series(folder: Path) -> np.ndarray:
    """A folder of single-frame DICOM files as one (slices, H, W) volume.

    Slices are ordered by their ImagePositionPatient along the slice normal (the cross product
    of ImageOrientationPatient's row and column cosines), then by InstanceNumber; without
    positions, by InstanceNumber alone. Files of another series, another size, orientation or
    pixel spacing, two slices at one position and a gap where a slice is missing are errors
    that name the file.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = _series_files(folder)
    _check_size(folder, (len(files), 1, 1))
    headers = []
    for path in files:
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError) as error:
            raise ImageReadError(f"{path.name}: not a DICOM file ({error})") from None
        headers.append((path, dataset))
    first_path, first = headers[0]
    expected = {
        "SeriesInstanceUID": first.get("SeriesInstanceUID"),
        "Rows": first.get("Rows"),
        "Columns": first.get("Columns"),
    }
    spacing = first.get("PixelSpacing")
    geometry = [_slice_geometry(path, dataset) for path, dataset in headers]
    if any(g is None for g in geometry) and not all(g is None for g in geometry):
        missing = next(path for (path, _), g in zip(headers, geometry, strict=True) if g is None)
        raise ImageReadError(
            f"{missing.name}: has no ImagePositionPatient or ImageOrientationPatient, unlike {first_path.name}"
        )
    for path, dataset in headers:
        if int(dataset.get("NumberOfFrames", 1) or 1) != 1:
            raise ImageReadError(
                f"{path.name}: a multi-frame file in a series folder; give it as a file of its own"
            )
        for tag, value in expected.items():
            if dataset.get(tag) != value:
                what = (
                    "another series" if tag == "SeriesInstanceUID" else f"{tag} {dataset.get(tag)}"
                )
                raise ImageReadError(
                    f"{path.name}: {what}, unlike {first_path.name} ({value}); one folder is one series"
                )
        other = dataset.get("PixelSpacing")
        if (other is None) != (spacing is None) or (
            other is not None
            and not np.allclose(
                [float(v) for v in other], [float(v) for v in spacing], atol=GEOMETRY_TOLERANCE
            )
        ):
            raise ImageReadError(
                f"{path.name}: PixelSpacing {other}, unlike {first_path.name} ({spacing})"
            )
    _check_size(folder, (len(files), int(first.Rows), int(first.Columns)))
    instance = [int(dataset.get("InstanceNumber", 0) or 0) for _, dataset in headers]
    located = [g for g in geometry if g is not None]
    if located:
        cosines = located[0][0]
        for (path, _), (other_cosines, _) in zip(headers, located, strict=True):
            if not np.allclose(other_cosines, cosines, atol=GEOMETRY_TOLERANCE):
                raise ImageReadError(
                    f"{path.name}: ImageOrientationPatient differs from {first_path.name}'s"
                )
        normal = np.cross(cosines[:3], cosines[3:])
        along = [float(origin @ normal) for _, origin in located]
        order = sorted(range(len(files)), key=lambda i: (along[i], instance[i]))
        _check_gaps([files[i] for i in order], [along[i] for i in order])
    else:
        order = sorted(range(len(files)), key=lambda i: (instance[i], files[i].name))
        numbers = [instance[i] for i in order]
        for previous, current, i in zip(numbers, numbers[1:], order[1:], strict=False):
            if current != previous + 1:
                raise ImageReadError(
                    f"{files[i].name}: InstanceNumber {current} follows {previous}; without "
                    "positions, slices must be numbered consecutively (a slice is missing?)"
                )
    slices = []
    for i in order:
        try:
            slices.append(_read_dicom(files[i]))  # each slice as a DICOM file of its own
        except ImageReadError:
            raise
        except Exception as error:  # each decoder raises its own types for corrupt pixels
            raise ImageReadError(f"{files[i].name}: cannot decode its pixels ({error})") from error
    return np.stack(slices)


def _check_gaps(files: list[Path], along: list[float]) -> None:
    gaps = np.diff(along)
    for i, gap in enumerate(gaps):
        if gap < GEOMETRY_TOLERANCE:
            raise ImageReadError(f"{files[i + 1].name}: at the same position as {files[i].name}")
    if len(gaps) < 2:
        return
    typical = float(np.median(gaps))
    for i, gap in enumerate(gaps):
        if abs(gap - typical) > SPACING_TOLERANCE * typical:
            raise ImageReadError(
                f"{files[i + 1].name}: {gap:.3g} mm after {files[i].name} where slices are "
                f"{typical:.3g} mm apart (a slice is missing, or the spacing is inconsistent)"
            )


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
            `.h5` file, or a folder of single-frame DICOM files (one series, one volume).

    Returns:
        (H, W) or (slices, H, W) float64 array; complex data is taken as magnitude.

    Raises:
        ImageReadError: the file is missing, unreadable, of an unknown type, not 2-D or 3-D,
            empty, larger than MAX_VOXELS (judged from its header, before decoding), or holds
            NaN or infinite values.
    """
    path = Path(path)
    try:
        is_folder = path.is_dir()
    except OSError:  # a name too long for the file system, say: reported below as unusable
        is_folder = False
    reader = _read_dicom_series if is_folder else READERS.get(suffix_of(path))
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
