"""Image files built to read the server's files or to exhaust its memory (issue 31).

Each refusal is checked with the real library writing the hostile file (h5py, pydicom,
nibabel, Pillow), and each bomb with tracemalloc: NumPy, pydicom and h5py's reads allocate
through Python's tracked allocators, so a refusal that inflated first would show there.
"""

from __future__ import annotations

import tracemalloc
import zlib

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from metrics.bench import bombs
from metrics.io import DEFAULT_MAX_VOXELS, ImageReadError, ImageTooLargeError, load_image
from tests.metrics.test_io_fuzz import mr_dataset

IMAGE = (np.arange(32 * 24).reshape(32, 24) % 200 + 1).astype(np.uint16)
SECRET = b"SECRET_KEY=do-not-leak-" + b"x" * 1000
# Peak traced allocation while refusing a bomb: far below what any of them declares.
REFUSAL_PEAK_BYTES = 32 * 2**20


def peak_while(action) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def refuses(path, match: str, error=ImageReadError) -> None:
    with pytest.raises(error, match=match) as raised:
        load_image(path)
    assert "SECRET" not in str(raised.value), "Sanity: no refusal quotes the file it points to"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "environ"
    path.write_bytes(SECRET)
    return path


# --- HDF5 ---------------------------------------------------------------------------------


def test_h5_external_storage_is_refused(tmp_path, secret):
    bombs.h5_external(tmp_path / "x.h5", secret, rows=10, columns=100)
    refuses(tmp_path / "x.h5", "keeps its bytes in external files")


def test_h5_external_and_soft_links_are_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["reconstruction"] = IMAGE.astype(np.float32)
    with h5py.File(tmp_path / "linked.h5", "w") as handle:
        handle["reconstruction"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/reconstruction")
    refuses(tmp_path / "linked.h5", "ExternalLink")
    with h5py.File(tmp_path / "soft.h5", "w") as handle:
        handle["data"] = IMAGE.astype(np.float32)
        handle["reconstruction"] = h5py.SoftLink("/data")
    refuses(tmp_path / "soft.h5", "SoftLink")


def test_h5_virtual_dataset_is_refused(tmp_path, secret):
    with h5py.File(tmp_path / "source.h5", "w") as handle:
        handle["data"] = IMAGE.astype(np.float32)
    layout = h5py.VirtualLayout(shape=IMAGE.shape, dtype="f4")
    layout[...] = h5py.VirtualSource(str(tmp_path / "source.h5"), "data", shape=IMAGE.shape)
    with h5py.File(tmp_path / "virtual.h5", "w") as handle:
        handle.create_virtual_dataset("reconstruction", layout)
    refuses(tmp_path / "virtual.h5", "virtual layout")


def test_h5_compact_layout_is_refused(tmp_path):
    with h5py.File(tmp_path / "compact.h5", "w") as handle:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((8, 8))
        h5py.h5d.create(handle.id, b"reconstruction", h5py.h5t.IEEE_F32LE, space, dcpl=plist)
    refuses(tmp_path / "compact.h5", "compact layout")


@pytest.mark.parametrize(
    "options",
    [{"compression": "lzf"}, {"scaleoffset": 0, "dtype": "i4"}],
    ids=["lzf", "scaleoffset"],
)
def test_h5_filters_that_are_not_deflate_shuffle_or_fletcher32_are_refused(tmp_path, options):
    options = {"dtype": "f4", **options}
    with h5py.File(tmp_path / "filtered.h5", "w") as handle:
        handle.create_dataset("reconstruction", data=IMAGE.astype(options["dtype"]), **options)
    refuses(tmp_path / "filtered.h5", "HDF5 filter")


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype([("a", "f4"), ("b", "i2")]),
        h5py.ref_dtype,
        h5py.string_dtype(),
        np.dtype("S4"),
    ],
    ids=["compound", "reference", "vlen-string", "bytes"],
)
def test_h5_non_numeric_dtypes_are_refused(tmp_path, dtype):
    with h5py.File(tmp_path / "typed.h5", "w") as handle:
        handle.create_dataset("reconstruction", shape=(4, 4), dtype=dtype)
    refuses(tmp_path / "typed.h5", "only numeric image data")


