"""`manage.py analyze --scores SCORES.csv --metrics METRICS.csv [--bootstrap B] [--seed S] --json`."""

import json as jsonlib
import sys
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand

from metrics.stats.analysis import AnalysisInputError, analyze


class Command(BaseCommand):
    help = "Correlate metrics with reader scores and measure inter-reader agreement (CONTRACTS.md section 3)."

    def add_arguments(self, parser):
        parser.add_argument("--scores", type=Path, required=True)
        parser.add_argument("--metrics", type=Path, required=True)
        parser.add_argument(
            "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--full",
            action="store_true",
            help=(
                "add the dashboard's statistics: paired comparisons, the inter-reader baseline, "
                "per method/acceleration (from those columns of SCORES.csv) and a sample-size hint"
            ),
        )

    def handle(self, *args, scores: Path, metrics: Path, bootstrap: int, seed: int, **options):
        try:
            if bootstrap < 1:
                raise AnalysisInputError("--bootstrap must be at least 1")
            score_frame, metric_frame = (self.read(path) for path in (scores, metrics))
            groups = None
            if options["full"] and {"method", "acceleration"} <= set(score_frame.columns):
                groups = score_frame[["reconstruction", "method", "acceleration"]]
            result = analyze(
                score_frame,
                metric_frame,
                bootstrap=bootstrap,
                seed=seed,
                groups=groups,
                extended=options["full"],
            )
        except AnalysisInputError as error:
            self.stderr.write(f"error: {error}")
            sys.exit(2)
        if options["json"]:
            self.stdout.write(self.dumps(result))
            return
        for question, block in result["questions"].items():
            self.stdout.write(
                f"{question}: readers {result['n_readers']}, "
                f"reader-vs-rest mean {block['agreement']['reader_vs_rest'].get('mean')}"
            )
            ranked = sorted(block["metrics"].items(), key=lambda kv: -abs(kv[1]["spearman"] or 0))
            for name, row in ranked:
                self.stdout.write(
                    f"  {name:<26} spearman {row['spearman']}  95% CI {row['spearman_ci']}  n {row['n']}"
                )

    @staticmethod
    def read(path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path)
        except FileNotFoundError:
            raise AnalysisInputError(f"{path}: no such file") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise AnalysisInputError(f"{path}: not a readable CSV ({error})") from None

    @staticmethod
    def dumps(result: dict) -> str:
        return jsonlib.dumps(result)
