"""`python -m metrics.bench.preferences` (`make bench-preferences`): the ranking and
forced-choice analysis (metrics.stats.preference.preference_analysis) at study scale.

In one run, on one simulated study (default 10 readers x 2,000 reconstructions in cases of 6,
8 metrics, 1,000 case-bootstrap resamples): every reader ranks every case whole and chooses
between every pair of it (a rank question and a forced-choice question), from a latent quality
through a Bradley-Terry model with a reader bias. Timed: the whole analysis of both questions
(concordance with CIs per metric and reader, the inter-reader baseline, Bradley-Terry scales
with intervals, their Spearman with every metric, Kendall's W), against a plain implementation
of the concordance and its case-bootstrap interval that loops over the pairs of each resample
with pandas, on the very same resamples; the largest difference between the two. Then the
reliability figures of the same study (metrics.stats.reliability): intra-reader agreement from
a tenth of the items read twice, inter-reader kappas and drift, against scikit-learn.
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from metrics.stats.bootstrap import cluster_counts, percentile_interval
from metrics.stats.preference import pairs_from_ranks, preference_analysis

PER_CASE = 6


def simulated_study(
    readers: int, reconstructions: int, metrics: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """(rankings in the export's long format, metrics long, polarities)."""
    rng = np.random.default_rng(seed)
    cases = reconstructions // PER_CASE
    quality = rng.normal(size=(cases, PER_CASE))
    ids = np.array([[f"c{c:05d}-{k}" for k in range(PER_CASE)] for c in range(cases)])
    rows = []
    for reader in range(readers):
        noise = rng.gumbel(size=(cases, PER_CASE))  # ranks by Plackett-Luce: BT-consistent
        perceived = quality + 0.2 * rng.normal() + noise
        ranks = (-perceived).argsort(axis=1).argsort(axis=1) + 1
        for c in range(cases):
            for k in range(PER_CASE):
                rows.append(
                    (f"r{reader}", "rank", "rank", f"c{c:05d}", "1", ids[c, k], ranks[c, k])
                )
            for number, (a, b) in enumerate(combinations(range(PER_CASE), 2), start=1):
                p = 1 / (1 + np.exp(-(quality[c, a] - quality[c, b])))
                first = rng.random() < p
                for k, won in ((a, first), (b, not first)):
                    rows.append(
                        (
                            f"r{reader}",
                            "pick",
                            "choice",
                            f"c{c:05d}",
                            str(number),
                            ids[c, k],
                            1 if won else 2,
                        )
                    )
    rankings = pd.DataFrame(
        rows, columns=["reader", "question", "kind", "case", "set", "reconstruction", "rank"]
    )
    metric_rows = []
    for metric in range(metrics):
        sign = 1 if metric % 2 == 0 else -1
        value = sign * quality + rng.normal(scale=0.3 + 0.3 * metric, size=quality.shape)
        metric_rows.append(
            pd.DataFrame(
                {
                    "reconstruction": ids.ravel(),
                    "metric": f"metric{metric}",
                    "value": value.ravel(),
                }
            )
        )
    directions = {f"metric{m}": 1 if m % 2 == 0 else -1 for m in range(metrics)}
    return rankings, pd.concat(metric_rows), directions


def plain_concordance(
    pairs: pd.DataFrame, values: pd.Series, polarity: int, resamples: int, seed: int
) -> tuple[float, tuple[float, float] | None]:
    """The concordance and its case-bootstrap interval the plain way: each resample's cases
    gathered into a frame of their pairs, and the agreement counted on it."""
    better = pairs["better"].map(values).to_numpy()
    worse = pairs["worse"].map(values).to_numpy()
    difference = polarity * (better - worse)
    agreement = np.where(difference > 0, 1.0, np.where(difference == 0, 0.5, 0.0))
    frame = pairs.assign(agreement=agreement)
    codes, _ = pd.factorize(frame["case"])
    by_case = [frame[codes == c] for c in range(codes.max() + 1)]
    weights = cluster_counts(np.arange(len(by_case)), resamples, np.random.default_rng(seed))
    estimates = []
    for b in range(resamples):
        drawn = [by_case[c] for c in range(len(by_case)) for _ in range(int(weights[c, b]))]
        estimates.append(pd.concat(drawn)["agreement"].mean())
    return float(agreement.mean()), percentile_interval(np.array(estimates))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--reconstructions", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--plain-resamples",
        type=int,
        default=100,
        help="resamples of the plain loop (it is slow; default 100)",
    )
    args = parser.parse_args(argv)
    rankings, metrics, directions = simulated_study(
        args.readers, args.reconstructions, args.metrics
    )
    print(
        f"{args.readers} readers x {args.reconstructions} reconstructions (cases of {PER_CASE}), "
        f"{args.metrics} metrics, {args.bootstrap} resamples; {len(rankings):,} answer rows"
    )
    started = time.perf_counter()
    result = preference_analysis(rankings, metrics, directions, bootstrap=args.bootstrap, seed=0)
    engine_s = time.perf_counter() - started
    for question, block in result.items():
        print(f"  {question} ({block['kind']}): {block['n_pairs']:,} pairs")
    print(f"whole preference analysis (both questions): {engine_s:8.3f} s")

    # The same concordance and interval, plain, on the engine's own resamples for one metric.
    table = metrics.pivot_table(index="reconstruction", columns="metric", values="value")
    pairs = pairs_from_ranks(rankings[rankings["question"] == "rank"])
    name = "metric0"
    started = time.perf_counter()
    plain, plain_ci = plain_concordance(
        pairs, table[name], directions[name], args.plain_resamples, 0
    )
    plain_s = time.perf_counter() - started
    engine_small = preference_analysis(
        rankings[rankings["question"] == "rank"],
        metrics[metrics["metric"] == name],
        directions,
        bootstrap=args.plain_resamples,
        seed=0,
    )["rank"]["metrics"][name]
    assert plain_ci is not None  # a study of many cases always has an interval
    difference = max(
        abs(plain - engine_small["concordance"]),
        *(abs(a - b) for a, b in zip(plain_ci, engine_small["concordance_ci"], strict=True)),
    )
    print(
        f"plain pandas loop, 1 metric x {args.plain_resamples} resamples: {plain_s:8.3f} s "
        f"(~{plain_s * args.bootstrap / args.plain_resamples * args.metrics * 2:,.0f} s for the "
        f"{args.metrics} metrics x {args.bootstrap} resamples x 2 questions)"
    )
    print(f"largest difference, concordance and 95% interval: {difference:.2e}")
    reliability(args.readers, args.reconstructions, rankings)
    return 0