def test_h5_gzip_shuffle_fletcher32_and_complex_still_read(tmp_path):
    volume = np.stack([IMAGE, IMAGE + 3]).astype(np.complex64)
    with h5py.File(tmp_path / "ok.h5", "w") as handle:
        handle.create_dataset(
            "reconstruction",
            data=volume,
            chunks=(1, 16, 24),
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        )
    assert np.array_equal(load_image(tmp_path / "ok.h5"), np.abs(volume))


def test_h5_deflate_chunk_that_inflates_past_its_shape_is_refused_before_hdf5_reads_it(
    tmp_path,
):
    bombs.h5_deflate_chunk(tmp_path / "bomb.h5", 400 * 2**20)
    peak = peak_while(lambda: refuses(tmp_path / "bomb.h5", "inflates past the 32,768 bytes"))
    assert peak < REFUSAL_PEAK_BYTES, f"refusing took {peak:,} bytes"


# --- DICOM --------------------------------------------------------------------------------


def dicom(path, pixels: np.ndarray, syntax=ExplicitVRLittleEndian):
    ds = mr_dataset(ExplicitVRLittleEndian, *pixels.shape, 16)
    meta = ds.file_meta
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    elif syntax == JPEGBaseline8Bit:
        meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    elif syntax != ExplicitVRLittleEndian:
        meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, RLELossless])
def test_deflated_and_rle_dicom_read_as_before(tmp_path, syntax):
    assert np.array_equal(load_image(dicom(tmp_path / "x.dcm", IMAGE, syntax)), IMAGE)


def test_a_deflated_dicom_past_the_first_inflated_mebibyte_reads(tmp_path):
    """Found by the fuzzer's statistics: a 2048^2 deflated image (4 MiB inflated) was refused,
    its stream's even-length padding byte taken for more data past the bound."""
    path = bombs.dicom_deflated(tmp_path / "big.dcm", 2048 * 2048)
    assert load_image(path).shape == (2048, 2048)


def test_deflated_dicom_bomb_is_refused_before_it_inflates(tmp_path):
    bombs.dicom_deflated(tmp_path / "bomb.dcm", 2**27 - 1)
    assert (tmp_path / "bomb.dcm").stat().st_size < 200_000, "Sanity: a small file"
    peak = peak_while(
        lambda: refuses(tmp_path / "bomb.dcm", "allowed per image", ImageTooLargeError)
    )
    assert peak < REFUSAL_PEAK_BYTES, f"refusing took {peak:,} bytes"


def test_deflated_dicom_whose_stream_outgrows_its_attributes_is_refused(tmp_path):
    path = dicom(tmp_path / "x.dcm", IMAGE, DeflatedExplicitVRLittleEndian)
    data = path.read_bytes()
    with open(path, "rb") as handle:
        pydicom.filereader.read_preamble(handle, False)
        pydicom.filereader._read_file_meta_info(handle)
        meta_end = handle.tell()
    # 200 MiB of zeros after the pixels, where the attributes declare 1,536 bytes of them.
    body = zlib.decompress(data[meta_end:], -zlib.MAX_WBITS)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = packer.compress(body)
    stream += b"".join(packer.compress(bytes(2**20)) for _ in range(200))
    path.write_bytes(data[:meta_end] + stream + packer.flush())
    peak = peak_while(lambda: refuses(path, "inflates past", ImageTooLargeError))
    assert peak < REFUSAL_PEAK_BYTES, f"refusing took {peak:,} bytes"


