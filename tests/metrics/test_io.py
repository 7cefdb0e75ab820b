"""Image readers (metrics/io.py): every contract format, and clear errors for bad files."""

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fixtures.dicom_series import AXIAL, write_series
from metrics.io import ImageReadError, load_image

IMAGE = (np.arange(24 * 20).reshape(24, 20) % 251).astype(np.uint16)


def write_dicom(path, frames, *, slope=1.0, intercept=0.0):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = frames.shape[-2:]
    if frames.ndim == 3:
        ds.NumberOfFrames = frames.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = frames.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_reads_npy_and_takes_magnitude_of_complex(tmp_path):
    np.save(tmp_path / "c.npy", IMAGE * np.exp(1j * 0.3))
    assert np.allclose(load_image(tmp_path / "c.npy"), IMAGE)


def test_reads_single_and_multiframe_dicom_with_rescale(tmp_path):
    write_dicom(tmp_path / "one.dcm", IMAGE, slope=2.0, intercept=-1.0)
    assert np.array_equal(load_image(tmp_path / "one.dcm"), IMAGE * 2.0 - 1.0)
    volume = np.stack([IMAGE, IMAGE + 1, IMAGE + 2])
    write_dicom(tmp_path / "multi.dcm", volume)
    assert np.array_equal(load_image(tmp_path / "multi.dcm"), volume)


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_reads_nifti_with_slices_first(tmp_path, name):
    volume = np.stack([IMAGE, IMAGE + 1, IMAGE + 2], axis=-1).astype(np.float32)  # (H, W, slices)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / name)
    loaded = load_image(tmp_path / name)
    assert loaded.shape == (3, 24, 20)
    assert np.array_equal(loaded[1], IMAGE + 1)


def test_reads_greyscale_png_and_rejects_colour(tmp_path):
    Image.fromarray(IMAGE.astype(np.uint8)).save(tmp_path / "g.png")
    assert np.array_equal(load_image(tmp_path / "g.png"), IMAGE.astype(np.uint8))
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(ImageReadError, match="colour"):
        load_image(tmp_path / "c.png")


@pytest.mark.parametrize("dataset", ["reconstruction", "reconstruction_rss", "only_one"])
def test_reads_fastmri_h5(tmp_path, dataset):
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        handle[dataset] = np.stack([IMAGE, IMAGE]).astype(np.float32)
    assert load_image(tmp_path / "f.h5").shape == (2, 24, 20)


def test_h5_with_ambiguous_datasets_is_refused(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as handle:
        handle["kspace"] = np.zeros((2, 4, 4))
        handle["mask"] = np.zeros(4)
    with pytest.raises(ImageReadError, match="reconstruction"):
        load_image(tmp_path / "f.h5")


def test_bad_files_raise_one_clear_error(tmp_path):
    (tmp_path / "broken.dcm").write_bytes(b"DICM" + b"\x00" * 20)
    with pytest.raises(ImageReadError, match="broken.dcm"):
        load_image(tmp_path / "broken.dcm")
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "missing.npy")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        load_image(tmp_path / "image.jpg")
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan))
    with pytest.raises(ImageReadError, match="NaN"):
        load_image(tmp_path / "nan.npy")
    np.save(tmp_path / "line.npy", np.ones(8))
    with pytest.raises(ImageReadError, match="2-D image or 3-D volume"):
        load_image(tmp_path / "line.npy")


def test_truncated_and_malformed_dicom_are_refused_with_the_file_name(tmp_path):
    write_dicom(tmp_path / "whole.dcm", IMAGE)
    data = (tmp_path / "whole.dcm").read_bytes()
    (tmp_path / "truncated.dcm").write_bytes(data[: len(data) - 200])
    with pytest.raises(ImageReadError, match=r"truncated\.dcm: cannot read as \.dcm"):
        load_image(tmp_path / "truncated.dcm")
    (tmp_path / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError, match=r"garbage\.dcm"):
        load_image(tmp_path / "garbage.dcm")
    no_pixels = pydicom.dcmread(tmp_path / "whole.dcm")
    del no_pixels.PixelData
    no_pixels.save_as(tmp_path / "no-pixels.dcm")
    with pytest.raises(ImageReadError, match="no pixel data"):
        load_image(tmp_path / "no-pixels.dcm")


