"""`manage.py import_study MANIFEST.csv --study SLUG --title TITLE` (docs/interfaces.md sections 2-3)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from readerstudy.importer import ManifestError, import_manifest


class Command(BaseCommand):
    help = "Import a study from a CSV manifest of reference and reconstruction files (all or nothing)."

    def add_arguments(self, parser):
        parser.add_argument("manifest", type=Path)
        parser.add_argument("--study", required=True, help="slug of the new study")
        parser.add_argument("--title", required=True)

    def handle(self, *args, manifest: Path, study: str, title: str, **options):
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
