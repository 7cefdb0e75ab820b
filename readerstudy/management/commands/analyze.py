"""`manage.py analyze [--scores SCORES.csv] [--rankings RANKINGS.csv] [--repeats REPEATS.csv]
--metrics METRICS.csv [--bootstrap B] [--seed S] [--polarity NAME=+1|-1]... --json` (docs/interfaces.md section 5)."""

import json as jsonlib
import sys
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand

from metrics.polarity import parse_polarity, registry_polarity
from metrics.stats.analysis import AnalysisInputError, analyze, ranked_metrics
from metrics.stats.preference import preference_analysis
from metrics.stats.reliability import check_repeats, drift_analysis, repeat_agreement


class Command(BaseCommand):
    help = "Correlate metrics with reader scores and measure inter-reader agreement (docs/interfaces.md section 5)."

    def add_arguments(self, parser):
        parser.add_argument("--scores", type=Path, help="Likert scores (the scores export)")
        parser.add_argument(
            "--rankings",
            type=Path,
            help="rank and forced-choice answers (the rankings export): adds `preferences`",
        )
        parser.add_argument(
            "--repeats",
            type=Path,
            help="repeat reads (the repeats export): adds `repeat_reads`, intra-reader agreement",
        )
        parser.add_argument("--metrics", type=Path, required=True)
        parser.add_argument(
            "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--polarity",
            action="append",
            default=[],
            metavar="NAME=+1|-1",
            help="direction of a metric the registry does not know: +1 higher is better, "
            "-1 lower is better (repeatable)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--full",
            action="store_true",
            help=(
                "add the dashboard's statistics: paired comparisons, the inter-reader baseline, "
                "per method/acceleration (from those columns of SCORES.csv) and a sample-size hint"
            ),
        )

    def handle(self, *args, scores, metrics: Path, bootstrap: int, seed: int, **options):
        try:
            if bootstrap < 1:
                raise AnalysisInputError("--bootstrap must be at least 1")
            if scores is None and options["rankings"] is None and options["repeats"] is None:
                raise AnalysisInputError("give --scores, --rankings or --repeats")
            polarities = dict(self.polarity(text) for text in options["polarity"])
            metric_frame = self.read(metrics)
            preferences = None
            if options["rankings"] is not None:
                preferences = self.preferences(
                    self.read(options["rankings"]), metric_frame, polarities, bootstrap, seed
                )
            result: dict
            if scores is None:
                result = {} if preferences is None else {"preferences": preferences}
            else:
                result = self.likert(
                    self.read(scores), metric_frame, polarities, bootstrap, seed, options
                )
                if preferences is not None:
                    result["preferences"] = preferences
                if options["full"]:
                    result["drift"] = self.drift(self.read(scores))
            if options["repeats"] is not None:
                result["repeat_reads"] = self.repeat_reads(
                    self.read(options["repeats"]), None if scores is None else self.read(scores)
                )
        except AnalysisInputError as error:
            self.stderr.write(f"error: {error}")
            sys.exit(2)
        if options["json"]:
            self.stdout.write(self.dumps(result))
            return
        self.print_summary(result)

    @staticmethod
    def preferences(rankings, metric_frame, polarities, bootstrap: int, seed: int) -> dict:
        if not {"reconstruction", "metric", "value"} <= set(metric_frame.columns):
            raise AnalysisInputError("metrics: needs the columns reconstruction, metric, value")
        metric_frame = metric_frame.assign(
            value=pd.to_numeric(metric_frame["value"], errors="coerce")
        ).dropna(subset=["value"])
        metric_frame = metric_frame.assign(
            reconstruction=metric_frame["reconstruction"].astype(str)
        )
        names = metric_frame["metric"].astype(str).unique()
        directions = {name: polarities.get(name, registry_polarity(name)) for name in names}
        try:
            result = preference_analysis(
                rankings, metric_frame, directions, bootstrap=bootstrap, seed=seed
            )
        except ValueError as error:
            raise AnalysisInputError(str(error)) from None
        if not result:
            raise AnalysisInputError("rankings: no answers in the file")
        return result

    @staticmethod
    def repeat_reads(repeats: pd.DataFrame, scores: pd.DataFrame | None) -> dict:
        try:
            checked = check_repeats(repeats)
        except ValueError as error:
            raise AnalysisInputError(str(error)) from None
        if checked.empty:
            raise AnalysisInputError("repeats: no repeat reads in the file")
        return repeat_agreement(checked, scores)

    @staticmethod
    def drift(scores: pd.DataFrame) -> dict | None:
        """Reader drift from the scores export's `scored_at` (null without that column)."""
        if "scored_at" not in scores:
            return None
        try:
            return drift_analysis(scores.rename(columns={"scored_at": "answered_at"}))
        except (ValueError, TypeError) as error:
            raise AnalysisInputError(f"scores: scored_at is not a timestamp ({error})") from None

    @staticmethod
    def likert(score_frame, metric_frame, polarities, bootstrap, seed, options) -> dict:
        groups = None
        if options["full"] and {"method", "acceleration"} <= set(score_frame.columns):
            groups = score_frame[["reconstruction", "method", "acceleration"]]
        # The export's `case` column: resample whole cases, not reconstructions.
        cases = score_frame[["reconstruction", "case"]] if "case" in score_frame else None
        return analyze(
            score_frame,
            metric_frame,
            bootstrap=bootstrap,
            seed=seed,
            groups=groups,
            extended=options["full"],
            cases=cases,
            polarities=polarities,
        )

    def print_summary(self, result: dict) -> None:
        for question, block in (result.get("preferences") or {}).items():
            self.stdout.write(
                f"{question} ({block['kind']}): readers {block['n_readers']}, pairs "
                f"{block['n_pairs']}, reader-vs-majority mean {block['inter_reader'].get('mean')}"
            )
            for name in block["ranking"]:
                row = block["metrics"][name]
                self.stdout.write(
                    f"  {name:<26} concordance {row['concordance']:.3f}  95% CI "
                    f"{row['concordance_ci']}  Bradley-Terry spearman {row['bt_spearman']}"
                )
        if "questions" not in result:
            return
        self.stdout.write(f"bootstrap resamples {result['resampling']}")
        for question, block in result["questions"].items():
            self.stdout.write(
                f"{question}: readers {result['n_readers']}, "
                f"reader-vs-rest mean {block['agreement']['reader_vs_rest'].get('mean')}"
            )
            for name, row in ranked_metrics(block["metrics"]):
                self.stdout.write(
                    f"  {name:<26} aligned spearman {row['aligned_spearman']}  "
                    f"95% CI {row['aligned_spearman_ci']}  (spearman {row['spearman']}, "
                    f"polarity {row['polarity']})  n {row['n']}"
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
    def polarity(text: str) -> tuple[str, int]:
        try:
            return parse_polarity(text)
        except ValueError as error:
            raise AnalysisInputError(str(error)) from None

    @staticmethod
    def dumps(result: dict) -> str:
        # allow_nan=False: a NaN would be invalid JSON; the engine gives null instead.
        return jsonlib.dumps(result, allow_nan=False)
