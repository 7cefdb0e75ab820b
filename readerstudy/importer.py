"""Import a study from a researcher's manifest of image files (docs/interfaces.md sections 2-3).

All or nothing: every row is checked first and every problem is reported with its line
number; only a manifest without problems is stored, in one transaction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.storage import Storage
from django.db import DatabaseError, models, transaction

from metrics.image import MetricInputError, check_pair
from metrics.io import ImageReadError, load_image
from readerstudy.manifest import (
    MAX_TEXT,
    ManifestProblem,
    Record,
    parse_parameters,
    read_records,
    text_problem,
)
from readerstudy.models import Case, Reconstruction, Study, array_file

REQUIRED_COLUMNS = ("case", "reference", "reconstruction", "method", "acceleration")
OPTIONAL_COLUMNS = ("parameters",)
FLOAT32_MAX = float(np.finfo(np.float32).max)

__all__ = ["ManifestError", "ManifestProblem", "check_manifest", "import_manifest"]


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


@dataclass
class _CheckedManifest:
    rows: list[_Row] = field(default_factory=list)
    images: dict[Path, np.ndarray] = field(default_factory=dict)
    problems: list[ManifestProblem] = field(default_factory=list)


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
    )


def _load(checked: _CheckedManifest, path: Path) -> np.ndarray:
    """The image as it will be stored (float32), read once however many rows name it."""
    if path not in checked.images:
        image = load_image(path)
        largest = float(np.abs(image).max())
        if largest > FLOAT32_MAX:
            raise ImageReadError(
                f"{path.name}: holds values up to {largest:.3g}, beyond the float32 range "
                f"(+-{FLOAT32_MAX:.3g}) images are stored in; rescale it"
            )
        checked.images[path] = image.astype(np.float32)
    return checked.images[path]


def check_manifest(manifest: Path) -> _CheckedManifest:
    """Read and check every row; collect every problem instead of stopping at the first."""
    checked = _CheckedManifest()
    base = manifest.resolve().parent
    records, checked.problems = read_records(manifest, REQUIRED_COLUMNS, OPTIONAL_COLUMNS)
    references: dict[str, Path] = {}
    seen: dict[tuple[str, Path], int] = {}
    for record in records:
        try:
            row = _parse_row(record, base)
            known = references.setdefault(row.case, row.reference)
            if known != row.reference:
                raise ValueError(f"case {row.case!r} already has reference {known.name}")
            if (row.case, row.reconstruction) in seen:
                raise ValueError(
                    f"duplicate of line {seen[row.case, row.reconstruction]} "
                    f"({row.reconstruction.name} in case {row.case!r})"
                )
            seen[row.case, row.reconstruction] = row.line
            reference = _load(checked, row.reference)
            check_pair(reference, _load(checked, row.reconstruction))
            checked.rows.append(row)
        except (ValueError, ImageReadError, MetricInputError) as error:
            checked.problems.append(ManifestProblem(record.line, str(error)))
    if not checked.rows and not checked.problems:
        checked.problems.append(ManifestProblem(0, "the manifest has no rows"))
    return checked


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
    """Image files written for an import, removed again if it fails: every file is written
    after the whole manifest is checked, and recorded before its row is inserted."""

    def __init__(self) -> None:
        self.written: list[tuple[Storage, str]] = []

    def store(self, file: models.fields.files.FieldFile, image: np.ndarray) -> None:
        file.save("image.npy", array_file(image), save=False)
        self.written.append((file.storage, file.name or ""))

    def remove_all(self) -> None:
        for storage, name in self.written:
            storage.delete(name)


def import_manifest(manifest: Path, *, slug: str, title: str) -> Study:
    """Create study `slug` from `manifest`, with the default questions, and queue its metrics.

    Raises:
        ManifestError: the slug or title is unusable, the study exists already, or any row
            has a problem; nothing is stored, in the database or the media folder.
    """
    problems = study_problems(slug, title)
    if problems:
        raise ManifestError(problems)
    checked = check_manifest(manifest)
    if checked.problems:
        raise ManifestError(checked.problems)
    base = manifest.resolve().parent
    files = _WrittenFiles()
    line = 0
    try:
        with transaction.atomic():
            study = Study.objects.create(slug=slug, title=title.strip())
            study.add_default_questions()
            cases: dict[str, Case] = {}
            for row in checked.rows:
                line = row.line
                if row.case not in cases:
                    reference = checked.images[row.reference]
                    case = Case(study=study, name=row.case, shape=list(reference.shape))
                    files.store(case.reference, reference)
                    case.save()
                    cases[row.case] = case
                reconstruction = Reconstruction(
                    case=cases[row.case],
                    method=row.method,
                    acceleration=row.acceleration,
                    parameters=row.parameters,
                    source_name=str(row.reconstruction.relative_to(base)),
                )
                files.store(reconstruction.image, checked.images[row.reconstruction])
                reconstruction.save()
            study.queue_metrics()
    except DatabaseError as error:
        files.remove_all()
        # A value that passed every check above and still failed: say so with its line.
        raise ManifestError(
            [ManifestProblem(line, f"the database refused this row ({error}); nothing stored")]
        ) from error
    except BaseException:
        files.remove_all()
        raise
    return study
