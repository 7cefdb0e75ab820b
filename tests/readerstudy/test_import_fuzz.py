"""`manage.py import_study` against manifests and image files built from hostile parts.

The contract, whatever the input: exit 0 with every row stored, or exit 2 with every problem
on its own line naming the manifest line it is about (or the file as a whole), never a
traceback; and after exit 2 the database and the media folder exactly as before.

Profiles (tests/conftest.py): `ci` replays a fixed set of examples on every run;
`HYPOTHESIS_PROFILE=search` looks for new failures (docs/benchmarks.md says how long it ran).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import struct
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from metrics.io import suffix_of
from readerstudy.models import Case, Reconstruction, Score, Study
from tests.metrics.test_io_fuzz import dicom_files, h5_files, nifti_files, png_files
from tests.readerstudy.factories import smooth_image

pytestmark = pytest.mark.django_db

COLUMNS = ("case", "reference", "reconstruction", "method", "acceleration", "parameters")
SHAPE = (24, 24)

# --- image files --------------------------------------------------------------------------


def npy_bytes(array: np.ndarray, version: tuple[int, int] = (1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=False)
    return buffer.getvalue()


def lying_header(shape: tuple[int, ...], version: int) -> bytes:
    """An .npy header that declares `shape` over almost no data."""
    header = repr({"descr": "<f8", "fortran_order": False, "shape": shape}).encode()
    size = struct.pack("<H" if version == 1 else "<I", len(header) + 1)
    return np.lib.format.magic(version, 0) + size + header + b"\n" + b"\0" * 16


@st.composite
def arrays(draw) -> np.ndarray:
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "uint8", "complex64", "bool"]))
    shape = draw(
        st.sampled_from(
            [SHAPE, (2, *SHAPE), (1, *SHAPE), (24, 23), (0, 24), (24,), (2, 2, *SHAPE)]
        )
    )
    image = np.resize(smooth_image(draw(st.integers(0, 3)), shape=SHAPE), shape)
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf, 1e300, -1e39, 0.0]))
    image = image.astype("float64")
    if special is not None and image.size:
        image.flat[draw(st.integers(0, image.size - 1))] = special
    with np.errstate(invalid="ignore", over="ignore"):
        return image.astype(dtype)


@st.composite
def image_file(draw) -> tuple[str, bytes | None]:
    """(suffix, content); content None for a directory, b"->" + name for a symbolic link."""
    kind = draw(
        st.sampled_from(
            [
                "good",
                "good",
                "good",
                "array",
                "truncated",
                "lying",
                "garbage",
                "empty",
                "dir",
                "link",
                "internals",
                "internals",
            ]
        )
    )
    if kind == "internals":  # HDF5 layouts and filters, DICOM syntaxes, NIfTI and PNG headers
        with tempfile.TemporaryDirectory(prefix="internals-") as root:
            folder = Path(root) / "sample"
            folder.mkdir()
            build = draw(st.sampled_from([h5_files, dicom_files, nifti_files, png_files]))
            path = draw(build(folder))
            return suffix_of(path), path.read_bytes()
    if kind == "good":
        return ".npy", npy_bytes(smooth_image(draw(st.integers(0, 3)), shape=SHAPE))
    if kind == "array":
        version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0)]))
        return ".npy", npy_bytes(draw(arrays()), version)
    if kind == "truncated":
        whole = npy_bytes(smooth_image(0, shape=SHAPE))
        return ".npy", whole[: draw(st.integers(0, len(whole) - 1))]
    if kind == "lying":
        shape = draw(st.sampled_from([(100_000, 100_000), (1, 11586, 11586), (2**40,), (-1, 5)]))
        return ".npy", lying_header(shape, draw(st.sampled_from([1, 2, 3])))
    if kind == "garbage":
        suffix = draw(st.sampled_from([".npy", ".png", ".dcm", ".nii", ".nii.gz", ".h5", ".txt"]))
        return suffix, draw(st.binary(max_size=300))
    if kind == "empty":
        return draw(st.sampled_from([".npy", ".png", ".dcm"])), b""
    if kind == "dir":
        return ".npy", None
    return ".npy", b"->" + draw(
        st.sampled_from([b"outside.npy", b"file0.npy", b"nowhere.npy", b"self"])
    )


# --- manifests ----------------------------------------------------------------------------

texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=12
)
hostile_text = st.one_of(
    texts,
    st.sampled_from(["a", "b", "=1+2", "-x", "@SUM(A1)", "a\x00b", "\u202ecase", "x" * 250, " "]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
parameters = st.one_of(
    st.just(""),
    json_values.map(json.dumps),
    st.dictionaries(texts, json_values, max_size=3).map(json.dumps),
    st.sampled_from(
        [
            '{"lamda": NaN}',
            '{"x": Infinity}',
            '{"x": 1e999}',
            '{"x": "\\u0000"}',
            '{"x": "\\ud800"}',
            "[" * 3000,
            "{" * 20 + "}" * 20,
            "1" * 5000,
            '{"a": ' + "1" * 5000 + "}",
            "{not json",
            "x" * 20_000,
        ]
    ),
)
accelerations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["4", "8", "1", "0.5", "nan", "inf", "1e400", "fast", "", " 4 ", "4,5"]),
)


def usually(good: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a usable value, so that rows get past their first check and imports succeed
    often enough to be explored too; otherwise a hostile one."""
    return st.integers(0, 3).flatmap(lambda roll: hostile if roll == 0 else good)


