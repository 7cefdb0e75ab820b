"""The statistics engine behind `manage.py analyze` and the dashboard (docs/interfaces.md section 5).

Takes long-format scores (reader, reconstruction, question, score) and metrics
(reconstruction, metric, value); returns, per question, each metric's correlation with the
mean reader score (Spearman with a bootstrap CI, Kendall tau-b, Pearson, per-reader Spearman)
and the readers' agreement (ICC(2,1), ICC(2,k), Krippendorff's ordinal alpha, reader-vs-rest).

With `extended=True` it adds what the dashboard shows beyond the contract: paired bootstrap
comparisons of metrics with each other and with the inter-reader baseline, results per method
and per acceleration, a sample-size hint, and the reason behind every null.

Direction: every metric has a polarity (+1 higher is better, -1 lower is better; the registry's,
`metrics.polarity`, unless the caller gives one). `aligned_spearman` = polarity x spearman says
how well a metric tracks the readers in its own direction; rankings and every comparison use
it, so a metric that runs against the readers is never credited as if it tracked them.

Bootstrap: one set of B resamples per question, seeded by `seed` and the reconstruction names
(so row order and reader names do not matter), shared by every metric, the reader-vs-rest
baseline and every subgroup of that question. Shared resamples are what make the comparisons
paired. Where the case of each reconstruction is known, whole cases are resampled: a case's
reconstructions share one reference and are not independent, and resampling them one by one
makes every interval too narrow (tests/metrics/test_coverage.py). A metric missing on some
reconstructions is correlated, in each resample, over the drawn reconstructions it has.
Comparisons between metrics, and of each metric with the readers, are Holm-adjusted within
their family (one question's k(k-1)/2 pairs; one question's k metrics against the readers).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from itertools import combinations

import numpy as np
import pandas as pd

from metrics.polarity import registry_polarity
from metrics.stats.agreement import (
    agreement_reasons,
    icc2,
    krippendorff_alpha,
    reader_and_rest,
    reader_vs_rest,
)
from metrics.stats.bootstrap import (
    RankedResamples,
    cluster_counts,
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


def _resample_counts(
    units: pd.Index, resamples: int, seed: int, clusters: np.ndarray | None = None
) -> np.ndarray:
    """(n, B) resample counts over `units` (sorted), from `resample_rng`: of the units
    themselves, or of whole clusters (integer labels, one per unit) where given."""
    rng = resample_rng(units, seed)
    if clusters is not None:
        return cluster_counts(clusters, resamples, rng)
    return counts_from_indices(resample_indices(len(units), resamples, rng), len(units))


class _SharedResamples:
    """Resample counts per set of reconstructions, and the metric ranks drawn on them."""

    def __init__(self, resamples: int, seed: int):
        self.resamples, self.seed = resamples, seed
        self._by_units: dict[bytes, tuple[np.ndarray, dict]] = {}

    def for_units(self, units: pd.Index, clusters: np.ndarray | None) -> tuple[np.ndarray, dict]:
        key = hashlib.sha256("\0".join(units.tolist()).encode())
        if clusters is not None:
            key.update(b"\1" + clusters.astype(np.int64).tobytes())
        digest = key.digest()
        if digest not in self._by_units:
            counts = _resample_counts(units, self.resamples, self.seed, clusters)
            self._by_units[digest] = (counts, {})
        return self._by_units[digest]


class _Question:
    """One question's data on a common index of reconstructions, and its bootstrap."""

    def __init__(
        self,
        rows: pd.DataFrame,
        metric_table: pd.DataFrame,
        shared: _SharedResamples,
        case_of: pd.Series | None = None,
    ):
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
        self.clusters = None
        if case_of is not None:
            # A reconstruction without a known case stands for itself.
            cases = case_of.reindex(self.units).fillna(pd.Series(self.units, index=self.units))
            self.clusters = pd.factorize(cases.astype(str), sort=True)[0]
        self.counts, self._ranked = shared.for_units(self.units, self.clusters)
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
    cases: pd.DataFrame | None = None,
    polarities: dict[str, int] | None = None,
) -> dict:
    """The contract's JSON object for `scores` against `metrics`.

    `groups` (reconstruction, method, acceleration), when given with `extended`, adds results
    per method and per acceleration. `cases` (reconstruction, case) makes the bootstrap
    resample whole cases. `polarities` gives or overrides a metric's direction (+1 or -1);
    other metrics take the registry's, and a metric known to neither has a null polarity.
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
    case_of = _case_of(cases)
    metric_table = metrics.pivot_table(
        index="reconstruction", columns="metric", values="value", aggfunc="mean"
    )
    metric_names = sorted(metric_table.columns)
    polarity = {
        name: (polarities or {}).get(name, registry_polarity(name)) for name in metric_names
    }
    shared = _SharedResamples(bootstrap, seed)
    result = {
        "n_readers": int(scores["reader"].nunique()),
        "n_reconstructions": int(scores["reconstruction"].nunique()),
        "resampling": "cases" if case_of is not None else "reconstructions",
        "questions": {},
    }
    if extended:
        result["bootstrap"] = {"resamples": bootstrap, "seed": seed, "level": 0.95}
    for question, rows in scores.groupby("question"):
        data = _Question(rows, metric_table, shared, case_of)
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
                **_aligned(block, polarity[name]),
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
            aligned_resampled = {
                name: polarity[name] * rho
                for name, rho in resampled.items()
                if polarity[name] is not None
            }
            block.update(
                _extended(
                    data, per_metric, aligned_resampled, agreement, baseline, groups, metric_names
                )
            )
        result["questions"][str(question)] = block
    return result


def ranked_metrics(metrics: dict) -> list[tuple[str, dict]]:
    """(name, block) best first by aligned Spearman; metrics without one come last."""
    return sorted(
        metrics.items(),
        key=lambda item: (
            item[1]["aligned_spearman"] is None,
            -(item[1]["aligned_spearman"] or 0),
        ),
    )


def _case_of(cases: pd.DataFrame | None) -> pd.Series | None:
    """reconstruction -> case, checked: one case per reconstruction."""
    if cases is None:
        return None
    missing = [c for c in ("reconstruction", "case") if c not in cases.columns]
    if missing:
        raise AnalysisInputError(f"cases: missing column(s) {', '.join(missing)}")
    pairs = cases[["reconstruction", "case"]].dropna().astype(str).drop_duplicates()
    clash = pairs[pairs["reconstruction"].duplicated(keep=False)]
    if len(clash):
        name = clash["reconstruction"].iloc[0]
        found = sorted(clash.loc[clash["reconstruction"] == name, "case"])
        raise AnalysisInputError(
            f"reconstruction {name!r} belongs to more than one case ({', '.join(found)})"
        )
    return pairs.set_index("reconstruction")["case"]


def _aligned(block: dict, polarity: int | None) -> dict:
    """polarity, aligned_spearman and its CI: the coefficient in the metric's own direction."""
    if polarity is None:
        return {
            "polarity": None,
            "aligned_spearman": None,
            "aligned_spearman_ci": None,
            "aligned_spearman_reason": (
                "unknown direction: give --polarity NAME=+1 (higher is better) or NAME=-1"
            ),
        }
    rho, ci = block["spearman"], block["spearman_ci"]
    return {
        "polarity": polarity,
        "aligned_spearman": None if rho is None else polarity * rho,
        "aligned_spearman_ci": None if ci is None else sorted(polarity * c for c in ci),
    }


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's (1979) step-down adjustment of one family of p-values: the i-th smallest of m
    times (m - i), running maximum, at most 1; None stays None and is not counted.

    Equal to statsmodels' `multipletests(method="holm")` (tested), which is not called here:
    its Holm branch runs gc.collect(), 0.14 s in a process holding Django and pandas, and an
    analysis adjusts eight families.
    """
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if present:
        raw = np.array([p_values[i] for i in present], dtype=float)
        order = np.argsort(raw, kind="stable")
        steps = raw[order] * (len(raw) - np.arange(len(raw)))
        corrected = np.empty_like(raw)
        corrected[order] = np.minimum(1.0, np.maximum.accumulate(steps))
        for index, value in zip(present, corrected.tolist(), strict=True):
            adjusted[index] = value
    return adjusted


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


def _extended(data, per_metric, aligned_resampled, agreement, baseline, groups, metric_names):
    """Comparisons on aligned coefficients: metrics of unknown direction take no part."""
    aligned = {name: per_metric[name]["aligned_spearman"] for name in aligned_resampled}
    comparisons = [
        {
            "a": a,
            "b": b,
            **_comparison(aligned[a] - aligned[b], aligned_resampled[a] - aligned_resampled[b]),
        }
        for a, b in combinations(sorted(aligned_resampled), 2)
    ]
    point_baseline = (
        agreement["reader_vs_rest"].get("mean") if agreement["reader_vs_rest"] else None
    )
    versus_readers = {}
    if baseline is not None and point_baseline is not None:
        versus_readers = {
            name: _comparison(aligned[name] - point_baseline, aligned_resampled[name] - baseline)
            for name in aligned_resampled
        }
    for family in (comparisons, list(versus_readers.values())):
        for entry, adjusted in zip(family, holm([e["p"] for e in family]), strict=True):
            entry["p_holm"] = adjusted
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
