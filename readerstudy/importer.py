"""Import a study from a researcher's manifest of image files (docs/interfaces.md sections 2-3).

All or nothing: every row is checked first and every problem is reported with its line
number; only a manifest without problems is stored, in one transaction.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.db import transaction

from metrics.image import MetricInputError, check_pair
from metrics.io import ImageReadError, load_image
from readerstudy.models import Case, Reconstruction, Study, array_file

REQUIRED_COLUMNS = ("case", "reference", "reconstruction", "method", "acceleration")
OPTIONAL_COLUMNS = ("parameters",)


@dataclass
class ManifestProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


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
    parameters: dict


@dataclass
class _CheckedManifest:
    rows: list[_Row] = field(default_factory=list)
    images: dict[Path, np.ndarray] = field(default_factory=dict)
    problems: list[ManifestProblem] = field(default_factory=list)


def _resolve(base: Path, value: str) -> Path:
    path = (base / value).resolve()
    if not path.is_relative_to(base):
        raise ImageReadError(f"{value}: path leaves the manifest's folder")
    return path


def _parse_row(line: int, raw: dict[str, str], base: Path) -> _Row:
    values = {key: (raw.get(key) or "").strip() for key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    missing = [key for key in REQUIRED_COLUMNS if not values[key]]
    if missing:
        raise ValueError(f"empty {', '.join(missing)}")
    try:
        acceleration = float(values["acceleration"])
    except ValueError:
        raise ValueError(f"acceleration {values['acceleration']!r} is not a number") from None
    if not math.isfinite(acceleration) or acceleration < 1:
        raise ValueError(f"acceleration must be a number >= 1, got {values['acceleration']}")
    parameters = {}
    if values["parameters"]:
        try:
            parameters = json.loads(values["parameters"])
        except json.JSONDecodeError as error:
            raise ValueError(f"parameters are not valid JSON ({error.msg})") from None
        if not isinstance(parameters, dict):
            raise ValueError("parameters must be a JSON object")
    return _Row(
        line=line,
        case=values["case"],
        reference=_resolve(base, values["reference"]),
        reconstruction=_resolve(base, values["reconstruction"]),
        method=values["method"],
        acceleration=acceleration,
        parameters=parameters,
    )


def _load(checked: _CheckedManifest, path: Path) -> np.ndarray:
    if path not in checked.images:
        checked.images[path] = load_image(path).astype(np.float32)
    return checked.images[path]


def check_manifest(manifest: Path) -> _CheckedManifest:
    """Read and check every row; collect every problem instead of stopping at the first."""
    checked = _CheckedManifest()
    base = manifest.resolve().parent
    try:
        handle = manifest.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        checked.problems.append(ManifestProblem(0, f"cannot open manifest: {error.strerror}"))
        return checked
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            checked.problems.append(
                ManifestProblem(
                    1,
                    f"missing column(s) {', '.join(missing)}; "
                    f"expected {','.join(REQUIRED_COLUMNS)}[,parameters]",
                )
            )
            return checked
        reader.fieldnames = columns
        references: dict[str, Path] = {}
        seen: dict[tuple[str, Path], int] = {}
        for line, raw in enumerate(reader, start=2):
            try:
                row = _parse_row(line, raw, base)
                known = references.setdefault(row.case, row.reference)
                if known != row.reference:
                    raise ValueError(f"case {row.case!r} already has reference {known.name}")
                if (row.case, row.reconstruction) in seen:
                    raise ValueError(
                        f"duplicate of line {seen[row.case, row.reconstruction]} "
                        f"({row.reconstruction.name} in case {row.case!r})"
                    )
                seen[row.case, row.reconstruction] = line
                reference = _load(checked, row.reference)
                check_pair(reference, _load(checked, row.reconstruction))
                checked.rows.append(row)
            except (ValueError, ImageReadError, MetricInputError) as error:
                checked.problems.append(ManifestProblem(line, str(error)))
    if not checked.rows and not checked.problems:
        checked.problems.append(ManifestProblem(0, "the manifest has no rows"))
    return checked


def import_manifest(manifest: Path, *, slug: str, title: str) -> Study:
    """Create study `slug` from `manifest`, with the default questions, and queue its metrics.

    Raises:
        ManifestError: the study exists already or any row has a problem; nothing is stored.
    """
    if Study.objects.filter(slug=slug).exists():
        raise ManifestError([ManifestProblem(0, f"a study with slug {slug!r} already exists")])
    checked = check_manifest(manifest)
    if checked.problems:
        raise ManifestError(checked.problems)
    stored: list = []
    try:
        with transaction.atomic():
            study = Study.objects.create(slug=slug, title=title)
            study.add_default_questions()
            cases: dict[str, Case] = {}
            for row in checked.rows:
                if row.case not in cases:
                    reference = checked.images[row.reference]
                    cases[row.case] = Case.objects.create(
                        study=study,
                        name=row.case,
                        reference=array_file(reference),
                        shape=list(reference.shape),
                    )
                    stored.append(cases[row.case].reference)
                reconstruction = Reconstruction.objects.create(
                    case=cases[row.case],
                    method=row.method,
                    acceleration=row.acceleration,
                    parameters=row.parameters,
                    source_name=str(row.reconstruction.relative_to(manifest.resolve().parent)),
                    image=array_file(checked.images[row.reconstruction]),
                )
                stored.append(reconstruction.image)
            study.queue_metrics()
    except BaseException:
        for stored_file in stored:  # the rows are rolled back; do not leave their files behind
            stored_file.storage.delete(stored_file.name)
        raise
    return study
