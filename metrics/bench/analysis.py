"""`python -m metrics.bench.analysis` (`make bench-analysis`): the analysis engine's speed.

In one run, on one simulated study (default 10 readers x 2,000 reconstructions in cases of 6
x 8 metrics x 4 questions, 1,000 bootstrap resamples of whole cases):

* the vectorised engine (`metrics.stats.analysis.analyze`, extended: CIs, paired comparisons of
  all metric pairs, each metric against the inter-reader baseline), in this process, and again
  with per-method and per-acceleration results added; peak memory (Python allocations, NumPy's
  included, traced by tracemalloc);
* end to end, as a researcher runs it: the study written as the export's CSV files, then
  `python manage.py analyze --full --json` in a fresh process against a plain script in a fresh
  process that reads the same files with pandas and calls `scipy.stats.spearmanr` once per
  resample, on the very same resamples; the largest difference between their intervals.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from scipy import stats

from metrics.stats.agreement import icc2, krippendorff_alpha, reader_vs_rest
from metrics.stats.analysis import analyze, resample_rng
from metrics.stats.bootstrap import percentile_interval, resample_indices

T = TypeVar("T")

METHODS = ("zero-filled", "cs-wavelet", "cs-tv", "unet")
ACCELERATIONS = (4, 8)
RECONSTRUCTIONS_PER_CASE = 6
REPOSITORY = Path(__file__).resolve().parents[2]


def simulated_study(
    readers: int, reconstructions: int, metrics: int, questions: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Readers score a latent quality on a 1-5 scale with their own bias and noise; metrics
    track it with decreasing fidelity, half of them as distances (negative correlation)."""
    rng = np.random.default_rng(seed)
    names = np.array([f"rec{i:05d}" for i in range(reconstructions)])
    quality = rng.normal(size=reconstructions)
    score_frames = []
    for question in range(questions):
        for reader in range(readers):
            noise = rng.normal(scale=0.7, size=reconstructions)
            score = np.clip(np.rint(3 + quality + rng.normal(scale=0.3) + noise), 1, 5)
            score_frames.append(
                pd.DataFrame(
                    {
                        "reader": f"reader{reader}",
                        "reconstruction": names,
                        "question": f"q{question}",
                        "score": score,
                    }
                )
            )
    metric_frames = []
    for metric in range(metrics):
        sign = 1 if metric % 2 == 0 else -1
        value = sign * quality + rng.normal(scale=0.3 + 0.3 * metric, size=reconstructions)
        metric_frames.append(
            pd.DataFrame({"reconstruction": names, "metric": f"metric{metric}", "value": value})
        )
    groups = pd.DataFrame(
        {
            "reconstruction": names,
            "method": rng.choice(METHODS, size=reconstructions),
            "acceleration": rng.choice(ACCELERATIONS, size=reconstructions),
            "case": [f"case{i // RECONSTRUCTIONS_PER_CASE:05d}" for i in range(reconstructions)],
        }
    )
    return pd.concat(score_frames), pd.concat(metric_frames), groups


def polarities(metrics: int) -> dict[str, int]:
    """The simulated metrics' directions: even ones rise with quality, odd ones fall."""
    return {f"metric{metric}": 1 if metric % 2 == 0 else -1 for metric in range(metrics)}


def plain_resamples(
    units: pd.Index, cases: pd.Series | None, resamples: int, seed: int
) -> list[np.ndarray]:
    """The engine's resamples as index arrays: of the reconstructions, or of whole cases
    (every reconstruction of each drawn case), from the same generator and draws."""
    rng = resample_rng(units, seed)
    if cases is None:
        return list(resample_indices(len(units), resamples, rng))
    labels = pd.factorize(cases.reindex(units).astype(str), sort=True)[0]
    members = [np.flatnonzero(labels == label) for label in range(labels.max() + 1)]
    drawn = resample_indices(len(members), resamples, rng)
    return [np.concatenate([members[c] for c in row]) for row in drawn]


