"""The image readers against files whose internals are drawn by Hypothesis (issue 31): HDF5
storage layouts, filters, links and types; DICOM transfer syntaxes and declared sizes; NIfTI
headers; PNG sizes. Whatever the file: an array within the voxel limit, or one ImageReadError;
never another exception, never the bytes of a file outside the sample, never more memory
than the limit admits (traced allocations).

Profiles (tests/conftest.py): `ci` replays a fixed set; `HYPOTHESIS_PROFILE=search` explores
(docs/benchmarks.md, Hostile images, says how many examples ran).
"""

from __future__ import annotations

import gzip
import tempfile
import tracemalloc
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

from metrics.bench import bombs
from metrics.io import ImageReadError, load_image

LIMIT = 4096  # voxels: every drawn "large" size is far past it
PEAK_BYTES = 8 * 2**20
SECRET = b"SECRET-" * 200
SIDES = st.sampled_from([1, 2, 8, 16, 64, 100, 4096, 65535])


@st.composite
def h5_files(draw, folder: Path) -> Path:
    path = folder / "f.h5"
    secret = folder.parent / "secret.bin"
    shape = (draw(SIDES), draw(SIDES))
    dtype = draw(st.sampled_from(["f4", "f8", "i2", "u1", "c8", "compound", "S4"]))
    numpy_dtype = np.dtype([("a", "f4"), ("b", "i2")]) if dtype == "compound" else np.dtype(dtype)
    storage = draw(st.sampled_from(["plain", "chunked", "external", "compact", "bomb"]))
    link = draw(st.sampled_from(["hard", "hard", "soft", "external"]))
    name = draw(st.sampled_from(["reconstruction", "reconstruction_rss", "other"]))
    options: dict = {}
    if storage == "chunked":
        options["chunks"] = tuple(min(s, draw(st.sampled_from([1, 4, 16]))) for s in shape)
        options.update(
            draw(
                st.sampled_from(
                    [
                        {"compression": "gzip"},
                        {"compression": "lzf"},
                        {"shuffle": True, "compression": "gzip"},
                        {"fletcher32": True},
                        {"scaleoffset": 0} if numpy_dtype.kind in "iu" else {},
                    ]
                )
            )
        )
    if storage == "bomb":
        return bombs.h5_deflate_chunk(path, draw(st.sampled_from([2**16, 2**22])))
    with h5py.File(path, "w") as handle:
        target = name if link == "hard" else "data"
        if storage == "external":
            size = shape[0] * shape[1] * numpy_dtype.itemsize
            with open(secret, "wb") as out:  # sparse past the secret: no memory, little disk
                out.write(SECRET)
                out.truncate(max(size, len(SECRET)))
            handle.create_dataset(
                target, shape=shape, dtype=numpy_dtype, external=[(str(secret), 0, size)]
            )
        elif storage == "compact" and numpy_dtype.fields is None:
            plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            plist.set_layout(h5py.h5d.COMPACT)
            small = (min(shape[0], 16), min(shape[1], 16))
            space = h5py.h5s.create_simple(small)
            h5py.h5d.create(
                handle.id, target.encode(), h5py.h5t.py_create(numpy_dtype), space, dcpl=plist
            )
        else:
            handle.create_dataset(target, shape=shape, dtype=numpy_dtype, **options)
            if (
                shape[0] * shape[1] <= 4096
                and numpy_dtype.fields is None
                and numpy_dtype.kind != "S"
            ):
                handle[target][...] = (
                    np.arange(shape[0] * shape[1]).reshape(shape) % 7 + 1
                ).astype(numpy_dtype)
        if link == "soft":
            handle[name] = h5py.SoftLink("/data")
        elif link == "external":
            with h5py.File(folder.parent / "other.h5", "w") as other:
                other["data"] = np.ones((4, 4))
            handle[name] = h5py.ExternalLink(str(folder.parent / "other.h5"), "/data")
    return path


