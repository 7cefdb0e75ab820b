"""`manage.py import_study`: a researcher's own files in, all or nothing."""

import csv
import json

import numpy as np
import pydicom
import pytest
from django.core.management import call_command

from metrics.bench import bombs
from metrics.models import MetricValue
from readerstudy.models import Case, Reconstruction, Study
from tests.metrics.test_io import write_dicom
from tests.readerstudy.factories import smooth_image

pytestmark = pytest.mark.django_db


def write_manifest(
    folder,
    rows,
    header=("case", "reference", "reconstruction", "method", "acceleration", "parameters"),
):
    path = folder / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def images(tmp_path):
    np.save(tmp_path / "ref-a.npy", smooth_image(0))
    np.save(tmp_path / "ref-b.npy", smooth_image(1))
    for i in range(3):
        np.save(tmp_path / f"rec-{i}.npy", smooth_image(i + 5) * 0.95)
    np.save(tmp_path / "small.npy", smooth_image(0, shape=(16, 16)))
    np.save(tmp_path / "nan.npy", np.full((32, 32), np.nan, np.float32))
    return tmp_path


def stored_files(settings):
    return sorted(settings.MEDIA_ROOT.rglob("*")) if settings.MEDIA_ROOT.exists() else []


def run_import(manifest, capsys, slug="mine"):
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_study", str(manifest), study=slug, title="Mine")
    return exit_info.value.code, capsys.readouterr().err


def test_import_stores_cases_reconstructions_and_queues_metrics(
    images, django_capture_on_commit_callbacks
):
    manifest = write_manifest(
        images,
        [
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),
            ("a", "ref-a.npy", "rec-1.npy", "cs-tv", "4", json.dumps({"lamda": 0.05})),
            ("b", "ref-b.npy", "rec-2.npy", "cs-tv", "8", ""),
        ],
    )
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("import_study", str(manifest), study="mine", title="Mine")
    study = Study.objects.get(slug="mine")
    assert (
        study.cases.count() == 2 and Reconstruction.objects.filter(case__study=study).count() == 3
    )
    assert study.questions.count() == 4, "the default questions"
    tv = Reconstruction.objects.get(source_name="rec-1.npy")
    assert tv.parameters == {"lamda": 0.05} and tv.acceleration == 4.0
    assert np.allclose(tv.load_image(), smooth_image(6) * 0.95)
    assert "ref" not in tv.image.name and "rec" not in tv.image.name, "stored names reveal nothing"
    assert len(callbacks) == 2, "one metrics task per case, queued after commit"


def test_bad_rows_are_all_reported_and_nothing_is_stored(images, capsys, settings):
    manifest = write_manifest(
        images,
        [
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),  # line 2: fine
            ("a", "ref-a.npy", "missing.npy", "zero-filled", "4", ""),  # 3
            ("a", "ref-a.npy", "small.npy", "cs-tv", "4", ""),  # 4
            ("a", "ref-a.npy", "nan.npy", "cs-tv", "4", ""),  # 5
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),  # 6: duplicate of 2
            ("b", "../ref-b.npy", "rec-1.npy", "cs-tv", "8", ""),  # 7: leaves the folder
            ("b", "ref-b.npy", "rec-1.npy", "cs-tv", "fast", ""),  # 8
            ("b", "ref-b.npy", "rec-2.npy", "", "8", ""),  # 9
            ("b", "ref-b.npy", "rec-2.npy", "cs-tv", "8", "{not json"),  # 10
            ("a", "ref-b.npy", "rec-2.npy", "cs-tv", "8", ""),  # 11: second reference
        ],
    )
    files_before = stored_files(settings)
    code, err = run_import(manifest, capsys)
    assert code == 2
    for line, text in [
        (3, "no such file"),
        (4, "shape mismatch"),
        (5, "NaN"),
        (6, "duplicate of line 2"),
        (7, "leaves the manifest's folder"),
        (8, "not a number"),
        (9, "empty method"),
        (10, "not valid JSON"),
        (11, "already has reference"),
    ]:
        assert (
            f"line {line}: " in err and text in err.split(f"line {line}: ")[1].splitlines()[0]
        ), (line, err)
    assert "line 2:" not in err
    assert (
        not Study.objects.exists()
        and not Case.objects.exists()
        and not MetricValue.objects.exists()
    )
    assert stored_files(settings) == files_before, "no image file was stored"