def test_rle_bomb_is_refused_before_pydicom_decodes_it(tmp_path):
    bombs.dicom_rle(tmp_path / "declared.dcm", 2**27 - 1)
    refuses(tmp_path / "declared.dcm", "allowed per image", ImageTooLargeError)
    # Declares 64 x 64 but each segment repeats a byte 128 times, 2**20 times over.
    path = dicom(tmp_path / "small.dcm", np.ones((64, 64)), RLELossless)
    dataset = pydicom.dcmread(path)
    frame = bytes(np.array([2, 64, 64 + 2**21], "<u4").tobytes()) + bytes(52)
    frame += b"\x81\x00" * 2**20 + b"\x81\x00" * 2**20
    dataset.PixelData = encapsulate([frame])
    dataset.save_as(path)
    peak = peak_while(lambda: refuses(path, "RLE segment decodes past twice", ImageTooLargeError))
    assert peak < REFUSAL_PEAK_BYTES, f"refusing took {peak:,} bytes"


def test_compressed_syntaxes_without_a_bounded_decoder_are_refused_with_what_to_do(tmp_path):
    path = dicom(tmp_path / "jpeg.dcm", IMAGE, JPEGBaseline8Bit)
    refuses(path, "transfer syntax JPEG Baseline.*is not read.*uncompressed")


# --- NIfTI, PNG, NumPy --------------------------------------------------------------------


def test_nifti_gz_bomb_is_refused_from_its_header(tmp_path):
    bombs.nifti_gz(tmp_path / "bomb.nii.gz", 2**27)
    peak = peak_while(lambda: refuses(tmp_path / "bomb.nii.gz", "allowed per image"))
    assert peak < REFUSAL_PEAK_BYTES, f"refusing took {peak:,} bytes"


def test_nifti_with_a_huge_extension_offset_is_refused(tmp_path):
    image = nib.Nifti1Image(IMAGE.astype(np.float32)[..., None], np.eye(4))
    image.header["vox_offset"] = 2**30
    data = image.header.binaryblock + b"\x00" * 4 + IMAGE.astype(np.float32).tobytes()
    (tmp_path / "offset.nii").write_bytes(data)
    refuses(tmp_path / "offset.nii", "voxel offset")


def test_nifti2_and_truncated_nifti(tmp_path):
    volume = np.stack([IMAGE, IMAGE + 1], axis=-1).astype(np.float32)
    nib.save(nib.Nifti2Image(volume, np.eye(4)), tmp_path / "two.nii.gz")
    assert load_image(tmp_path / "two.nii.gz").shape == (2, 24, 32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "one.nii")
    data = (tmp_path / "one.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[:-100])
    refuses(tmp_path / "cut.nii", "where its header declares")


def test_png_past_the_limit_is_refused_before_decoding(tmp_path):
    bombs.png_flat(tmp_path / "flat.png", 11_000 * 11_000)
    refuses(tmp_path / "flat.png", "allowed per image", ImageTooLargeError)


def test_another_format_named_png_is_not_decoded(tmp_path):
    Image.fromarray(IMAGE.astype(np.uint8)).save(tmp_path / "tiff.png", format="TIFF")
    refuses(tmp_path / "tiff.png", "cannot read as .png")


@pytest.mark.parametrize("dtype", ["timedelta64[s]", "datetime64[s]"])
def test_time_arrays_are_not_images(tmp_path, dtype):
    np.save(tmp_path / "t.npy", np.arange(64).reshape(8, 8).astype(dtype))
    refuses(tmp_path / "t.npy", "not image intensities")


def test_the_limit_is_an_argument_and_bounds_file_bytes_too(tmp_path):
    np.save(tmp_path / "image.npy", IMAGE.astype(np.float64))
    assert load_image(tmp_path / "image.npy", max_voxels=IMAGE.size).shape == IMAGE.shape
    with pytest.raises(ImageTooLargeError, match="768 voxels") as raised:
        load_image(tmp_path / "image.npy", max_voxels=IMAGE.size - 1)
    assert raised.value.voxels == IMAGE.size and raised.value.limit == IMAGE.size - 1
    padded = tmp_path / "padded.npy"
    padded.write_bytes((tmp_path / "image.npy").read_bytes() + b"\x00" * 2**21)
    with pytest.raises(ImageTooLargeError, match="more than an image of at most"):
        load_image(padded, max_voxels=IMAGE.size)
    assert DEFAULT_MAX_VOXELS == 2**24