def mr_dataset(syntax, rows: int, columns: int, bits: int) -> pydicom.Dataset:
    """A monochrome MR image's attributes, without pixels, in `syntax`."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    return ds


@st.composite
def dicom_files(draw, folder: Path) -> Path:
    syntax = draw(
        st.sampled_from(
            [
                ImplicitVRLittleEndian,
                ExplicitVRLittleEndian,
                ExplicitVRBigEndian,
                DeflatedExplicitVRLittleEndian,
                RLELossless,
                JPEG2000Lossless,
            ]
        )
    )
    kind = draw(st.sampled_from(["declared", "deflate-bomb", "rle-bomb"]))
    path = folder / "f.dcm"
    if kind == "deflate-bomb":
        return bombs.dicom_deflated(path, draw(st.sampled_from([2**16, 2**22])))
    if kind == "rle-bomb":
        return bombs.dicom_rle(path, draw(st.sampled_from([2**16, 2**22])))
    rows, columns, frames = draw(SIDES), draw(SIDES), draw(st.sampled_from([1, 2, 1000]))
    bits = draw(st.sampled_from([8, 16, 32, 12]))
    ds = mr_dataset(syntax, rows, columns, bits)
    ds.NumberOfFrames = frames
    length = draw(st.sampled_from([0, 2, 64, 4096]))
    if syntax in (RLELossless, JPEG2000Lossless):
        from pydicom.encaps import encapsulate

        size = max(length, 2)  # a fragment holds at least 2 bytes
        ds.PixelData = encapsulate([draw(st.binary(min_size=size, max_size=size))])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = bytes(length)
    ds.save_as(path, enforce_file_format=True)
    return path


@st.composite
def nifti_files(draw, folder: Path) -> Path:
    sides = st.sampled_from([1, 2, 8, 64, 4096, 32767])  # NIfTI-1 dims are int16
    shape = (draw(sides), draw(sides), draw(st.sampled_from([1, 3, 512])))
    header = draw(st.sampled_from([nib.Nifti1Header, nib.Nifti2Header]))()
    header.set_data_shape(shape)
    header.set_data_dtype(draw(st.sampled_from([np.uint8, np.int16, np.float32, np.float64])))
    size = header.sizeof_hdr if hasattr(header, "sizeof_hdr") else len(header.binaryblock)
    header["vox_offset"] = draw(st.sampled_from([size + 4, 4096, 2**31 - 1]))
    body = draw(st.sampled_from([0, 64, 4096]))
    data = header.binaryblock + b"\x00" * 4 + bytes(body)
    compressed = draw(st.booleans())
    path = folder / ("f.nii.gz" if compressed else "f.nii")
    path.write_bytes(gzip.compress(data) if compressed else data)
    return path


@st.composite
def png_files(draw, folder: Path) -> Path:
    path = folder / "f.png"
    if draw(st.booleans()):
        return bombs.png_flat(path, draw(st.sampled_from([2**13, 2**20])))
    mode = draw(st.sampled_from(["L", "I;16", "1", "RGB", "P"]))
    Image.new(mode, (draw(SIDES.filter(lambda s: s <= 4096)), 8)).save(path)
    return path


def peak_of(path: Path) -> tuple[int, str]:
    tracemalloc.start()
    try:
        image = load_image(path, max_voxels=LIMIT)
        outcome = f"read {image.shape}"
        assert image.size <= LIMIT and np.isfinite(image).all()
    except ImageReadError as error:
        outcome = str(error)
        assert "SECRET" not in outcome
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, outcome


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_format_internals_give_an_image_within_the_limit_or_one_clear_error(data):
    with tempfile.TemporaryDirectory(prefix="io-fuzz-") as root:
        folder = Path(root) / "sample"
        folder.mkdir()
        build = data.draw(st.sampled_from([h5_files, dicom_files, nifti_files, png_files]))
        path = data.draw(build(folder))
        peak, outcome = peak_of(path)
        note(f"{path.name}: {outcome}")
        # What happened, without the numbers: the statistics show every refusal was reached.
        event(
            f"{path.suffix}: {''.join(c for c in outcome.split(': ', 1)[-1] if c.isalpha() or c == ' ')[:50]}"
        )
        assert peak < PEAK_BYTES, f"{path.name}: {peak:,} bytes traced ({outcome})"


ENCODINGS = [
    "npy",
    "dicom-explicit",
    "dicom-implicit",
    "dicom-big-endian",
    "dicom-deflated",
    "dicom-rle",
    "nii",
    "nii.gz",
    "png",
    "h5",
    "h5-gzip-shuffle-fletcher32",
]


def write_valid(folder: Path, image: np.ndarray, encoding: str) -> Path:
    if encoding == "npy":
        np.save(folder / "v.npy", image)
        return folder / "v.npy"
    if encoding.startswith("dicom"):
        syntax = {
            "dicom-explicit": ExplicitVRLittleEndian,
            "dicom-implicit": ImplicitVRLittleEndian,
            "dicom-big-endian": ExplicitVRBigEndian,
            "dicom-deflated": DeflatedExplicitVRLittleEndian,
            "dicom-rle": ExplicitVRLittleEndian,
        }[encoding]
        ds = mr_dataset(syntax, *image.shape, 16)
        big_endian = syntax == ExplicitVRBigEndian
        ds.PixelData = image.astype(">u2" if big_endian else "<u2").tobytes()
        if encoding == "dicom-rle":
            ds.compress(RLELossless, encoding_plugin="pydicom")
        ds.save_as(folder / "v.dcm", enforce_file_format=True)
        return folder / "v.dcm"
    if encoding.startswith("nii"):
        path = folder / f"v.{encoding}"
        nib.save(nib.Nifti1Image(image[..., None].astype(np.float32), np.eye(4)), path)
        return path
    if encoding == "png":
        Image.fromarray(image.astype(np.uint16)).save(folder / "v.png")
        return folder / "v.png"
    options = (
        {"chunks": True, "compression": "gzip", "shuffle": True, "fletcher32": True}
        if encoding != "h5"
        else {}
    )
    with h5py.File(folder / "v.h5", "w") as handle:
        handle.create_dataset("reconstruction", data=image.astype(np.float32), **options)
    return folder / "v.h5"


@hypothesis_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    encoding=st.sampled_from(ENCODINGS),
    rows=st.integers(2, 1100),  # a single row is no image (refused)
    columns=st.integers(2, 1100),
    seed=st.integers(0, 3),
)
def test_valid_files_of_every_encoding_read_back_exactly(encoding, rows, columns, seed):
    """The other side of every bound: an image within the limit, however it is encoded (up to
    2.4 MB of 16-bit pixels, past the 1 MiB a deflated DICOM's attributes are read in), reads
    back exactly."""
    image = np.random.default_rng(seed).integers(1, 60_000, (rows, columns)).astype(np.uint16)
    image[0, 0] = 0  # not constant, whatever the size
    with tempfile.TemporaryDirectory(prefix="io-valid-") as root:
        path = write_valid(Path(root), image, encoding)
        loaded = load_image(path)
    expected = np.squeeze(image.astype(np.float64))
    if encoding.startswith("nii"):
        # Written with an identity affine: RAS+, shown the radiological way (metrics.io.nifti).
        expected = image.astype(np.float32).astype(np.float64)[::-1, ::-1].T
    assert loaded.shape == expected.shape and np.array_equal(loaded, expected), encoding
