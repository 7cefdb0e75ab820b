"""`manage.py import_study MANIFEST.csv --study SLUG --title TITLE` (docs/interfaces.md sections 2-3),
or `manage.py import_study ARCHIVE.zip --researcher NAME [--map-user OLD=NEW] [--study SLUG]
[--dry-run]`: a study archive restored (section 9)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from readerstudy.importer import ManifestError, import_manifest
from readerstudy.metric_status import metrics_small_cases_lack
from readerstudy.restore import ArchiveError, People, restore_archive


def user_pair(text: str) -> tuple[str, str]:
    old, separator, new = text.partition("=")
    if not separator or not old or not new:
        raise ValueError(text)
    return old, new


class Command(BaseCommand):
    help = "Import a study from a CSV manifest of reference and reconstruction files (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("manifest", type=Path, help="a manifest CSV, or a study archive .zip")
        parser.add_argument("--study", help="slug of the new study (an archive's own by default)")
        parser.add_argument("--title", help="title of the new study (not for an archive)")
        parser.add_argument(
            "--researcher",
            action="append",
            default=[],
            help="an archive: an account here that runs the restored study (repeatable)",
        )
        parser.add_argument(
            "--map-user",
            action="append",
            type=user_pair,
            default=[],
            metavar="OLD=NEW",
            help="an archive: archived reader OLD's scores go to account NEW here (repeatable); "
            "unmapped readers become new accounts without a password",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="an archive: check and report; store nothing"
        )

    def handle(self, *args, manifest: Path, study: str | None, title: str | None, **options):
        if manifest.suffix.lower() == ".zip":
            people = People(dict(options["map_user"]), tuple(options["researcher"]))
            return self.restore(manifest, study, people, options["dry_run"])
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
        for note in metrics_small_cases_lack(created.cases.all()):
            self.stderr.write(f"warning: {note}")
        if waiting:
            # The import itself succeeded: the study is stored and readers can start.
            self.stderr.write(
                f"warning: metrics of {len(waiting)} case(s) not queued: "
                f"{waiting[0].metrics_queue_error}. Run `manage.py queue_metrics --study "
                f"{created.slug}` once the broker is back."
            )

    def restore(self, archive: Path, slug: str | None, people: People, dry_run: bool) -> None:
        if not people.researchers and not dry_run:
            self.stderr.write(
                f"{archive}: name who runs the restored study: --researcher NAME (an account "
                "here; `manage.py createsuperuser` makes the first); nothing restored"
            )
            sys.exit(2)
        try:
            restored, notes = restore_archive(archive, slug=slug, people=people, dry_run=dry_run)
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
        if restored is None:
            self.stdout.write(f"{archive}: the archive restores as shown; dry run, nothing stored")
            return
        self.stdout.write(
            f"restored study {restored.slug!r} ({restored.get_status_display().lower()}): "
            f"{restored.cases.count()} cases, {restored.readers.count()} readers, "
            f"{sum(1 for _ in restored.questions.all())} questions"
        )