def plain_analysis(
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    resamples: int,
    seed: int,
    cases: pd.Series | None = None,
) -> dict[str, Any]:
    """The same statistics with one scipy call per resample, on the same resamples."""
    table = metrics.pivot_table(index="reconstruction", columns="metric", values="value")
    result: dict[str, Any] = {}
    for question, rows in scores.groupby("question"):
        wide = rows.pivot_table(index="reconstruction", columns="reader", values="score")
        wide = wide.sort_index(axis=0).sort_index(axis=1)
        mean = wide.mean(axis=1).to_numpy()
        indices = plain_resamples(wide.index, cases, resamples, seed)
        values = table.reindex(wide.index)
        rhos, block = {}, {}
        for name in values.columns:
            x = values[name].to_numpy()
            rhos[name] = np.array([stats.spearmanr(x[i], mean[i]).statistic for i in indices])
            block[name] = {
                "spearman": stats.spearmanr(x, mean).statistic,
                "spearman_ci": percentile_interval(rhos[name]),
                "kendall": stats.kendalltau(x, mean).statistic,
                "pearson": stats.pearsonr(x, mean).statistic,
                "per_reader": {
                    reader: stats.spearmanr(x, wide[reader].to_numpy()).statistic
                    for reader in wide.columns
                },
            }
        matrix = wide.to_numpy(float)
        per_reader_rhos = []
        for index in range(matrix.shape[1]):
            own, rest = matrix[:, index], np.delete(matrix, index, axis=1).mean(axis=1)
            per_reader_rhos.append([stats.spearmanr(own[i], rest[i]).statistic for i in indices])
        baseline = np.mean(per_reader_rhos, axis=0)
        signs = polarities(len(rhos))
        comparisons = [
            percentile_interval(signs[a] * rhos[a] - signs[b] * rhos[b])
            for a in rhos
            for b in rhos
            if a < b
        ]
        versus = {name: percentile_interval(signs[name] * rhos[name] - baseline) for name in rhos}
        result[str(question)] = {
            "metrics": block,
            "icc": icc2(matrix),
            "alpha": krippendorff_alpha(matrix),
            "reader_vs_rest": reader_vs_rest(matrix, list(wide.columns)),
            "comparisons": comparisons,
            "versus_readers": versus,
        }
    return result


