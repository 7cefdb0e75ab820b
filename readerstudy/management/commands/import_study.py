"""`manage.py import_study MANIFEST.csv --study SLUG --title TITLE` (docs/interfaces.md sections 2-3),
or `manage.py import_study ARCHIVE.zip [--study SLUG]`: a study archive restored (section 7)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from readerstudy.archive import ArchiveError, restore_archive
from readerstudy.importer import ManifestError, import_manifest


class Command(BaseCommand):
    help = "Import a study from a CSV manifest of reference and reconstruction files (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("manifest", type=Path, help="a manifest CSV, or a study archive .zip")
        parser.add_argument("--study", help="slug of the new study (an archive's own by default)")
        parser.add_argument("--title", help="title of the new study (not for an archive)")

    def handle(self, *args, manifest: Path, study: str | None, title: str | None, **options):
        if manifest.suffix.lower() == ".zip":
            return self.restore(manifest, study)
        if study is None or title is None:
            self.stderr.write("a manifest needs --study SLUG and --title TITLE")
            sys.exit(2)
        try:
            created = import_manifest(manifest, slug=study, title=title)
        except ManifestError as invalid:
            for problem in invalid.problems:
                self.stderr.write(f"{manifest}: {problem}")
            self.stderr.write(f"nothing imported ({len(invalid.problems)} problem(s))")
            sys.exit(2)
        cases = created.cases.count()
        reconstructions = sum(c.reconstructions.count() for c in created.cases.all())
        waiting = created.cases.exclude(metrics_queue_error="")
        self.stdout.write(
            f"imported study {created.slug!r}: {cases} cases, {reconstructions} reconstructions; "
            + ("metrics queued" if not waiting else f"metrics queued for {cases - len(waiting)}")
        )
        if waiting:
            # The import itself succeeded: the study is stored and readers can start.
            self.stderr.write(
                f"warning: metrics of {len(waiting)} case(s) not queued: "
                f"{waiting[0].metrics_queue_error}. Run `manage.py queue_metrics --study "
                f"{created.slug}` once the broker is back."
            )

    def restore(self, archive: Path, slug: str | None) -> None:
        try:
            restored, notes = restore_archive(archive, slug=slug)
        except ArchiveError as error:
            self.stderr.write(f"{archive}: {error}; nothing restored")
            sys.exit(2)
        except ManifestError as invalid:
            for problem in invalid.problems:
                self.stderr.write(f"{archive}: {problem}")
            self.stderr.write(f"nothing restored ({len(invalid.problems)} problem(s))")
            sys.exit(2)
        for note in notes:
            self.stderr.write(f"note: {note}")
        self.stdout.write(
            f"restored study {restored.slug!r} ({restored.get_status_display().lower()}): "
            f"{restored.cases.count()} cases, {restored.readers.count()} readers, "
            f"{sum(1 for _ in restored.questions.all())} questions"
        )
