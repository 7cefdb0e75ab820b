"""Import a study from a researcher's manifest of image files (docs/interfaces.md sections 2-3).

All or nothing: every row is checked first and every problem is reported with its line
number; only a manifest without problems is stored, in one transaction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction

from metrics.image import MetricInputError, check_pair
from metrics.io import ImageReadError, ImageTooLargeError, load_image
from readerstudy.manifest import (
    MAX_NOTE_CHARS,
    MAX_TEXT,
    ManifestProblem,
    Record,
    parse_answers,
    parse_flag,
    parse_parameters,
    read_records,
    text_problem,
)
from readerstudy.models import Case, Reconstruction, Study, array_file, image_upload_path

REQUIRED_COLUMNS = ("case", "reference", "reconstruction", "method", "acceleration")
# `id`: a reconstruction's id, kept only when a study archive is restored.
OPTIONAL_COLUMNS = ("parameters", "id", "training", "note", "answer")
RECONSTRUCTION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
FLOAT32_MAX = float(np.finfo(np.float32).max)

__all__ = [
    "ImportResult",
    "ManifestError",
    "ManifestProblem",
    "add_cases",
    "import_manifest",
    "stage_manifest",
]


class ManifestError(Exception):
    """The manifest has problems; nothing was stored."""

    def __init__(self, problems: list[ManifestProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class _Row:
    line: int
    case: str
    reference: Path
    reconstruction: Path
    method: str
    acceleration: float
    parameters: dict[str, Any]
    id: str = ""
    training: bool = False
    note: str = ""
    answers: dict[str, int] = field(default_factory=dict)


def _resolve(base: Path, value: str) -> Path:
    try:
        path = (base / value).resolve()
    except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: a symbolic link loop
        raise ImageReadError(f"{value[:80]}: not a usable path ({error})") from None
    if not path.is_relative_to(base):
        raise ImageReadError(f"{value}: path leaves the manifest's folder")
    return path


def _parse_row(record: Record, base: Path) -> _Row:
    values = record.values
    missing = [key for key in REQUIRED_COLUMNS if not values[key]]
    if missing:
        raise ValueError(f"empty {', '.join(missing)}")
    for column, limit in MAX_TEXT.items():
        problem = text_problem(values[column], limit)
        if problem:
            raise ValueError(f"{column} {problem}")
    try:
        acceleration = float(values["acceleration"])
    except ValueError:
        raise ValueError(f"acceleration {values['acceleration'][:40]!r} is not a number") from None
    if not math.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"acceleration must be a number >= 1, got {values['acceleration'][:40]}")
    return _Row(
        line=record.line,
        case=values["case"],
        reference=_resolve(base, values["reference"]),
        reconstruction=_resolve(base, values["reconstruction"]),
        method=values["method"],
        acceleration=acceleration,
        parameters=parse_parameters(values["parameters"]),
        id=values.get("id", ""),
        training=parse_flag(values.get("training", ""), "training"),
        note=_note(values.get("note", "")),
        answers=parse_answers(values.get("answer", "")),
    )


def _note(text: str) -> str:
    problem = text_problem(text.replace("\n", " "), MAX_NOTE_CHARS)
    if problem:
        raise ValueError(f"note {problem}")
    return text.strip()


ProgressCallback = Callable[[int, int], None]


@dataclass
class _StagedManifest:
    """A checked manifest whose images are written to storage (unless it had problems):
    every image is read, checked and written once, so memory holds one case's reference and
    one reconstruction at a time, however large the upload."""

    rows: list[_Row] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)
    references: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    images: dict[int, str] = field(default_factory=dict)  # stored file name by manifest line
    files: _WrittenFiles = field(default_factory=lambda: _WrittenFiles())
    stored_bytes: int = 0  # what the images read so far take as stored (float32)

    def load(self, path: Path) -> np.ndarray:
        """The image as it will be stored (float32), refused from its header when it is larger
        than IMAGE_MAX_VOXELS or than what is left of UPLOAD_MAX_STORED_BYTES."""
        per_image = settings.IMAGE_MAX_VOXELS
        left = (
            max(0, settings.UPLOAD_MAX_STORED_BYTES - self.stored_bytes) // STORED_BYTES_PER_VOXEL
        )
        try:
            image = _load(path, min(per_image, left))
        except ImageTooLargeError as error:
            if error.limit == per_image or error.voxels is None:
                raise ImageReadError(f"{error} (IMAGE_MAX_VOXELS)") from None
            raise ImageReadError(
                f"{path.name}: {error.voxels:,} voxels would take this upload's stored images "
                f"past {settings.UPLOAD_MAX_STORED_BYTES:,} bytes (UPLOAD_MAX_STORED_BYTES); "
                "split it into several uploads"
            ) from None
        self.stored_bytes += image.nbytes
        return image


STORED_BYTES_PER_VOXEL = np.dtype(np.float32).itemsize


def _load(path: Path, max_voxels: int) -> np.ndarray:
    """The image as it will be stored (float32)."""
    image = load_image(path, max_voxels=max_voxels)
    largest = float(np.abs(image).max())
    if largest > FLOAT32_MAX:
        raise ImageReadError(
            f"{path.name}: holds values up to {largest:.3g}, beyond the float32 range "
            f"(+-{FLOAT32_MAX:.3g}) images are stored in; rescale it"
        )
    return image.astype(np.float32)


def _parse_rows(manifest: Path, taken_cases: set[str], staged: _StagedManifest) -> list[_Row]:
    base = manifest.resolve().parent
    records, staged.problems = read_records(manifest, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    references: dict[str, Path] = {}
    cases: dict[str, _Row] = {}
    seen: dict[tuple[str, Path], int] = {}
    # A file belongs to one case (it may be that case's reference and a reconstruction, an
    # identity control): a short manifest cannot store one file many times.
    owner: dict[Path, tuple[str, int]] = {}
    rows = []
    for record in records:
        try:
            row = _parse_row(record, base)
            if row.case in taken_cases:
                raise ValueError(
                    f"case {row.case!r} is in the study already; give new cases new names"
                )
            known = references.setdefault(row.case, row.reference)
            if known != row.reference:
                raise ValueError(f"case {row.case!r} already has reference {known.name}")
            first = cases.setdefault(row.case, row)
            if (row.training, row.note) != (first.training, first.note):
                raise ValueError(
                    f"case {row.case!r} has another training or note on line {first.line}: "
                    "give every row of a case the same"
                )
            if row.answers and not row.training:
                raise ValueError("answer is for training cases only: set training to yes")
            if (row.case, row.reconstruction) in seen:
                raise ValueError(
                    f"duplicate of line {seen[row.case, row.reconstruction]} "
                    f"({row.reconstruction.name} in case {row.case!r})"
                )
            seen[row.case, row.reconstruction] = row.line
            _claim_files(row, owner)
            rows.append(row)
        except ValueError as error:  # ImageReadError is one: a path that leaves the folder
            staged.problems.append(ManifestProblem(record.line, str(error)))
    if not records and not staged.problems:
        staged.problems.append(ManifestProblem(0, "the manifest has no rows"))
    return rows


def _claim_files(row: _Row, owner: dict[Path, tuple[str, int]]) -> None:
    """A file is an image of one case only (within a case, a second row naming the same
    reconstruction is refused as a duplicate before this)."""
    for path in (row.reference, row.reconstruction):
        case, line = owner.setdefault(path, (row.case, row.line))
        if case != row.case:
            raise ValueError(
                f"{path.name} is an image of case {case!r} already (line {line}); "
                "each file belongs to one case"
            )


def stage_manifest(
    manifest: Path,
    *,
    taken_cases: set[str] | frozenset[str] = frozenset(),
    progress: ProgressCallback | None = None,
    keep_ids: bool = False,
) -> _StagedManifest:
    """Read and check every row, collecting every problem instead of stopping at the first,
    and write the images of a manifest without problems to storage (removed again by
    `staged.files.remove_all()` if it fails later). `taken_cases`: names already in the
    study. `keep_ids`: the `id` column is checked too (restoring an archive).
    `progress(rows checked, rows)` is called as rows are checked."""
    staged = _StagedManifest()
    rows = _parse_rows(manifest, set(taken_cases), staged)
    if keep_ids:  # before any image is read: a bad id stops the writing of them all
        staged.problems += _id_problems(rows)
    by_case: dict[str, list[_Row]] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    checked = 0
    for case, case_rows in by_case.items():
        try:
            reference = staged.load(case_rows[0].reference)
        except ImageReadError as error:
            reference = None
            for row in case_rows:
                staged.problems.append(ManifestProblem(row.line, str(error)))
        if reference is not None and not staged.problems:
            name = staged.files.store_array(reference)
            staged.references[case] = (name, list(reference.shape))
        for row in case_rows:
            if reference is not None:
                try:
                    image = staged.load(row.reconstruction)
                    check_pair(reference, image)
                    staged.rows.append(row)
                    if not staged.problems:
                        staged.images[row.line] = staged.files.store_array(image)
                    del image
                except (ImageReadError, MetricInputError) as error:
                    staged.problems.append(ManifestProblem(row.line, str(error)))
            checked += 1
            if progress is not None:
                progress(checked, len(rows))
        del reference
    if staged.problems:
        staged.files.remove_all()  # nothing of a manifest with problems stays
        staged.problems.sort(key=lambda problem: problem.line)
    return staged


def study_problems(slug: str, title: str) -> list[ManifestProblem]:
    """Why `slug` and `title` cannot name a new study: a slug must be reachable on the web and
    harmless in a spreadsheet (it is the `study` column of every export)."""
    problems = []
    if not Study.slug_is_usable(slug):
        problems.append(
            ManifestProblem(
                0,
                f"--study {slug[:60]!r}: a slug is 1-50 letters, digits, - and _, starting "
                "with a letter or digit",
            )
        )
    problem = Study.title_problem(title)
    if problem:
        problems.append(ManifestProblem(0, f"--title {problem}"))
    if not problems and Study.objects.filter(slug=slug).exists():
        problems.append(ManifestProblem(0, f"a study with slug {slug!r} already exists"))
    return problems


class _WrittenFiles:
    """Image files written for an import, removed again if it fails: recorded as they are
    written, before any row that names them is inserted."""

    def __init__(self) -> None:
        self.storage = default_storage
        self.written: list[str] = []

    def store_array(self, image: np.ndarray) -> str:
        name = self.storage.save(image_upload_path(None, "image.npy"), array_file(image))
        self.written.append(name)
        return name

    def remove_all(self) -> None:
        for name in self.written:
            self.storage.delete(name)
        self.written.clear()


@dataclass
class ImportResult:
    study: Study
    cases: list[Case]
    reconstructions: int


class _RowRefusedError(Exception):
    def __init__(self, line: int, error: DatabaseError):
        self.line, self.error = line, error


def _insert(
    study: Study, manifest: Path, staged: _StagedManifest, *, keep_ids: bool
) -> ImportResult:
    base = manifest.resolve().parent
    cases: dict[str, Case] = {}
    for row in staged.rows:
        try:
            if row.case not in cases:
                name, shape = staged.references[row.case]
                case = Case(
                    study=study,
                    name=row.case,
                    shape=shape,
                    training=row.training,
                    training_note=row.note,
                )
                case.reference.name = name
                case.save()
                cases[row.case] = case
            reconstruction = Reconstruction(
                case=cases[row.case],
                method=row.method,
                acceleration=row.acceleration,
                parameters=row.parameters,
                reference_answers=row.answers,
                source_name=str(row.reconstruction.relative_to(base)),
            )
            if keep_ids and row.id:
                reconstruction.public_id = row.id
            reconstruction.image.name = staged.images[row.line]
            reconstruction.save()
        except DatabaseError as error:
            # A value that passed every check and still failed: say so with its line.
            raise _RowRefusedError(row.line, error) from error
    if not keep_ids:  # a restore queues only what its archive lacks (readerstudy/restore.py)
        for case in cases.values():
            case.queue_metrics()
    return ImportResult(study, list(cases.values()), len(staged.rows))


def _stage_and_insert(
    manifest: Path,
    create_study: Callable[[], Study],
    progress: ProgressCallback | None,
    taken: set[str],
    *,
    keep_ids: bool = False,
    then: Callable[[Study], object] | None = None,
) -> ImportResult:
    staged = stage_manifest(manifest, taken_cases=taken, progress=progress, keep_ids=keep_ids)
    if staged.problems:
        raise ManifestError(staged.problems)
    try:
        with transaction.atomic():
            study = create_study()
            result = _insert(study, manifest, staged, keep_ids=keep_ids)
            if then is not None:
                then(study)
            # Readers who joined already get the new items shuffled into what they have not
            # scored (Reader.extend_order), never as one block at the end.
            study.extend_orders()
    except _RowRefusedError as refused:
        staged.files.remove_all()
        message = f"the database refused this row ({refused.error}); nothing stored"
        raise ManifestError([ManifestProblem(refused.line, message)]) from refused.error
    except BaseException:
        staged.files.remove_all()
        raise
    return result


def _id_problems(rows: list[_Row]) -> list[ManifestProblem]:
    problems = []
    ids = [row.id for row in rows]
    taken = set(
        Reconstruction.objects.filter(public_id__in=ids).values_list("public_id", flat=True)
    )
    for row in rows:
        if not RECONSTRUCTION_ID.fullmatch(row.id):
            problems.append(ManifestProblem(row.line, "id must be 1-32 letters, digits, - and _"))
        elif row.id in taken:
            problems.append(ManifestProblem(row.line, f"id {row.id} is taken on this server"))
    return problems


def import_manifest(
    manifest: Path,
    *,
    slug: str,
    title: str,
    keep_ids: bool = False,
    then: Callable[[Study], object] | None = None,
) -> Study:
    """Create study `slug` from `manifest`, with the default questions, and queue its metrics.
    `keep_ids` (restoring an archive): reconstructions keep the manifest's `id`, and the
    study gets no questions (`then(study)`, run in the same transaction, adds the archive's).

    Raises:
        ManifestError: the slug or title is unusable, the study exists already, or any row
            has a problem; nothing is stored, in the database or the media folder.
    """
    problems = study_problems(slug, title)
    if problems:
        raise ManifestError(problems)

    def create_study() -> Study:
        study = Study.objects.create(slug=slug, title=title.strip())
        if not keep_ids:
            study.add_default_questions()
        return study

    return _stage_and_insert(
        manifest, create_study, None, set(), keep_ids=keep_ids, then=then
    ).study


def add_cases(
    study: Study, manifest: Path, *, progress: ProgressCallback | None = None
) -> ImportResult:
    """Add the cases of `manifest` to an existing study, all or nothing, and queue their
    metrics; readers who joined already get the new items shuffled into their unscored rest.

    Raises:
        ManifestError: any row has a problem (a case name the study has already is one);
            nothing is stored.
    """
    taken = set(study.cases.values_list("name", flat=True))
    return _stage_and_insert(manifest, lambda: study, progress, taken)
