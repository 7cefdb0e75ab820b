"""`manage.py export_study SLUG --scores SCORES.csv --metrics METRICS.csv` (docs/interfaces.md sections 2-3)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from readerstudy.export import METRIC_COLUMNS, SCORE_COLUMNS, metric_rows, score_rows, write_csv
from readerstudy.models import Study


class Command(BaseCommand):
    help = "Write a study's scores and metric values as long-format CSV files."

    def add_arguments(self, parser):
        parser.add_argument("study", help="study slug")
        parser.add_argument("--scores", type=Path, required=True)
        parser.add_argument("--metrics", type=Path, required=True)

    def handle(self, *args, study: str, scores: Path, metrics: Path, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"no study {study!r}")
        for path, rows, columns in (
            (scores, score_rows(found), SCORE_COLUMNS),
            (metrics, metric_rows(found), METRIC_COLUMNS),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as handle:
                count = write_csv(rows, columns, handle)
            self.stdout.write(f"{path}: {count} rows")
