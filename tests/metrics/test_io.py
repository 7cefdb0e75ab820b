"""Image readers (metrics/io.py): every contract format, and clear errors for bad files."""

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fixtures.dicom_series import AXIAL, write_nifti_of_series, write_series
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
def test_reads_nifti_with_slices_first_the_radiological_way(tmp_path, name):
    """An axial volume in RAS+ voxel order (identity affine): slices inferior to superior,
    each with anterior at the top and the patient's right on the viewer's left."""
    volume = np.stack([IMAGE, IMAGE + 1, IMAGE + 2], axis=-1).astype(np.float32)  # (x, y, z)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / name)
    loaded = load_image(tmp_path / name)
    assert loaded.shape == (3, 20, 24)
    assert np.array_equal(loaded[1], (IMAGE + 1)[::-1, ::-1].T)


def _world_volume() -> np.ndarray:
    """A (x, y, z) RAS+ volume without symmetry, with one bright voxel at the patient's
    right, anterior, superior corner region."""
    volume = np.random.default_rng(3).random((12, 10, 6)).astype(np.float32)
    volume[10, 8, 4] = 5.0  # x high: right; y high: anterior; z high: superior
    return volume


def _stored(volume: np.ndarray, permutation, flips, rotation_degrees: float = 0.0):
    """The same world image as another writer would store it: voxel axes permuted and
    flipped, the affine saying so (and, with `rotation_degrees`, slightly oblique)."""
    data = volume
    affine = np.eye(4)
    for axis in flips:  # flip voxel axis `axis`: world x = (n - 1) - i
        data = np.flip(data, axis)
        flip = np.eye(4)
        flip[axis, axis] = -1
        flip[axis, 3] = volume.shape[axis] - 1
        affine = affine @ flip
    data = np.transpose(data, permutation)
    order = np.eye(4)
    order[:3, :3] = np.eye(3)[:, permutation]  # voxel axis k holds world axis permutation[k]
    affine = affine @ order
    if rotation_degrees:
        angle = np.radians(rotation_degrees)
        turn = np.eye(4)
        turn[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        affine = turn @ affine
    return np.ascontiguousarray(data), affine


@pytest.mark.parametrize(
    ("permutation", "flips", "rotation"),
    [
        ((0, 1, 2), (0,), 0.0),  # stored left to right (LAS, the radiological files' order)
        ((1, 0, 2), (0, 1), 0.0),  # rows and columns swapped, both flipped
        ((0, 1, 2), (), 12.0),  # oblique: 12 degrees about the axial axis
        ((1, 0, 2), (1,), -20.0),  # swapped, flipped and oblique
    ],
)
def test_a_nifti_is_shown_the_same_however_its_voxels_are_stored(
    tmp_path, permutation, flips, rotation
):
    """Flipped, transposed or oblique affines describe the same anatomy: every one is shown
    as nibabel's closest canonical (RAS+) volume laid out radiologically, the bright
    right-anterior-superior voxel in the top left of the last slices."""
    world = _world_volume()
    data, affine = _stored(world, permutation, flips, rotation)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    loaded = load_image(tmp_path / "v.nii.gz")
    canonical = np.asanyarray(
        nib.as_closest_canonical(nib.load(tmp_path / "v.nii.gz")).dataobj
    ).astype(np.float64)
    assert np.array_equal(loaded, np.transpose(canonical[::-1, ::-1, :], (2, 1, 0)))
    assert np.array_equal(loaded, np.transpose(world[::-1, ::-1, :], (2, 1, 0)))
    assert np.unravel_index(np.argmax(loaded), loaded.shape) == (4, 1, 1)


def test_a_nifti_and_a_dicom_series_of_the_same_volume_are_shown_alike(tmp_path):
    """The same axial anatomy as a DICOM series and as its NIfTI conversion: one array,
    whose rows run anterior to posterior and columns the patient's right to left."""
    shown = np.stack([np.roll(IMAGE, 2 * k, axis=1) for k in range(3)]) * 7
    shown[1, 2, 15] = 5000  # a marker near the top right: anterior, the patient's left
    write_series(tmp_path / "series", shown)
    nifti = write_nifti_of_series(tmp_path / "volume.nii.gz", shown)  # as dcm2niix converts it
    from_series, from_nifti = load_image(tmp_path / "series"), load_image(nifti)
    assert np.array_equal(from_series, shown.astype(np.float64))
    assert np.array_equal(from_nifti, from_series)


def test_a_sagittal_nifti_is_sliced_across_its_own_plane(tmp_path):
    """A volume acquired sagittally (the file's third axis runs right-left) is shown as
    sagittal slices: superior at the top, anterior on the left."""
    world = _world_volume()  # (x, y, z)
    data = np.ascontiguousarray(np.transpose(world, (1, 2, 0)))  # voxel axes: y, z, x
    affine = np.eye(4)
    affine[:3, :3] = np.eye(3)[:, [1, 2, 0]]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "sagittal.nii")
    loaded = load_image(tmp_path / "sagittal.nii")
    assert loaded.shape == (12, 6, 10)  # x slices of (z rows, y columns)
    assert np.array_equal(loaded, np.transpose(world[::-1, ::-1, ::-1], (0, 2, 1)))
    assert np.unravel_index(np.argmax(loaded), loaded.shape) == (1, 1, 1)


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
