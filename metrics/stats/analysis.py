"""The statistics engine behind `manage.py analyze` and the dashboard (CONTRACTS.md section 3).

Takes long-format scores (reader, reconstruction, question, score) and metrics
(reconstruction, metric, value); returns, per question, each metric's correlation with the
mean reader score (Spearman with a bootstrap CI, Kendall tau-b, Pearson, per-reader Spearman)
and the readers' agreement (ICC(2,1), ICC(2,k), Krippendorff's ordinal alpha, reader-vs-rest).

With `extended=True` it adds what the dashboard shows beyond the contract: paired bootstrap
comparisons of metrics with each other and with the inter-reader baseline, results per method
and per acceleration, a sample-size hint, and the reason behind every null.

Bootstrap: one set of B resamples of the question's reconstructions, seeded by `seed` and the
reconstruction names (so row order and reader names do not matter), is shared by every metric,
the reader-vs-rest baseline and every subgroup of that question. Shared resamples are what make
the comparisons paired. A metric missing on some reconstructions is correlated, in each
resample, over the drawn reconstructions it has.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd

from metrics.stats.agreement import (
    agreement_reasons,
    icc2,
    krippendorff_alpha,
    reader_and_rest,
    reader_vs_rest,
)
from metrics.stats.bootstrap import (
    RankedResamples,
    counts_from_indices,
    percentile_interval,
    resample_indices,
    spearman_between,
    two_sided_p,
)
from metrics.stats.correlation import (
    kendall,
    pearson,
    spearman,
    spearman_columns,
    why_uncomputable,
)

SCORE_COLUMNS = ("reader", "reconstruction", "question", "score")
METRIC_COLUMNS = ("reconstruction", "metric", "value")
GROUP_COLUMNS = ("method", "acceleration")
TARGET_CI_WIDTH = 0.1


class AnalysisInputError(ValueError):
    """Scores or metrics that cannot be analysed (the message says why)."""


def _check(frame: pd.DataFrame, columns: tuple[str, ...], name: str, numeric: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisInputError(
            f"{name}: missing column(s) {', '.join(missing)}; need {','.join(columns)}"
        )
    frame = frame[list(columns)].copy()
    for column in columns:
        if column != numeric:
            frame[column] = frame[column].astype(str)
    values = pd.to_numeric(frame[numeric], errors="coerce")
    bad = frame[numeric][values.isna() & frame[numeric].notna()]
    if len(bad):
        raise AnalysisInputError(
            f"{name}: non-numeric {numeric} {bad.iloc[0]!r} (row {bad.index[0] + 2})"
        )
    frame[numeric] = values.astype(float)
    return frame.dropna(subset=[numeric])


def resample_rng(units, seed: int) -> np.random.Generator:
    """The generator of a question's resamples: seeded by `seed` and the sorted reconstruction
    names, so that row order, reader names and other questions do not change them."""
    digest = hashlib.sha256(
        "\0".join(sorted(units.tolist() if hasattr(units, "tolist") else units)).encode()
    ).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _resample_counts(units: pd.Index, resamples: int, seed: int) -> np.ndarray:
    """(n, B) resample counts over `units` (sorted), from `resample_rng`."""
    indices = resample_indices(len(units), resamples, resample_rng(units, seed))
    return counts_from_indices(indices, len(units))


class _SharedResamples:
    """Resample counts per set of reconstructions, and the metric ranks drawn on them."""

    def __init__(self, resamples: int, seed: int):
        self.resamples, self.seed = resamples, seed
        self._by_units: dict[bytes, tuple[np.ndarray, dict]] = {}

    def for_units(self, units: pd.Index) -> tuple[np.ndarray, dict]:
        key = hashlib.sha256("\0".join(units.tolist()).encode()).digest()
        if key not in self._by_units:
            self._by_units[key] = (_resample_counts(units, self.resamples, self.seed), {})
        return self._by_units[key]


class _Question:
    """One question's data on a common index of reconstructions, and its bootstrap."""

    def __init__(self, rows: pd.DataFrame, metric_table: pd.DataFrame, shared: _SharedResamples):
        wide = (
            rows.pivot_table(
                index="reconstruction", columns="reader", values="score", aggfunc="mean"
            )
            .sort_index(axis=0)
            .sort_index(axis=1)
        )
        self.wide = wide
        self.readers = [str(r) for r in wide.columns]
        self.mean_score = wide.mean(axis=1).to_numpy()
        self.units = wide.index
        self.metrics = metric_table.reindex(self.units)  # NaN where a metric is missing
        self.counts, self._ranked = shared.for_units(self.units)
        self._scores_ranked: dict = {}

    def ranked(self, key, values: np.ndarray, rows: np.ndarray, cache=True) -> RankedResamples:
        """Ranks in every resample, cached: a metric's are shared by the questions that have
        the same reconstructions, the mean score's live as long as this question. Subgroups
        are not cached: each is used once, and they would hold memory."""
        if not cache:
            return RankedResamples(values[rows], rows, self.counts)
        cache = self._scores_ranked if key == "mean score" else self._ranked
        cache_key = (key, rows.tobytes())
        if cache_key not in cache:
            cache[cache_key] = RankedResamples(values[rows], rows, self.counts)
        return cache[cache_key]

    def correlate(
        self, name: str, rows: np.ndarray, subgroup: bool = False
    ) -> tuple[dict, np.ndarray | None]:
        """Point estimates for metric `name` over `rows`, and its resampled rho (or None)."""
        x, y = self.metrics[name].to_numpy()[rows], self.mean_score[rows]
        reason = why_uncomputable(x, y)
        block = {
            "n": int(len(rows)),
            "spearman": spearman(x, y),
            "spearman_ci": None,
        }
        if reason:
            return {**block, "reason": reason}, None
        rho = spearman_between(
            self.ranked(("metric", name), self.metrics[name].to_numpy(), rows, not subgroup),
            self.ranked("mean score", self.mean_score, rows, not subgroup),
        )
        ci = percentile_interval(rho)
        block["spearman_ci"] = list(ci) if ci else None
        return block, rho

    def metric_rows(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.metrics[name].notna().to_numpy())

    def baseline(self) -> tuple[dict, np.ndarray | None]:
        """Reader-vs-rest point values and the resampled mean over readers."""
        matrix = self.wide.to_numpy(dtype=float)
        point = reader_vs_rest(matrix, self.readers)
        resampled = []
        for index, reader in enumerate(self.readers):
            if point[reader] is None:
                continue
            rows, own, rest = reader_and_rest(matrix, index)
            resampled.append(
                spearman_between(
                    RankedResamples(own, rows, self.counts),
                    RankedResamples(rest, rows, self.counts),
                )
            )
        if not resampled:
            return point, None
        with warnings.catch_warnings():  # a resample where no reader could be ranked: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            return point, np.nanmean(np.vstack(resampled), axis=0)