def measure(
    function: Callable[..., T], *args: Any, traced: bool = True, repeat: int = 3, **kwargs: Any
) -> tuple[T, float, float | None]:
    """(result, best seconds of `repeat` calls, peak MiB): timed untraced, then (if `traced`) run again
    under tracemalloc, which slows Python down, for the peak of Python and NumPy allocations."""
    seconds = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        seconds = min(seconds, time.perf_counter() - started)
    peak = None
    if traced:
        tracemalloc.start()
        function(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, seconds, peak


def plain_from_csv(scores_csv: str, metrics_csv: str, resamples: str, seed: str) -> None:
    """The plain script of the end-to-end comparison: read the export's files, analyse, print
    the intervals as JSON and the seconds spent analysing (after reading) on standard error."""
    scores, metrics = pd.read_csv(scores_csv), pd.read_csv(metrics_csv)
    started = time.perf_counter()
    cases = scores.drop_duplicates("reconstruction").set_index("reconstruction")["case"]
    result = plain_analysis(scores, metrics, int(resamples), int(seed), cases)
    print(f"{time.perf_counter() - started:.3f}", file=sys.stderr)
    intervals = {
        question: {
            "metrics": {n: r["spearman_ci"] for n, r in block["metrics"].items()},
            "versus_readers": block["versus_readers"],
        }
        for question, block in result.items()
    }
    print(json.dumps(intervals))


def end_to_end(
    args: argparse.Namespace, scores: pd.DataFrame, metrics: pd.DataFrame, groups: pd.DataFrame
) -> dict[str, Any]:
    """Seconds for `manage.py analyze` and for the plain script, each in a fresh process on
    the same CSV files, and the largest difference between their intervals."""
    with tempfile.TemporaryDirectory() as folder:
        scores_csv, metrics_csv = Path(folder) / "scores.csv", Path(folder) / "metrics.csv"
        scores.merge(groups, on="reconstruction").to_csv(scores_csv, index=False)
        metrics.to_csv(metrics_csv, index=False)
        polarity_options = [
            option
            for name, sign in polarities(args.metrics).items()
            for option in ("--polarity", f"{name}={sign:+d}")
        ]
        command = [
            sys.executable,
            "manage.py",
            "analyze",
            "--scores",
            str(scores_csv),
            "--metrics",
            str(metrics_csv),
            "--bootstrap",
            str(args.bootstrap),
            "--seed",
            str(args.seed),
            *polarity_options,
            "--full",
            "--json",
        ]
        # The command needs settings, not a database or a secret worth keeping.
        environment = {
            **os.environ,
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench"),
        }
        started = time.perf_counter()
        analysed = subprocess.run(
            command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, check=True
        )
        command_s = time.perf_counter() - started
        plain_code = (
            "import sys; from metrics.bench.analysis import plain_from_csv; "
            "plain_from_csv(*sys.argv[1:])"
        )
        started = time.perf_counter()
        plain = subprocess.run(
            [
                sys.executable,
                "-c",
                plain_code,
                str(scores_csv),
                str(metrics_csv),
                str(args.bootstrap),
                str(args.seed),
            ],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        )
        plain_s = time.perf_counter() - started
    fast = json.loads(analysed.stdout)
    intervals = json.loads(plain.stdout)
    worst = 0.0
    for question, block in intervals.items():
        ours = fast["questions"][question]
        for name, interval in block["metrics"].items():
            got = ours["metrics"][name]["spearman_ci"]
            worst = max(worst, *np.abs(np.subtract(got, interval)))
        for name, interval in block["versus_readers"].items():
            worst = max(worst, *np.abs(np.subtract(ours["versus_readers"][name]["ci"], interval)))
    return {
        "command_s": command_s,
        "plain_s": plain_s,
        "plain_compute_s": float(plain.stderr.strip().splitlines()[-1]),
        "resampling": fast["resampling"],
        "largest_ci_difference": float(worst),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--reconstructions", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scores, metrics, groups = simulated_study(
        args.readers, args.reconstructions, args.metrics, args.questions, args.seed
    )
    print(
        f"study: {args.readers} readers x {args.reconstructions} reconstructions x "
        f"{args.metrics} metrics x {args.questions} questions, {args.bootstrap} resamples "
        f"({len(scores)} scores)"
    )
    options = {
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "extended": True,
        "polarities": polarities(args.metrics),
        "cases": groups[["reconstruction", "case"]],
    }
    analyze(scores, metrics, **options)  # warm-up
    fast, fast_s, fast_mib = measure(analyze, scores, metrics, **options)
    print(f"vectorised engine:          {fast_s:8.3f} s   peak {fast_mib:7.1f} MiB")
    grouping = groups[["reconstruction", "method", "acceleration"]]
    _, grouped_s, grouped_mib = measure(analyze, scores, metrics, groups=grouping, **options)
    print(
        f"  + per method/acceleration: {grouped_s:8.3f} s   peak {grouped_mib:7.1f} MiB "
        f"({len(METHODS)} methods, {len(ACCELERATIONS)} accelerations)"
    )
    timing = end_to_end(args, scores, metrics, groups)
    print(
        f"resampling: {timing['resampling']}, cases of {RECONSTRUCTIONS_PER_CASE} reconstructions"
    )
    print("end to end, fresh processes, the export's CSV files:")
    print(f"  manage.py analyze --full --json: {timing['command_s']:8.3f} s")
    print(
        f"  plain per-resample scipy script:  {timing['plain_s']:8.3f} s "
        f"({timing['plain_compute_s']:.3f} s of it analysing)"
    )
    print(
        f"speed-up: command {timing['plain_s'] / timing['command_s']:.1f}x end to end "
        f"(target: at least 5x); engine {timing['plain_compute_s'] / fast_s:.1f}x "
        "the plain analysis in this run"
    )
    print(
        "largest difference between the two ways' 95% intervals: "
        f"{timing['largest_ci_difference']:.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