@st.composite
def manifests(draw, files: list[str]) -> bytes:
    hostile_paths = st.one_of(
        st.sampled_from(files),
        st.sampled_from(["../outside.npy", "/etc/passwd", "missing.npy", "", ".", "x" * 300]),
        texts,
    )
    # A usable row: case a has file0 as reference, case b file1 (both always good images).
    good = st.tuples(
        st.sampled_from([("a", files[0]), ("b", files[1])]),
        st.sampled_from(files[2:] or files),
        st.sampled_from(["zero-filled", "cs-tv", "unet"]),
        st.sampled_from(["2", "4", "8"]),
        st.sampled_from(["", '{"lamda": 0.05}']),
    ).map(lambda r: (r[0][0], r[0][1], r[1], r[2], r[3], r[4]))
    hostile = (hostile_text, hostile_paths, hostile_paths, hostile_text, accelerations, parameters)

    @st.composite
    def spoiled(draw) -> tuple[str, ...]:
        """A usable row with one field replaced by a hostile value."""
        fields = list(draw(good))
        column = draw(st.integers(0, len(fields) - 1))
        fields[column] = draw(hostile[column])
        return tuple(fields)

    row = usually(good, spoiled())
    rows = draw(
        st.lists(
            row,
            min_size=draw(st.sampled_from([1] * 9 + [0])),
            max_size=5,
            unique_by=lambda r: (r[0], r[2]),
        )
    )
    header = list(COLUMNS)
    variant = draw(st.sampled_from(["plain"] * 12 + ["missing", "repeated", "extra"]))
    if variant == "missing":
        header.remove(draw(st.sampled_from(COLUMNS[:5])))
    elif variant == "repeated":
        header.append(draw(st.sampled_from(COLUMNS)))
    elif variant == "extra":
        header.insert(draw(st.integers(0, len(header))), "notes")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        if draw(st.booleans()) and draw(st.booleans()):
            buffer.write(newline)  # a blank line
        writer.writerow(row[: len(header)] if variant == "missing" else row)
    text = buffer.getvalue()
    encoding = draw(st.sampled_from(["utf-8"] * 12 + ["utf-8-sig", "latin-1", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 19)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated anywhere
    if draw(st.integers(0, 19)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@st.composite
def studies(draw) -> tuple[list[tuple[str, bytes | None]], bytes]:
    good_reference = st.integers(0, 3).map(
        lambda seed: (".npy", npy_bytes(smooth_image(seed, shape=SHAPE)))
    )
    images = [
        draw(good_reference),
        draw(good_reference),
        *draw(st.lists(image_file(), min_size=1, max_size=4)),
    ]
    names = [f"file{index}{suffix}" for index, (suffix, _) in enumerate(images)]
    return list(zip(names, (content for _, content in images), strict=True)), draw(
        manifests(names)
    )


def write_study(folder: Path, files: list[tuple[str, bytes | None]], manifest: bytes) -> Path:
    (folder.parent / "outside.npy").write_bytes(npy_bytes(smooth_image(0, shape=SHAPE)))
    for name, content in files:
        path = folder / name
        if content is None:
            path.mkdir()
        elif content.startswith(b"->"):
            target = content[2:].decode()
            if target == "outside.npy":
                path.symlink_to(folder.parent / "outside.npy")
            else:  # a sibling, a missing file, or itself (a loop)
                path.symlink_to(path if target == "self" else folder / target)
        else:
            path.write_bytes(content)
    (folder / "manifest.csv").write_bytes(manifest)
    return folder / "manifest.csv"


def snapshot(media: Path) -> tuple:
    files = (
        sorted(str(p.relative_to(media)) for p in media.rglob("*") if not p.is_dir())
        if media.exists()
        else []
    )
    counts = tuple(model.objects.count() for model in (Study, Case, Reconstruction, Score))
    return counts, files


PROBLEM = re.compile(r"^(?P<manifest>.+manifest\.csv): (line (?P<line>\d+): )?(?P<message>.+)$")


def run_import(manifest: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            call_command(
                "import_study",
                str(manifest),
                "--study=fuzzed",
                "--title=Fuzzed",
                stdout=out,
                stderr=err,
            )
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, err.getvalue()


@hypothesis_settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # `settings` is only read
    ],
)
@given(study=studies())
def test_import_study_exits_0_or_2_and_a_refusal_changes_nothing(study, settings):
    files, manifest_bytes = study
    note(f"manifest: {manifest_bytes[:2000]!r}")
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    folder = root / "study"
    folder.mkdir()
    try:
        manifest = write_study(folder, files, manifest_bytes)
        before = snapshot(settings.MEDIA_ROOT)
        code, err = run_import(manifest)
        note(f"exit {code}: {err}")
        event(f"exit {code}")
        for line in err.splitlines()[:-1]:
            event("problem: " + re.sub(r"[^a-z ]+", "#", line.split(": ", 1)[-1].lower())[:60])
        assert "Traceback" not in err
        if code == 0:
            study_row = Study.objects.get(slug="fuzzed")
            assert Reconstruction.objects.filter(case__study=study_row).exists()
            # Clean up for the next example: this one's rows and files.
            for case in study_row.cases.all():
                case.reference.delete(save=False)
                for reconstruction in case.reconstructions.all():
                    reconstruction.image.delete(save=False)
            study_row.delete()
            assert snapshot(settings.MEDIA_ROOT) == before
            return
        assert code == 2, (code, err)
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith("nothing imported (")
        physical_lines = manifest_bytes.count(b"\n") + manifest_bytes.count(b"\r") + 1
        for line in lines[:-1]:
            match = PROBLEM.match(line)
            assert match, f"a problem that does not name the manifest: {line!r}"
            if match["line"] is not None:
                assert 1 <= int(match["line"]) <= physical_lines, line
        assert snapshot(settings.MEDIA_ROOT) == before, "a refused import stored something"
    finally:
        shutil.rmtree(root, ignore_errors=True)