def _comparison(difference: float, resampled: np.ndarray) -> dict:
    ci = percentile_interval(resampled)
    return {
        "difference": float(difference),
        "ci": list(ci) if ci else None,
        "p": two_sided_p(resampled),
    }


def _sample_size_hint(metrics: dict) -> dict | None:
    """How many more reconstructions would bring the widest Spearman CI under 0.1, assuming
    the width shrinks as 1/sqrt(n) (a planning figure, not a power analysis)."""
    widths = {
        name: (block["spearman_ci"][1] - block["spearman_ci"][0], block["n"])
        for name, block in metrics.items()
        if block["spearman_ci"]
    }
    if not widths:
        return None
    widest = max(widths, key=lambda name: widths[name][0])
    width, n = widths[widest]
    needed = math.ceil(n * (width / TARGET_CI_WIDTH) ** 2) if width > TARGET_CI_WIDTH else n
    return {
        "widest_metric": widest,
        "widest_ci_width": float(width),
        "target_ci_width": TARGET_CI_WIDTH,
        "n": int(n),
        "additional_reconstructions": int(max(0, needed - n)),
    }


def analyze(
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    groups: pd.DataFrame | None = None,
    extended: bool = False,
) -> dict:
    """The contract's JSON object for `scores` against `metrics`.

    `groups` (reconstruction, method, acceleration), when given with `extended`, adds results
    per method and per acceleration.
    """
    scores = _check(scores, SCORE_COLUMNS, "scores", "score")
    metrics = _check(metrics, METRIC_COLUMNS, "metrics", "value")
    if not set(scores["reconstruction"]) & set(metrics["reconstruction"]):
        raise AnalysisInputError("no reconstruction appears in both the scores and the metrics")
    if bootstrap < 1:
        raise AnalysisInputError("bootstrap must be at least 1 resample")
    if groups is not None:
        missing = [c for c in ("reconstruction", *GROUP_COLUMNS) if c not in groups.columns]
        if missing:
            raise AnalysisInputError(f"groups: missing column(s) {', '.join(missing)}")
        groups = (
            groups.astype(dict.fromkeys(("reconstruction", *GROUP_COLUMNS), str))
            .drop_duplicates("reconstruction")
            .set_index("reconstruction")
        )
    metric_table = metrics.pivot_table(
        index="reconstruction", columns="metric", values="value", aggfunc="mean"
    )
    metric_names = sorted(metric_table.columns)
    shared = _SharedResamples(bootstrap, seed)
    result = {
        "n_readers": int(scores["reader"].nunique()),
        "n_reconstructions": int(scores["reconstruction"].nunique()),
        "questions": {},
    }
    if extended:
        result["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 0.95}
    for question, rows in scores.groupby("question"):
        data = _Question(rows, metric_table, shared)
        per_metric, resampled = {}, {}
        per_reader = _per_reader(data, metric_names)
        for name in metric_names:
            metric_rows = data.metric_rows(name)
            block, rho = data.correlate(name, metric_rows)
            x, y = data.metrics[name].to_numpy()[metric_rows], data.mean_score[metric_rows]
            entry = {
                "n": block["n"],
                "spearman": block["spearman"],
                "spearman_ci": block["spearman_ci"],
                "kendall": kendall(x, y),
                "pearson": pearson(x, y),
                "per_reader": per_reader[name],
            }
            if extended and "reason" in block:
                entry["reason"] = block["reason"]
            per_metric[name] = entry
            if rho is not None:
                resampled[name] = rho
        matrix = data.wide.to_numpy(dtype=float)
        if len(data.readers) >= 2:
            icc21, icc2k = icc2(matrix)
            point_baseline, baseline = data.baseline()
            agreement = {
                "icc2_1": icc21,
                "icc2_k": icc2k,
                "krippendorff_alpha": krippendorff_alpha(matrix),
                "reader_vs_rest": point_baseline,
            }
        else:
            baseline = None
            agreement = {
                "icc2_1": None,
                "icc2_k": None,
                "krippendorff_alpha": None,
                "reader_vs_rest": {},
            }
        block = {"metrics": per_metric, "agreement": agreement}
        if extended:
            block.update(
                _extended(data, per_metric, resampled, agreement, baseline, groups, metric_names)
            )
        result["questions"][str(question)] = block
    return result


def _per_reader(data: _Question, metric_names: list[str]) -> dict[str, dict[str, float | None]]:
    """Spearman of each metric with each reader's own scores (all metrics ranked at once)."""
    table = {name: {} for name in metric_names}
    values = data.metrics[metric_names].to_numpy()
    for index, reader in enumerate(data.readers):
        own = data.wide.iloc[:, index].to_numpy()
        scored = ~np.isnan(own)
        for name, rho in zip(
            metric_names, spearman_columns(values[scored], own[scored]), strict=True
        ):
            table[name][reader] = rho
    return table


def _extended(data, per_metric, resampled, agreement, baseline, groups, metric_names) -> dict:
    signs = {name: math.copysign(1, per_metric[name]["spearman"]) for name in resampled}
    comparisons = [
        {
            "a": a,
            "b": b,
            **_comparison(
                abs(per_metric[a]["spearman"]) - abs(per_metric[b]["spearman"]),
                signs[a] * resampled[a] - signs[b] * resampled[b],
            ),
        }
        for a, b in combinations(sorted(resampled), 2)
    ]
    point_baseline = (
        agreement["reader_vs_rest"].get("mean") if agreement["reader_vs_rest"] else None
    )
    versus_readers = {}
    if baseline is not None and point_baseline is not None:
        versus_readers = {
            name: _comparison(
                abs(per_metric[name]["spearman"]) - point_baseline,
                signs[name] * resampled[name] - baseline,
            )
            for name in resampled
        }
    baseline_ci = percentile_interval(baseline) if baseline is not None else None
    extra = {
        "n_scored": int(len(data.units)),
        "readers": data.readers,
        "agreement_reasons": (
            agreement_reasons(data.wide.to_numpy(dtype=float))
            if len(data.readers) >= 2
            else dict.fromkeys(
                ("icc2_1", "icc2_k", "krippendorff_alpha"), "needs at least two readers"
            )
        ),
        "baseline": {
            "mean": point_baseline,
            "ci": list(baseline_ci) if baseline_ci else None,
            "reason": None if point_baseline is not None else "fewer than two readers overlap",
        },
        "comparisons": comparisons,
        "versus_readers": versus_readers,
        "sample_size": _sample_size_hint(per_metric),
        "by_method": {},
        "by_acceleration": {},
    }
    if groups is not None:
        aligned = groups.reindex(data.units)
        for column in GROUP_COLUMNS:
            labels = aligned[column].astype("string").fillna("unknown").to_numpy()
            for label in sorted(set(labels)):
                in_group = labels == label
                extra[f"by_{column}"][str(label)] = {
                    name: data.correlate(
                        name,
                        np.intersect1d(data.metric_rows(name), np.flatnonzero(in_group)),
                        subgroup=True,
                    )[0]
                    for name in metric_names
                }
    return extra