def test_missing_columns_and_existing_slug_are_refused(images, capsys):
    manifest = write_manifest(images, [("a", "ref-a.npy")], header=("case", "reference"))
    code, err = run_import(manifest, capsys)
    assert code == 2 and "missing column(s) reconstruction, method, acceleration" in err

    good = write_manifest(images, [("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", "")])
    call_command("import_study", str(good), study="mine", title="Mine")
    code, err = run_import(good, capsys)
    assert code == 2 and "already exists" in err
    assert Reconstruction.objects.count() == 1


def test_hostile_files_are_refused_and_nothing_is_stored(images, capsys, settings):
    """Truncated and malformed DICOM, one whose header claims 65,535 x 65,535 x 500 pixels, and
    a path escaping the manifest's folder: each is named with its line, nothing is kept."""
    frame = (smooth_image(0) * 1000).astype(np.uint16)
    write_dicom(images / "good.dcm", frame)
    whole = (images / "good.dcm").read_bytes()
    (images / "truncated.dcm").write_bytes(whole[: len(whole) // 2])
    (images / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + bytes(range(256)) * 8)
    huge = pydicom.dcmread(images / "good.dcm")
    huge.Rows, huge.Columns, huge.NumberOfFrames = 65535, 65535, 500
    huge.save_as(images / "huge.dcm")
    (images.parent / "outside.npy").write_bytes((images / "rec-0.npy").read_bytes())
    manifest = write_manifest(
        images,
        [
            ("a", "ref-a.npy", "good.dcm", "zero-filled", "4", ""),  # line 2: fine
            ("a", "ref-a.npy", "truncated.dcm", "cs-tv", "4", ""),  # 3
            ("a", "ref-a.npy", "garbage.dcm", "cs-tv", "8", ""),  # 4
            ("a", "ref-a.npy", "huge.dcm", "cs-tv", "12", ""),  # 5
            ("a", "ref-a.npy", "../outside.npy", "cs-tv", "16", ""),  # 6
            ("b", "/etc/passwd", "rec-1.npy", "cs-tv", "4", ""),  # 7
        ],
    )
    files_before = stored_files(settings)
    code, err = run_import(manifest, capsys)
    assert code == 2
    for line, text in [
        (3, "truncated.dcm: cannot read as .dcm"),
        (4, "garbage.dcm"),
        (5, "huge.dcm: declares 500 x 65535 x 65535"),
        (6, "leaves the manifest's folder"),
        (7, "leaves the manifest's folder"),
    ]:
        assert f"line {line}: " in err and text in err.split(f"line {line}: ")[1], (line, err)
    assert "line 2:" not in err
    assert not Study.objects.exists() and not Reconstruction.objects.exists()
    assert stored_files(settings) == files_before, "no image file was stored"


def write_raw_manifest(folder, text: bytes):
    path = folder / "manifest.csv"
    path.write_bytes(text)
    return path


HEADER = b"case,reference,reconstruction,method,acceleration,parameters\n"
GOOD_ROW = b"a,ref-a.npy,rec-0.npy,zero-filled,4,\n"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (GOOD_ROW + b"a,ref-a.npy,rec-1.npy,cs-tv\xff,4,\n", 3, "byte 0xff is not UTF-8"),
        (
            GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"' + b"1" * 140_000 + b'"\n',
            3,
            "longer than",
        ),
        (
            GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"' + b"[" * 60_000 + b'"\n',
            3,
            "characters long",
        ),
        (GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"' + b"[" * 5_000 + b'"\n', 3, "deeper"),
        (GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"{""lamda"": NaN}"\n', 3, "NaN"),
        (GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"{""x"": 1e999}"\n', 3, "beyond the range"),
        (GOOD_ROW + b'a,ref-a.npy,rec-1.npy,cs-tv,4,"{""x"": ""\\u0000""}"\n', 3, "NUL"),
        (GOOD_ROW + b"a,ref-a.npy,rec-1.npy,cs\x00tv,4,\n", 3, "U+0000"),
        (GOOD_ROW + "a,ref-a.npy,rec-1.npy,cs\u202etv,4,\n".encode(), 3, "U+202E"),
        (GOOD_ROW + b"a,ref-a.npy,rec-1.npy," + b"m" * 101 + b",4,\n", 3, "at most 100"),
    ],
    ids=[
        "not-utf8",
        "field-over-csv-limit",
        "parameters-too-long",
        "parameters-too-deep",
        "nan",
        "infinite-number",
        "nul-in-json",
        "nul-in-method",
        "direction-override",
        "method-too-long",
    ],
)
def test_a_hostile_manifest_is_one_clear_error_on_its_line(
    images, capsys, settings, body, line, message
):
    """Each was a traceback (or, for NaN, an IntegrityError that left an image file behind)."""
    manifest = write_raw_manifest(images, HEADER + body)
    files_before = stored_files(settings)
    code, err = run_import(manifest, capsys)
    assert code == 2 and f"line {line}: " in err and message in err, err
    assert "Traceback" not in err
    assert not Study.objects.exists() and stored_files(settings) == files_before


def test_line_numbers_are_the_lines_an_editor_shows(images, capsys):
    """Blank lines and a quoted field over three lines count as the lines they are (these
    errors were reported on lines 3 and 5)."""
    manifest = write_raw_manifest(
        images,
        HEADER
        + GOOD_ROW
        + b"\n"
        + b"\r\n"
        + b'a,ref-a.npy,missing.npy,cs-tv,4,"{\n""lamda"": 0.05\n}"\n'  # lines 5-7
        + b"b,ref-b.npy,rec-1.npy,cs-tv,fast,\n",  # line 8
    )
    code, err = run_import(manifest, capsys)
    assert code == 2
    assert "line 5: " in err and "missing.npy" in err.split("line 5: ")[1].splitlines()[0]
    assert "line 8: " in err and "not a number" in err.split("line 8: ")[1].splitlines()[0]


def test_values_beyond_float32_name_their_file(images, capsys):
    np.save(images / "bright.npy", smooth_image(0).astype(np.float64) * 1e300)
    manifest = write_manifest(images, [("a", "ref-a.npy", "bright.npy", "cs-tv", "4", "")])
    code, err = run_import(manifest, capsys)
    assert code == 2 and "line 2: bright.npy: holds values up to" in err and "float32" in err


@pytest.mark.parametrize(
    ("slug", "title", "message"),
    [
        ("", "Mine", "--study ''"),
        ("-2+3", "Mine", "--study '-2+3'"),
        ("=cmd", "Mine", "--study '=cmd'"),
        ("has space", "Mine", "--study"),
        ("x" * 51, "Mine", "--study"),
        ("mine", "   ", "--title is empty"),
        ("mine", "Knee\x00study", "--title contains the control character U+0000"),
    ],
)
def test_study_slug_and_title_are_checked_before_anything(images, capsys, slug, title, message):
    """An empty slug or one that starts like a formula imported, could not be reached on the
    web, and went unescaped into every export's study column."""
    manifest = write_manifest(images, [("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", "")])
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_study", str(manifest), f"--study={slug}", f"--title={title}")
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not Study.objects.exists()


def test_a_database_refusal_after_the_checks_leaves_no_file(images, capsys, settings, monkeypatch):
    """Whatever fails after the images are written (here the database, on the last row), the
    rows are rolled back and every file written for them is removed."""
    from django.db import IntegrityError

    from readerstudy.models import Reconstruction as ReconstructionModel

    manifest = write_manifest(
        images,
        [
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),
            ("b", "ref-b.npy", "rec-1.npy", "cs-tv", "8", ""),
        ],
    )
    original_save = ReconstructionModel.save

    def failing_save(self, *args, **kwargs):
        if self.method == "cs-tv":
            raise IntegrityError("CHECK constraint failed: JSON")
        return original_save(self, *args, **kwargs)

    monkeypatch.setattr(ReconstructionModel, "save", failing_save)
    files_before = stored_files(settings)
    code, err = run_import(manifest, capsys)
    assert code == 2 and "line 3: the database refused this row" in err
    assert not Study.objects.exists() and not Case.objects.exists()
    assert stored_files(settings) == files_before, "the four files written were removed"


# --- issue 31: what a file declares, and what a short manifest may store -------------------


def stored_images(settings):
    return [path for path in stored_files(settings) if path.is_file()]


@pytest.mark.parametrize(
    "build",
    [bombs.nifti_gz, bombs.dicom_deflated, bombs.dicom_rle, bombs.png_flat],
    ids=["nii.gz", "deflated-dicom", "rle-dicom", "png"],
)
def test_a_small_file_that_declares_a_huge_image_is_refused_on_its_line(
    images, capsys, settings, build
):
    suffix = {"png_flat": ".png", "nifti_gz": ".nii.gz"}.get(build.__name__, ".dcm")
    build(images / f"bomb{suffix}", settings.IMAGE_MAX_VOXELS * 4)
    manifest = write_manifest(
        images,
        [
            ("a", "ref-a.npy", "rec-0.npy", "zero-filled", "4", ""),
            ("b", f"bomb{suffix}", f"bomb{suffix}", "zero-filled", "4", ""),
        ],
    )
    before = stored_images(settings)
    code, err = run_import(manifest, capsys)
    assert code == 2
    assert "line 3: " in err and "allowed per image (IMAGE_MAX_VOXELS)" in err, err
    assert "Traceback" not in err and stored_images(settings) == before
    assert not Study.objects.filter(slug="mine").exists()


def test_one_file_named_in_many_rows_is_refused(images, capsys, settings):
    rows = [(f"c{i}", "ref-a.npy", "ref-a.npy", "m", "4", "") for i in range(20)]
    before = stored_images(settings)
    code, err = run_import(write_manifest(images, rows), capsys)
    assert code == 2 and stored_images(settings) == before
    assert "line 3: ref-a.npy is an image of case 'c0' already (line 2)" in err, err
    rows = [
        ("a", "ref-a.npy", "rec-0.npy", "m", "4", ""),
        ("b", "ref-b.npy", "rec-0.npy", "m", "4", ""),
    ]
    code, err = run_import(write_manifest(images, rows), capsys)
    assert code == 2 and "rec-0.npy is an image of case 'a' already" in err, err


def test_an_identity_control_is_still_allowed(images):
    rows = [
        ("a", "ref-a.npy", "ref-a.npy", "identity", "1", ""),
        ("a", "ref-a.npy", "rec-0.npy", "m", "4", ""),
    ]
    call_command("import_study", str(write_manifest(images, rows)), study="mine", title="Mine")
    assert Reconstruction.objects.filter(case__study__slug="mine").count() == 2


def test_the_stored_bytes_of_one_upload_are_bounded_before_the_image_past_them_is_read(
    images, capsys, settings
):
    one_image = smooth_image(0).astype(np.float32).nbytes
    settings.UPLOAD_MAX_STORED_BYTES = 3 * one_image
    rows = [
        ("a", "ref-a.npy", "rec-0.npy", "m", "4", ""),
        ("a", "ref-a.npy", "rec-1.npy", "m", "4", ""),
        ("b", "ref-b.npy", "rec-2.npy", "m", "4", ""),
    ]
    before = stored_images(settings)
    code, err = run_import(write_manifest(images, rows), capsys)
    assert code == 2 and stored_images(settings) == before
    assert "line 4: ref-b.npy: 1,024 voxels would take this upload's stored images past" in err, (
        err
    )
    assert "(UPLOAD_MAX_STORED_BYTES)" in err
