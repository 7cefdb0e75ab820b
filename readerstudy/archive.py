"""A whole study as one zip (docs/interfaces.md section 9): `manage.py import_study
ARCHIVE.zip` (readerstudy/restore.py) reads what `write_archive` writes.

Inside: `study.json` (settings, questions, researchers, each reader's order, every score with
its revisions, every stored metric value), `manifest.csv` with the images as `.npy` (an
import manifest, with each reconstruction's id), and the CSV exports for people to read.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import zipfile
from typing import IO, Any

from django.conf import settings

from metrics.models import MetricValue
from readerstudy.export import (
    HISTORY_COLUMNS,
    METRIC_COLUMNS,
    RANKING_COLUMNS,
    REPEAT_COLUMNS,
    SCORE_COLUMNS,
    TRAINING_COLUMNS,
    history_rows,
    metric_rows,
    ranking_rows,
    repeat_rows,
    score_rows,
    training_rows,
    write_csv,
)
from readerstudy.models import (
    Assignment,
    Comparison,
    Reconstruction,
    Score,
    Study,
)

FORMAT = "mr-readerstudy-archive"
FORMAT_VERSION = 1
MANIFEST_COLUMNS = [
    "case",
    "reference",
    "reconstruction",
    "method",
    "acceleration",
    "parameters",
    "id",
    "training",
    "note",
    "answer",
]


def json_number(value: float | None) -> float | str | None:
    """A metric value as JSON allows: an infinite PSNR (a reconstruction equal to its
    reference) is written "inf", which `float()` reads back."""
    if value is None or math.isfinite(value):
        return value
    return repr(float(value))


def _when(value) -> str | None:
    return value.isoformat() if value else None


def study_record(study: Study) -> dict[str, Any]:
    """Everything of a study but its images, as JSON-ready data."""
    public = dict(Reconstruction.objects.filter(case__study=study).values_list("pk", "public_id"))
    comparisons = {
        comparison.pk: comparison
        for comparison in Comparison.objects.filter(question__study=study)
        .select_related("question", "case")
        .prefetch_related("members")
        .order_by("pk")
    }

    def comparison_key(pk: int) -> list:
        comparison = comparisons[pk]
        return [comparison.question.key, comparison.case.name, comparison.number]

    def item_entry(item: Assignment) -> str | dict[str, Any]:
        # A reconstruction by its public id; a comparison by (question, case, set) and the
        # reader's layout; a repeat read as {"repeat": its item}.
        entry: str | dict[str, Any]
        if item.reconstruction_id is not None:
            entry = public[item.reconstruction_id]
        else:
            assert item.comparison_id is not None
            entry = {
                "comparison": comparison_key(item.comparison_id),
                "layout": [public[pk] for pk in item.layout],
            }
        return {"repeat": entry} if item.repeat_of_id is not None else entry

    readers = []
    for reader in study.readers.select_related("user").order_by("pk"):
        items = reader.assignments.order_by("position")
        readers.append(
            {
                "username": reader.user.username,
                "joined_at": _when(reader.joined_at),
                "removed_at": _when(reader.removed_at),
                "order": [item_entry(item) for item in items],
            }
        )
    scores = []
    for score in (
        Score.objects.filter(assignment__reader__study=study)
        .select_related("assignment__reader__user", "question")
        .prefetch_related("revisions__recorded_by")
        .order_by("pk")
    ):
        item = score.assignment
        answered: dict[str, Any] = (
            {"reconstruction": public[item.reconstruction_id]}
            if item.reconstruction_id is not None
            else {"comparison": comparison_key(item.comparison_id or 0)}
        )
        scores.append(
            {
                "reader": item.reader.user.username,
                **answered,
                "repeat": item.repeat_of_id is not None,
                "question": score.question.key,
                "value": score.value,
                "ranks": score.ranks,
                "seconds_spent": score.seconds_spent,
                "created_at": _when(score.created_at),
                "updated_at": _when(score.updated_at),
                "revisions": [
                    {
                        "previous_value": revision.previous_value,
                        "value": revision.value,
                        "previous_ranks": revision.previous_ranks,
                        "ranks": revision.ranks,
                        "seconds_spent": revision.seconds_spent,
                        "recorded_at": _when(revision.recorded_at),
                        "recorded_by": revision.recorded_by.username
                        if revision.recorded_by
                        else None,
                    }
                    for revision in score.revisions.all()
                ],
            }
        )
    metric_values = [
        {
            "reconstruction": public_id,
            "metric": metric,
            "version": version,
            "value": json_number(value),
            "error": error,
            "device": device,
            "computed_at": _when(computed_at),
        }
        for public_id, metric, version, value, error, device, computed_at in MetricValue.objects.filter(
            reconstruction__case__study=study
        )
        .order_by("pk")
        .values_list(
            "reconstruction__public_id",
            "metric",
            "version",
            "value",
            "error",
            "device",
            "computed_at",
        )
    ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "study": {
            "slug": study.slug,
            "title": study.title,
            "instructions": study.instructions,
            "end_message": study.end_message,
            "presentation": study.presentation,
            "status": study.status,
            "repeat_share": study.repeat_share,
            "window_presets": study.window_presets,
        },
        "questions": list(
            study.questions.order_by("position", "pk").values(
                "key",
                "label",
                "kind",
                "scale_min",
                "scale_max",
                "anchors",
                "position",
                "allow_ties",
                "set_size",
                "comparisons_per_reconstruction",
            )
        ),
        "comparisons": [
            {
                "question": comparison.question.key,
                "case": comparison.case.name,
                "number": comparison.number,
                "members": sorted(public[m.pk] for m in comparison.members.all()),
            }
            for comparison in comparisons.values()
        ],
        "researchers": sorted(study.researchers.values_list("username", flat=True)),
        "readers": readers,
        "scores": scores,
        "metric_values": metric_values,
    }


def write_archive(study: Study) -> IO[bytes]:
    """The study's archive in a temporary file (gone once closed), read from its start.
    Images are stored uncompressed: MR intensities hardly deflate, and a large study's
    download should not wait on compression."""
    # Returned open (the response closes it), so not in a with block.
    handle = tempfile.TemporaryFile(dir=settings.UPLOADS_DIR)  # noqa: SIM115
    with zipfile.ZipFile(
        handle, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True
    ) as archive:
        archive.writestr("study.json", json.dumps(study_record(study), indent=1, allow_nan=False))
        manifest = io.StringIO()
        writer = csv.writer(manifest)
        writer.writerow(MANIFEST_COLUMNS)
        for index, case in enumerate(study.cases.order_by("pk"), start=1):
            reference = f"images/{index:05d}/reference.npy"
            with case.reference.open("rb") as source:
                _store(archive, reference, source)
            for reconstruction in case.reconstructions.order_by("pk"):
                path = f"images/{index:05d}/{reconstruction.public_id}.npy"
                with reconstruction.image.open("rb") as source:
                    _store(archive, path, source)
                writer.writerow(
                    [
                        case.name,
                        reference,
                        path,
                        reconstruction.method,
                        repr(reconstruction.acceleration),
                        json.dumps(reconstruction.parameters) if reconstruction.parameters else "",
                        reconstruction.public_id,
                        "yes" if case.training else "",
                        case.training_note,
                        "; ".join(f"{k}={v}" for k, v in reconstruction.reference_answers.items()),
                    ]
                )
        archive.writestr("manifest.csv", manifest.getvalue())
        for name, rows, columns in (
            ("scores.csv", score_rows, SCORE_COLUMNS),
            ("metrics.csv", metric_rows, METRIC_COLUMNS),
            ("score-history.csv", history_rows, HISTORY_COLUMNS),
            ("rankings.csv", ranking_rows, RANKING_COLUMNS),
            ("repeats.csv", repeat_rows, REPEAT_COLUMNS),
            ("training.csv", training_rows, TRAINING_COLUMNS),
        ):
            text = io.StringIO()
            write_csv(rows(study), columns, text)
            archive.writestr(name, text.getvalue())
    handle.seek(0)
    return handle


def _store(archive: zipfile.ZipFile, name: str, source) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    with archive.open(info, "w", force_zip64=True) as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
