"""Hostile image files that are small on disk and huge once decoded, for measuring what the
readers allocate (`python -m metrics.bench.bombs DIR` writes them; then run
`/usr/bin/time -v python -m metrics compare DIR/X DIR/X` or an import on each).

Each builder takes the number of voxels the file should declare, so that the tests can make
the same files at the size just past a limit. Kinds:
- `dicom_rle`: RLE Lossless pixel data, runs of 128 zeros (64:1);
- `dicom_deflated`: native zeros in a Deflated Explicit VR Little Endian dataset (about 1000:1);
- `nifti_gz`: a gzip-compressed NIfTI of zeros declaring `voxels` uint8 voxels;
- `png_flat`: an 8-bit greyscale PNG of one colour, side sqrt(voxels);
- `h5_deflate_chunk`: a 64 x 64 fastMRI dataset whose one deflate chunk inflates to `voxels`
  bytes (HDF5's filter grows its buffer until the stream ends);
- `h5_external`: a dataset whose bytes live in another file (HDF5 external storage).
"""

from __future__ import annotations

import gzip
import math
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np


def _mr_dataset(side: int, frames: int, syntax: str) -> Any:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.UID(syntax)
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows = ds.Columns = side
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


def _square(voxels: int) -> tuple[int, int]:
    side = max(2, math.isqrt(voxels))
    return side, max(1, voxels // (side * side))


def dicom_rle(path: Path, voxels: int) -> Path:
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    side, frames = _square(voxels)
    runs, rest = divmod(side * side, 128)
    # One segment per frame (8-bit, one sample): a 64-byte header, then runs of 128 zeros.
    tail = b"" if not rest else b"\x00\x00" if rest == 1 else bytes([257 - rest, 0])
    segment = b"\x81\x00" * runs + tail
    header = struct.pack("<16I", 1, 64, *([0] * 14))
    frame = header + segment + b"\x00" * (len(segment) % 2)
    ds = _mr_dataset(side, frames, RLELossless)
    ds.PixelData = encapsulate([frame] * frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_deflated(path: Path, voxels: int) -> Path:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    side, frames = _square(voxels)
    ds = _mr_dataset(side, frames, DeflatedExplicitVRLittleEndian)
    ds.PixelData = bytes(side * side * frames)
    ds.save_as(path, enforce_file_format=True)
    return path


def nifti_gz(path: Path, voxels: int) -> Path:
    import nibabel as nib

    side = max(2, round(voxels ** (1 / 3)))
    depth = max(1, -(-voxels // (side * side)))
    header = nib.Nifti1Header()
    header.set_data_shape((side, side, depth))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    data = header.binaryblock + b"\x00" * 4
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(data)
        block = b"\x00" * (1 << 20)
        left = side * side * depth
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
    return path


def png_flat(path: Path, voxels: int) -> Path:
    from PIL import Image

    side = max(2, math.isqrt(voxels) + 1)
    Image.new("L", (side, side), 0).save(path, optimize=True)
    return path


def h5_deflate_chunk(path: Path, voxels: int) -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset(
            "reconstruction", shape=(64, 64), dtype="f8", chunks=(64, 64), compression="gzip"
        )
        dataset[...] = 1.0
        packer = zlib.compressobj(9)
        block, left, raw = b"\x00" * (1 << 20), voxels, b""
        while left > 0:
            raw += packer.compress(block[: min(left, len(block))])
            left -= len(block)
        dataset.id.write_direct_chunk((0, 0), raw + packer.flush())
    return path


def h5_external(path: Path, target: Path, rows: int = 10, columns: int = 100) -> Path:
    import h5py

    size = rows * columns
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "reconstruction", shape=(rows, columns), dtype="u1", external=[(str(target), 0, size)]
        )
    return path


def main(folder: str, voxels: int = 2**27) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for path in (
        dicom_rle(out / "rle.dcm", voxels),
        dicom_deflated(out / "deflated.dcm", voxels),
        nifti_gz(out / "zeros.nii.gz", voxels),
        png_flat(out / "flat.png", 11_000 * 11_000),
        h5_deflate_chunk(out / "deflate-chunk.h5", 400 * 2**20),
        h5_external(out / "external.h5", Path("/etc/passwd")),
    ):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1], *(int(v) for v in sys.argv[2:3]))