def reliability(readers: int, reconstructions: int, rankings: pd.DataFrame) -> None:
    """Repeat reads (a tenth of each reader's items) and drift on the same study: a Likert
    question scored by every reader with timestamps, and a tenth of the rankings repeated.
    Timed against scikit-learn's weighted kappa called per reader, which it must equal."""
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

    from metrics.stats.reliability import drift_analysis, repeat_agreement

    rng = np.random.default_rng(1)
    quality = rng.integers(1, 6, size=reconstructions)
    start = pd.Timestamp("2026-01-01T08:00:00Z")
    rows: list[tuple[Any, ...]] = []
    repeat_rows: list[tuple[Any, ...]] = []
    for reader in range(readers):
        order = rng.permutation(reconstructions)
        seconds = np.cumsum(rng.exponential(20, size=reconstructions))
        seconds += 3600 * 12 * (np.arange(reconstructions) // 200)  # sessions of 200 items
        scores = np.clip(quality[order] + rng.integers(-1, 2, size=reconstructions), 1, 5)
        for item, score, at in zip(order, scores, seconds, strict=True):
            rows.append(
                (f"r{reader}", f"x{item}", "overall", int(score), start + pd.Timedelta(seconds=at))
            )
        again = rng.choice(reconstructions, size=reconstructions // 10, replace=False)
        for k in again:
            first = int(scores[np.flatnonzero(order == k)[0]])
            repeat = int(np.clip(first + rng.integers(-1, 2), 1, 5))
            repeat_rows.append((f"r{reader}", "overall", "likert", "", "", f"x{k}", first, repeat))
    ranked = rankings[rankings["question"] == "rank"]
    cases = ranked["case"].unique()
    for name, mine in ranked.groupby("reader"):
        chosen = mine[mine["case"].isin(rng.choice(cases, size=len(cases) // 10, replace=False))]
        for case, number, shown, rank in chosen[
            ["case", "set", "reconstruction", "rank"]
        ].to_numpy():
            repeat_rows.append((name, "rank", "rank", case, number, shown, rank, rank))
    scores = pd.DataFrame(
        rows, columns=["reader", "reconstruction", "question", "score", "answered_at"]
    )
    repeats = pd.DataFrame(
        repeat_rows,
        columns=["reader", "question", "kind", "case", "set", "reconstruction", "first", "repeat"],
    )
    started = time.perf_counter()
    agreement = repeat_agreement(repeats, scores)
    drift = drift_analysis(scores)
    engine_s = time.perf_counter() - started
    likert = repeats[repeats["kind"] == "likert"]
    started = time.perf_counter()
    expected = {
        reader: cohen_kappa_score(
            mine["first"], mine["repeat"], weights="quadratic", labels=[1, 2, 3, 4, 5]
        )
        for reader, mine in likert.groupby("reader")
    }
    wide = scores.pivot_table(index="reconstruction", columns="reader", values="score")
    for a, b in combinations(wide.columns, 2):
        cohen_kappa_score(wide[a], wide[b], weights="quadratic", labels=[1, 2, 3, 4, 5])
    sklearn_s = time.perf_counter() - started
    difference = max(
        abs(agreement["overall"]["per_reader"][r]["value"] - k) for r, k in expected.items()
    )
    flagged = sum(
        result.get("flagged", False)
        for axis in drift["overall"].values()
        for result in axis["per_reader"].values()
    )
    print(
        f"repeat reads ({len(repeats):,} rows: a tenth of {readers} x {reconstructions} Likert "
        f"scores and of the rankings) and drift over order and session time: {engine_s:8.3f} s"
    )
    print(
        f"scikit-learn's weighted kappa, intra- and inter-reader kappas alone: {sklearn_s:8.3f} s;"
        f" largest difference {difference:.1e}; drift flags on steady readers: {flagged}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
