"""A whole study as one zip, and its restoration on another server (docs/interfaces.md
section 9): `manage.py import_study ARCHIVE.zip` reads what `write_archive` writes.

Inside: `study.json` (settings, questions, researchers, each reader's order, every score with
its revisions, every stored metric value), `manifest.csv` with the images as `.npy` (an
import manifest, with each reconstruction's id), and the CSV exports for people to read.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.dateparse import parse_datetime

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
from readerstudy.importer import ManifestError, ManifestProblem, import_manifest
from readerstudy.models import (
    Assignment,
    Comparison,
    Question,
    Reader,
    Reconstruction,
    Score,
    ScoreRevision,
    Study,
)
from readerstudy.uploads import UploadLimits, UploadRefusedError, unpack

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


def _parse_when(text: str) -> datetime:
    value = parse_datetime(text)
    if value is None:
        raise ValueError(f"time {text[:40]!r}")
    return value


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
            "value": value,
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


class ArchiveError(Exception):
    """The archive cannot be restored; nothing was stored."""


def restore_archive(path: Path, *, slug: str | None = None) -> tuple[Study, list[str]]:
    """Restore a study from its archive, all or nothing; returns it and notes for the person
    restoring (readers given accounts without a password, researchers not on this server).

    Raises:
        ArchiveError: the archive is unreadable or not a study archive.
        ManifestError: its manifest or images have problems.
    """
    with tempfile.TemporaryDirectory(dir=settings.UPLOADS_DIR) as folder:
        target = Path(folder) / "archive"
        limits = UploadLimits(settings.UPLOAD_MAX_FILES, settings.UPLOAD_MAX_UNPACKED_BYTES)
        try:
            unpack([("archive.zip", path)], target, limits, consume=False)
        except UploadRefusedError as refused:
            raise ArchiveError(str(refused)) from None
        try:
            record = json.loads((target / "study.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ArchiveError(f"not a study archive: no readable study.json ({error})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ArchiveError("not a study archive: study.json is of another format")
        if record.get("format_version") != FORMAT_VERSION:
            raise ArchiveError(
                f"archive format {record.get('format_version')} is not the {FORMAT_VERSION} this "
                "server reads"
            )
        settings_of = record.get("study") or {}
        notes: list[str] = []
        study = import_manifest(
            target / "manifest.csv",
            slug=slug or str(settings_of.get("slug", "")),
            title=str(settings_of.get("title", "")),
            keep_ids=True,
            # In the import's transaction: a failure here removes the images written too.
            then=lambda study: notes.extend(_restore_records(study, record)),
        )
    return study, notes


# Marks the key of a repeat read, (_REPEAT, its first read's key): no question key can equal it.
_REPEAT = object()


def _is_repeat(key: Any) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and key[0] is _REPEAT


def _comparison_key(named: Any) -> tuple[str, str, int]:
    """A comparison as study.json names it: [question key, case name, set number]."""
    question, case, number = named
    return str(question), str(case), int(number)


def _ranks(ranks: Any) -> list[int] | None:
    return None if ranks is None else [int(rank) for rank in ranks]


def _restore_records(study: Study, record: dict[str, Any]) -> list[str]:
    try:
        return _restore_records_checked(study, record)
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(
            [ManifestProblem(0, f"study.json: missing or malformed {error}; nothing stored")]
        ) from None


def _restore_records_checked(study: Study, record: dict[str, Any]) -> list[str]:
    users = get_user_model()
    notes: list[str] = []
    settings_of = record["study"]
    study.instructions = settings_of.get("instructions", "")
    study.end_message = settings_of.get("end_message", study.end_message)
    study.presentation = Study.Presentation(settings_of["presentation"])
    study.status = Study.Status(settings_of["status"])
    study.repeat_share = min(max(float(settings_of.get("repeat_share", 0.0)), 0.0), 0.5)
    study.save()
    questions = {}
    for q in record["questions"]:
        questions[q["key"]] = Question.objects.create(
            study=study,
            key=q["key"],
            label=q["label"],
            scale_min=int(q["scale_min"]),
            scale_max=int(q["scale_max"]),
            anchors=dict(q.get("anchors") or {}),
            position=int(q.get("position", 0)),
            kind=Question.Kind(q.get("kind", Question.Kind.LIKERT)),
            allow_ties=bool(q.get("allow_ties", False)),
            set_size=int(q.get("set_size", 4)),
            comparisons_per_reconstruction=q.get("comparisons_per_reconstruction"),
        )
    for name in record.get("researchers", []):
        user = users.objects.filter(username=name).first()
        if user is None:
            notes.append(
                f"researcher {name!r} has no account here; add them on the study's people page"
            )
        else:
            study.researchers.add(user)
    reconstructions = dict(
        Reconstruction.objects.filter(case__study=study).values_list("public_id", "pk")
    )
    cases = dict(study.cases.values_list("name", "pk"))
    comparisons: dict[tuple[str, str, int], Comparison] = {}
    for entry in record.get("comparisons", []):
        comparison = Comparison.objects.create(
            question=questions[entry["question"]],
            case_id=cases[entry["case"]],
            number=int(entry["number"]),
        )
        comparison.members.set([reconstructions[public_id] for public_id in entry["members"]])
        comparisons[entry["question"], entry["case"], int(entry["number"])] = comparison

    def item_of(entry: str | dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The key a score names its item by, and the item's fields."""
        if isinstance(entry, dict) and "repeat" in entry:
            key, fields = item_of(entry["repeat"])
            return (_REPEAT, key), fields
        if isinstance(entry, str):
            return entry, {"reconstruction_id": reconstructions[entry]}
        key = _comparison_key(entry["comparison"])
        layout = [reconstructions[public_id] for public_id in entry["layout"]]
        return key, {"comparison": comparisons[key], "layout": layout}

    items: dict[tuple[str, Any], Assignment] = {}
    accounts: dict[str, Any] = {}
    for entry in record["readers"]:
        name = entry["username"]
        user, created = users.objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save()
            notes.append(
                f"reader {name!r} got an account without a password: invite them or set one"
            )
        accounts[name] = user
        reader = Reader.objects.create(
            study=study,
            user=user,
            removed_at=parse_datetime(entry["removed_at"]) if entry.get("removed_at") else None,
        )
        if entry.get("joined_at"):
            Reader.objects.filter(pk=reader.pk).update(joined_at=_parse_when(entry["joined_at"]))
        keyed = [
            (key, Assignment(reader=reader, position=position, **fields))
            for position, (key, fields) in enumerate(map(item_of, entry["order"]), start=1)
        ]
        for key, item in keyed:
            items[name, key] = item
        # First reads before their repeats: a repeat refers to its first read's row.
        for key, item in keyed:
            if _is_repeat(key):
                item.repeat_of = items[name, key[1]]
        Assignment.objects.bulk_create(item for key, item in keyed if not _is_repeat(key))
        Assignment.objects.bulk_create(item for key, item in keyed if _is_repeat(key))
    for entry in record["scores"]:
        if "comparison" in entry:
            item_key: Any = _comparison_key(entry["comparison"])
        else:
            item_key = entry["reconstruction"]
        if entry.get("repeat"):
            item_key = (_REPEAT, item_key)
        score = Score.objects.create(
            assignment=items[entry["reader"], item_key],
            question=questions[entry["question"]],
            value=None if entry.get("value") is None else int(entry["value"]),
            ranks=_ranks(entry.get("ranks")),
            seconds_spent=float(entry["seconds_spent"]),
        )
        # auto_now fields: the original times are written after the insert.
        Score.objects.filter(pk=score.pk).update(
            created_at=_parse_when(entry["created_at"]),
            updated_at=_parse_when(entry["updated_at"]),
        )
        for revision in entry["revisions"]:
            by = revision.get("recorded_by")
            saved = ScoreRevision.objects.create(
                score=score,
                previous_value=revision["previous_value"],
                value=None if revision.get("value") is None else int(revision["value"]),
                previous_ranks=_ranks(revision.get("previous_ranks")),
                ranks=_ranks(revision.get("ranks")),
                seconds_spent=float(revision["seconds_spent"]),
                recorded_by=accounts.get(by) or users.objects.filter(username=by).first(),
            )
            ScoreRevision.objects.filter(pk=saved.pk).update(
                recorded_at=_parse_when(revision["recorded_at"])
            )
    MetricValue.objects.bulk_create(
        MetricValue(
            reconstruction_id=reconstructions[entry["reconstruction"]],
            metric=entry["metric"],
            version=entry["version"],
            value=entry["value"],
            error=entry.get("error", ""),
            device=entry.get("device", ""),
            computed_at=_parse_when(entry["computed_at"]),
        )
        for entry in record["metric_values"]
    )
    return notes
