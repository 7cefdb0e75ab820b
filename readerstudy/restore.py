"""Restoring a study from its archive (docs/interfaces.md section 9), trusting nothing in it.

An archive may come from anyone. Its images go through the importer as any upload does, and
its study.json through readerstudy/restore_records.py, which checks every record as the forms
and the API would. Archived people become accounts here only as the person restoring says:
`--researcher NAME` runs the restored study, `--map-user OLD=NEW` gives an archived reader's
scores to an existing account, and any other archived reader becomes a new account without a
password. All or nothing, in one transaction; a dry run does it all and rolls back.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from readerstudy.archive import FORMAT, FORMAT_VERSION
from readerstudy.importer import import_manifest
from readerstudy.metric_status import cases_missing_metrics
from readerstudy.models import Study
from readerstudy.restore_records import People, RecordRestorer
from readerstudy.uploads import UploadLimits, UploadRefusedError, unpack

__all__ = ["ArchiveError", "People", "restore_archive"]

# study.json of 144,000 scores with their revisions is about 60 MB.
MAX_RECORD_BYTES = 512 * 2**20


class ArchiveError(Exception):
    """The archive cannot be restored; nothing was stored."""


class _DryRunError(Exception):
    """Raised inside the restore's transaction to roll a dry run back."""

    def __init__(self, notes: list[str]):
        self.notes = notes


def restore_archive(
    path: Path, *, slug: str | None = None, people: People | None = None, dry_run: bool = False
) -> tuple[Study | None, list[str]]:
    """Restore a study from its archive, all or nothing; returns it (None for a dry run) and
    notes for the person restoring (accounts made, names mapped, researchers not given).

    Raises:
        ArchiveError: the archive is unreadable, not a study archive, or names accounts that
            are not here.
        ManifestError: its manifest, images or records have problems (every one is listed).
    """
    people = people or People()
    with tempfile.TemporaryDirectory(dir=settings.UPLOADS_DIR) as folder:
        target = Path(folder) / "archive"
        limits = UploadLimits(settings.UPLOAD_MAX_FILES, settings.UPLOAD_MAX_UNPACKED_BYTES)
        try:
            unpack([("archive.zip", path)], target, limits, consume=False)
        except UploadRefusedError as refused:
            raise ArchiveError(str(refused)) from None
        record = _read_record(target)
        _check_accounts(people)
        settings_of: dict[str, Any] = (
            record["study"] if isinstance(record.get("study"), dict) else {}
        )
        notes: list[str] = []

        def then(study: Study) -> None:
            notes.extend(RecordRestorer(study, record, people).run())
            # Stored values at this server's versions are kept; only the rest is computed.
            missing = cases_missing_metrics(study)
            for case in missing:
                case.queue_metrics()
            notes.append(
                f"metrics queued for {len(missing)} of {study.cases.count()} case(s); the "
                "archive's values at this server's metric versions are kept"
            )
            if dry_run:
                raise _DryRunError(notes)

        try:
            study = import_manifest(
                target / "manifest.csv",
                slug=slug or str(settings_of.get("slug", "")),
                title=str(settings_of.get("title", "")),
                keep_ids=True,
                # In the import's transaction: a failure here removes the images written too.
                then=then,
            )
        except _DryRunError as dry:
            return None, dry.notes
    return study, notes


def _read_record(target: Path) -> dict[str, Any]:
    try:
        size = (target / "study.json").stat().st_size
        if size > MAX_RECORD_BYTES:  # read whole into memory: bounded first
            raise ArchiveError(
                f"study.json is {size:,} bytes; at most {MAX_RECORD_BYTES:,} are read"
            )
        record = json.loads((target / "study.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ArchiveError(f"not a study archive: no readable study.json ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ArchiveError("not a study archive: study.json is of another format")
    if record.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(
            f"archive format {str(record.get('format_version'))[:20]} is not the "
            f"{FORMAT_VERSION} this server reads"
        )
    return record


def _check_accounts(people: People) -> None:
    users = get_user_model()
    named = [*people.researchers, *people.users.values()]
    known = set(users.objects.filter(username__in=named).values_list("username", flat=True))
    missing = [name for name in named if name not in known]
    if missing:
        raise ArchiveError(
            f"no account is called {missing[0]!r} here (create it first, e.g. "
            "`manage.py createsuperuser`)"
        )
    both = set(people.researchers) & set(people.users.values())
    if both:
        raise ArchiveError(
            f"{sorted(both)[0]!r} would both read and run the study; a reader must not see "
            "its results (blinding)"
        )
