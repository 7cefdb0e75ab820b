"""DICOM files and series folders, read as untrusted.

Only transfer syntaxes whose decoded size this module can bound before decoding are read:
native pixels (implicit or explicit VR, either byte order), Deflated Explicit VR Little Endian
(inflated here with a bound; pydicom would inflate the whole stream) and RLE Lossless (each
segment's decoded length is counted before pydicom decodes it: a hostile segment can say
"repeat 128 times" in two bytes). Lossy and other compressed syntaxes are refused with the
command that converts them; metrics need the original pixels anyway.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np

from metrics.io.limits import HEADER_ALLOWANCE, ImageReadError, ImageTooLargeError, Limits

_NATIVE = (
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
)
_DEFLATED = "1.2.840.10008.1.2.1.99"
_RLE = "1.2.840.10008.1.2.5"


def _dataset(path: Path, limits: Limits, *, stop_before_pixels: bool = False) -> Any:
    """The file's dataset, with every compressed part of it bounded before it is inflated."""
    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    limits.check_file_bytes(path)
    with open(path, "rb") as handle:
        preamble = read_preamble(handle, False)
        meta = _read_file_meta_info(handle)
        syntax = str(meta.get("TransferSyntaxUID", "") or "")
        if syntax and syntax not in (*_NATIVE, _DEFLATED, _RLE):
            name = getattr(meta.TransferSyntaxUID, "name", syntax)
            raise ImageReadError(
                f"{path.name}: transfer syntax {name} is not read; export the images "
                "uncompressed (e.g. `gdcmconv --raw IN OUT` or `dcmdjpeg IN OUT`)"
            )
        if syntax != _DEFLATED:
            handle.seek(0)
            return pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels)
        zipped = handle.read()
    raw = _inflate_bounded(path, zipped, limits)
    stop = _is_pixel_data if stop_before_pixels else None
    dataset = read_dataset(cast(BinaryIO, DicomBytesIO(raw)), False, True, stop_when=stop)
    return FileDataset(
        path,
        dataset,
        preamble=preamble,
        file_meta=meta,
        is_implicit_VR=False,
        is_little_endian=True,
    )


def _is_pixel_data(tag: Any, vr: Any, length: Any) -> bool:
    return bool(tag == 0x7FE00010)


def _inflate_bounded(path: Path, zipped: bytes, limits: Limits) -> bytes:
    """Inflate the attributes first, then only as many bytes as they declare for the pixels."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset

    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(zipped, HEADER_ALLOWANCE)
        attributes = read_dataset(
            cast(BinaryIO, DicomBytesIO(raw)), False, True, stop_when=_is_pixel_data
        )
        frames = int(attributes.get("NumberOfFrames", 1) or 1)
        shape = (frames, int(attributes.Rows), int(attributes.Columns))
        limits.check_voxels(path, shape)
        samples = int(attributes.get("SamplesPerPixel", 1) or 1)
        bits = int(attributes.get("BitsAllocated", 0) or 0)
        expected = int(np.prod(shape)) * samples * max(bits, 8) // 8 + HEADER_ALLOWANCE
        raw += inflater.decompress(inflater.unconsumed_tail, expected + 1 - len(raw))
    except zlib.error as error:
        raise ImageReadError(f"{path.name}: the deflated dataset is damaged ({error})") from None
    except ImageReadError:
        raise
    except (AttributeError, TypeError, ValueError, EOFError) as error:
        raise ImageReadError(
            f"{path.name}: no readable Rows, Columns in the deflated dataset's first "
            f"{HEADER_ALLOWANCE:,} bytes ({error})"
        ) from None
    # Input left over once the stream has ended is padding (DICOM pads to an even length).
    if len(raw) > expected or (inflater.unconsumed_tail and not inflater.eof):
        raise ImageTooLargeError(
            f"{path.name}: the deflated dataset inflates past the {expected:,} bytes its "
            "attributes declare (a damaged or hostile file)",
            voxels=None,
            limit=limits.max_voxels,
        )
    return raw


def _check_rle(path: Path, dataset: Any, frames: int) -> None:
    """Count what each RLE segment decodes to, stopping past its share of the frame."""
    from pydicom.encaps import generate_frames

    rows, columns = int(dataset.Rows), int(dataset.Columns)
    for frame in generate_frames(dataset.PixelData, number_of_frames=frames):
        if len(frame) < 64:
            raise ImageReadError(f"{path.name}: an RLE frame has no segment table")
        count, *offsets = struct.unpack("<16I", frame[:64])
        if not 1 <= count <= 15:
            raise ImageReadError(f"{path.name}: an RLE frame declares {count} segments")
        ends = [*offsets[1:count], len(frame)]
        # Encoders pad segments and decoders drop what runs past a plane, so a segment may
        # decode to a little more than its plane; twice that bounds memory all the same.
        limit = 2 * rows * columns + 64
        for start, end in zip(offsets[:count], ends, strict=True):
            if _rle_length(frame[start:end], limit) > limit:
                raise ImageTooLargeError(
                    f"{path.name}: an RLE segment decodes past twice its {rows * columns:,} "
                    "bytes (a damaged or hostile file)",
                    voxels=None,
                    limit=rows * columns,
                )


def _rle_length(segment: bytes, limit: int) -> int:
    """Bytes the PackBits segment decodes to, counted up to just past `limit`."""
    length = position = 0
    size = len(segment)
    while position < size and length <= limit:
        header = segment[position]
        if header < 128:  # copy the next header + 1 bytes (as many as there are)
            length += min(header + 1, size - position - 1)
            position += header + 2
        elif header > 128:  # repeat the next byte 257 - header times
            length += 257 - header
            position += 2
        else:
            position += 1
    return length


def read_dicom(path: Path, limits: Limits) -> np.ndarray:
    from pydicom.pixels.processing import apply_rescale

    dataset = _dataset(path, limits)
    if "PixelData" not in dataset:
        raise ImageReadError(f"{path.name}: DICOM file has no pixel data")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    limits.check_voxels(path, (frames, int(dataset.Rows), int(dataset.Columns)))
    if int(dataset.get("SamplesPerPixel", 1)) != 1:
        raise ImageReadError(
            f"{path.name}: DICOM is colour (SamplesPerPixel > 1), not an MR image"
        )
    if int(dataset.get("BitsAllocated", 0) or 0) not in (1, 8, 16, 32, 64):
        raise ImageReadError(f"{path.name}: BitsAllocated {dataset.get('BitsAllocated')}")
    if dataset.file_meta.get("TransferSyntaxUID") == _RLE:
        _check_rle(path, dataset, frames)
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


def read_dicom_series(folder: Path, limits: Limits) -> np.ndarray:
    """A folder of single-frame DICOM files as one (slices, H, W) volume.

    Slices are ordered by their ImagePositionPatient along the slice normal (the cross product
    of ImageOrientationPatient's row and column cosines), then by InstanceNumber; without
    positions, by InstanceNumber alone. Files of another series, another size, orientation or
    pixel spacing, two slices at one position and a gap where a slice is missing are errors
    that name the file.
    """
    from pydicom.errors import InvalidDicomError

    files = _series_files(folder)
    limits.check_voxels(folder, (len(files), 1, 1))
    headers = []
    for path in files:
        try:
            dataset = _dataset(path, limits, stop_before_pixels=True)
        except ImageReadError:
            raise
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
    limits.check_voxels(folder, (len(files), int(first.Rows), int(first.Columns)))
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
            slices.append(read_dicom(files[i], limits))  # each slice as a DICOM file of its own
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
