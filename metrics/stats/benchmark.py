"""`python -m metrics.stats.benchmark` (`make bench-analysis`): the analysis engine's speed.

In one run, on one simulated study (default 10 readers x 2,000 reconstructions x 8 metrics x
4 questions, 1,000 bootstrap resamples):

* the vectorised engine (`metrics.stats.analysis.analyze`, extended: CIs, paired comparisons of
  all metric pairs, each metric against the inter-reader baseline);
* the same bootstraps done the plain way, one `scipy.stats.spearmanr` call per resample, on
  the very same resamples, and the largest difference between the two engines' intervals;
* the vectorised engine again with per-method and per-acceleration results added;
* peak memory (Python allocations, NumPy's included, traced by tracemalloc).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd
from scipy import stats

from metrics.stats.agreement import icc2, krippendorff_alpha, reader_vs_rest
from metrics.stats.analysis import analyze, resample_rng
from metrics.stats.bootstrap import percentile_interval, resample_indices

METHODS = ("zero-filled", "cs-wavelet", "cs-tv", "unet")
ACCELERATIONS = (4, 8)


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
        }
    )
    return pd.concat(score_frames), pd.concat(metric_frames), groups


def polarities(metrics: int) -> dict[str, int]:
    """The simulated metrics' directions: even ones rise with quality, odd ones fall."""
    return {f"metric{metric}": 1 if metric % 2 == 0 else -1 for metric in range(metrics)}


def plain_analysis(scores: pd.DataFrame, metrics: pd.DataFrame, resamples: int, seed: int):
    """The same statistics with one scipy call per resample, on the same resamples."""
    table = metrics.pivot_table(index="reconstruction", columns="metric", values="value")
    result = {}
    for question, rows in scores.groupby("question"):
        wide = rows.pivot_table(index="reconstruction", columns="reader", values="score")
        wide = wide.sort_index(axis=0).sort_index(axis=1)
        mean = wide.mean(axis=1).to_numpy()
        indices = resample_indices(len(wide), resamples, resample_rng(wide.index, seed))
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
        result[question] = {
            "metrics": block,
            "icc": icc2(matrix),
            "alpha": krippendorff_alpha(matrix),
            "reader_vs_rest": reader_vs_rest(matrix, list(wide.columns)),
            "comparisons": comparisons,
            "versus_readers": versus,
        }
    return result


def measure(function, *args, traced: bool = True, repeat: int = 3, **kwargs):
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


def largest_ci_difference(fast: dict, plain: dict) -> float:
    worst = 0.0
    for question, block in plain.items():
        for name, row in block["metrics"].items():
            got = fast["questions"][question]["metrics"][name]["spearman_ci"]
            worst = max(worst, *np.abs(np.subtract(got, row["spearman_ci"])))
        for name, interval in block["versus_readers"].items():
            got = fast["questions"][question]["versus_readers"][name]["ci"]
            worst = max(worst, *np.abs(np.subtract(got, interval)))
    return float(worst)


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
    }
    analyze(scores, metrics, **options)  # warm-up
    fast, fast_s, fast_mib = measure(analyze, scores, metrics, **options)
    print(f"vectorised engine:          {fast_s:8.3f} s   peak {fast_mib:7.1f} MiB")
    _, grouped_s, grouped_mib = measure(analyze, scores, metrics, groups=groups, **options)
    print(
        f"  + per method/acceleration: {grouped_s:8.3f} s   peak {grouped_mib:7.1f} MiB "
        f"({len(METHODS)} methods, {len(ACCELERATIONS)} accelerations)"
    )
    plain, plain_s, _ = measure(
        plain_analysis, scores, metrics, args.bootstrap, args.seed, traced=False, repeat=1
    )
    print(f"plain per-resample scipy:   {plain_s:8.3f} s")
    print(f"speed-up: {plain_s / fast_s:.1f}x (target: at least 20x, under 1 s, under 1 GiB)")
    print(
        f"largest difference between the two engines' 95% intervals: "
        f"{largest_ci_difference(fast, plain):.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