def test_huge_declared_dimensions_are_refused_before_decoding(tmp_path):
    """A 60 kB file claiming 65,535 x 65,535 x 500 pixels must not make the reader allocate
    4 TB: the header alone decides."""
    write_dicom(tmp_path / "huge.dcm", IMAGE)
    huge = pydicom.dcmread(tmp_path / "huge.dcm")
    huge.Rows, huge.Columns, huge.NumberOfFrames = 65535, 65535, 500
    huge.save_as(tmp_path / "huge.dcm")
    with pytest.raises(ImageReadError, match=r"huge\.dcm: declares 500 x 65535 x 65535"):
        load_image(tmp_path / "huge.dcm")

    # An .npy header claiming a huge shape over a few bytes of data.
    header = {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000)}
    with open(tmp_path / "huge.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\x00" * 64)
    with pytest.raises(ImageReadError, match=r"huge\.npy: declares 100000 x 100000"):
        load_image(tmp_path / "huge.npy")

    # Format 3.0 headers (UTF-8 field names) were left to np.load, which decoded a complete
    # 1 x 11586 x 11586 float64 file (1 GiB) that format 1.0 had refused.
    for version in (2, 3):
        header = {"descr": "<f8", "fortran_order": False, "shape": (1, 11586, 11586)}
        with open(tmp_path / f"huge-v{version}.npy", "wb") as handle:
            handle.write(np.lib.format.magic(version, 0))
            text = repr(header).encode("utf-8")
            text += b" " * (-(len(text) + 13) % 64) + b"\n"
            handle.write(len(text).to_bytes(4, "little") + text + b"\x00" * 64)
        with pytest.raises(
            ImageReadError, match=rf"huge-v{version}\.npy: declares 1 x 11586 x 11586"
        ):
            load_image(tmp_path / f"huge-v{version}.npy")

    with h5py.File(tmp_path / "huge.h5", "w") as handle:
        # chunked and empty: the file is tiny, the declared dataset is 2**30 voxels
        handle.create_dataset("reconstruction", shape=(16, 8192, 8192), dtype="f4", chunks=True)
    with pytest.raises(ImageReadError, match="more than the 16,777,216"):
        load_image(tmp_path / "huge.h5")


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_npy_format_version_reads(tmp_path, version):
    with open(tmp_path / "image.npy", "wb") as handle:
        np.lib.format.write_array(handle, IMAGE, version=version)
    assert np.array_equal(load_image(tmp_path / "image.npy"), IMAGE.astype(np.float64))


# --- DICOM series: a folder of single-frame files is one volume -------------------------------

OBLIQUE = (0.866025, 0.5, 0.0, 0.0, 0.0, -1.0)  # rows tilted 30 degrees, columns down the z axis


def series_volume(slices=6, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, size=(slices, 12, 10)).astype(np.uint16)


@pytest.mark.parametrize("orientation", [AXIAL, OBLIQUE, None], ids=["axial", "oblique", "none"])
def test_a_series_folder_is_one_volume_in_slice_order(tmp_path, orientation):
    """Files named in a random order come back in the order of their positions along the
    slice normal (or of InstanceNumber without positions): the volume written, exactly."""
    volume = series_volume()
    write_series(tmp_path / "series", volume, orientation=orientation, seed=11)
    np.testing.assert_array_equal(load_image(tmp_path / "series"), volume.astype(np.float64))


def test_position_not_file_order_or_instance_number_decides(tmp_path):
    """InstanceNumbers that disagree with the positions (a scanner numbering in acquisition
    order) do not reorder the slices; they break ties only."""
    volume = series_volume()
    files = write_series(tmp_path / "series", volume, seed=5)
    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = len(files) - k
        ds.save_as(path)
    np.testing.assert_array_equal(load_image(tmp_path / "series"), volume.astype(np.float64))


def _edit(path, **tags):
    ds = pydicom.dcmread(path)
    for tag, value in tags.items():
        setattr(ds, tag, value)
    ds.save_as(path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda files: files[3].unlink(), "a slice is missing"),
        (lambda files: _edit(files[2], SeriesInstanceUID=generate_uid()), "another series"),
        (lambda files: _edit(files[2], Rows=6, PixelData=b"\0" * 120), "Rows 6"),
        (lambda files: _edit(files[4], PixelSpacing=["0.7", "0.7"]), "PixelSpacing"),
        (
            lambda files: _edit(files[1], ImageOrientationPatient=list(map(str, OBLIQUE))),
            "ImageOrientationPatient differs",
        ),
        (
            lambda files: _edit(files[1], ImagePositionPatient=files and _position_of(files[0])),
            "at the same position",
        ),
        (lambda files: files[0].write_bytes(b"not dicom at all"), "not a DICOM file"),
        (lambda files: (files[0].parent / "sub").mkdir(), "holds only files"),
    ],
    ids=[
        "missing",
        "mixed",
        "size",
        "spacing",
        "orientation",
        "duplicate",
        "garbage",
        "subfolder",
    ],
)
def test_a_broken_series_is_one_error_naming_the_file(tmp_path, damage, message):
    files = write_series(tmp_path / "series", series_volume(), seed=2)
    damage(files)
    with pytest.raises(ImageReadError, match=message) as raised:
        load_image(tmp_path / "series")
    named = [p.name for p in files] + ["series/", "sub"]
    assert any(name in str(raised.value) for name in named), raised.value


def _position_of(path):
    return list(pydicom.dcmread(path).ImagePositionPatient)


def test_a_series_without_positions_needs_consecutive_instance_numbers(tmp_path):
    files = write_series(tmp_path / "series", series_volume(), orientation=None)
    files[2].unlink()
    with pytest.raises(ImageReadError, match="InstanceNumber 4 follows 2"):
        load_image(tmp_path / "series")


def test_an_empty_series_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageReadError, match="empty"):
        load_image(tmp_path / "empty")
