"""One question's data on a common index of reconstructions, and the bootstrap it shares.

Every metric, the reader-vs-rest baseline and every subgroup of a question are correlated on
the same resamples, seeded by the run's seed and the reconstruction names: that is what makes
comparisons between them paired (metrics.stats.analysis says why whole cases are resampled).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np
import pandas as pd

from metrics.stats.agreement import reader_and_rest, reader_vs_rest
from metrics.stats.bootstrap import (
    ClusterCounts,
    Counts,
    RankedResamples,
    counts_from_indices,
    percentile_interval,
    point_spearman,
    resample_indices,
    spearman_between,
)
from metrics.stats.correlation import RankedColumns, why_uncomputable

# Ranks in every resample, by (variable, rows it covers).
RankCache = dict[tuple[object, bytes], RankedResamples]


def resample_rng(units: pd.Index | list[str], seed: int) -> np.random.Generator:
    """The generator of a question's resamples: seeded by `seed` and the sorted reconstruction
    names, so that row order, reader names and other questions do not change them."""
    digest = hashlib.sha256(
        "\0".join(sorted(units.tolist() if hasattr(units, "tolist") else units)).encode()
    ).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _resample_counts(
    units: pd.Index, resamples: int, seed: int, clusters: np.ndarray | None = None
) -> Counts:
    """(n, B) resample counts over `units` (sorted), from `resample_rng`: of the units
    themselves, or of whole clusters (integer labels, one per unit) where given."""
    rng = resample_rng(units, seed)
    if clusters is not None:
        return ClusterCounts.draw(clusters, resamples, rng)
    return counts_from_indices(resample_indices(len(units), resamples, rng), len(units))


class SharedResamples:
    """Resample counts per set of reconstructions, and the metric ranks drawn on them."""

    def __init__(self, resamples: int, seed: int):
        self.resamples, self.seed = resamples, seed
        self._by_units: dict[bytes, tuple[Counts, RankCache]] = {}

    def for_units(self, units: pd.Index, clusters: np.ndarray | None) -> tuple[Counts, RankCache]:
        key = hashlib.sha256("\0".join(units.tolist()).encode())
        if clusters is not None:
            key.update(b"\1" + clusters.astype(np.int64).tobytes())
        digest = key.digest()
        if digest not in self._by_units:
            counts = _resample_counts(units, self.resamples, self.seed, clusters)
            self._by_units[digest] = (counts, {})
        return self._by_units[digest]


class QuestionData:
    """One question's data on a common index of reconstructions, and its bootstrap."""

    def __init__(
        self,
        rows: pd.DataFrame,
        metric_table: pd.DataFrame,
        shared: SharedResamples,
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
        self.counts, self._metric_ranks = shared.for_units(self.units, self.clusters)
        self._score_ranks: RankCache = {}
        self._metric_rows: dict[str, np.ndarray] = {}

    def _ranked(
        self, store: RankCache, key: object, values: np.ndarray, rows: np.ndarray
    ) -> RankedResamples:
        """Ranks of `values[rows]` in every resample, kept in `store` under (key, rows)."""
        store_key = (key, rows.tobytes())
        if store_key not in store:
            store[store_key] = RankedResamples(values[rows], rows, self.counts)
        return store[store_key]

    def correlate(
        self,
        name: str,
        rows: np.ndarray,
        metric_ranks: RankCache | None = None,
        score_ranks: RankCache | None = None,
        score_key: object = None,
    ) -> tuple[dict[str, Any], np.ndarray | None]:
        """Point estimates for metric `name` over `rows`, and its resampled rho (or None).

        Ranks are cached: by default in this question's own stores (a metric's shared by the
        questions that have the same reconstructions, the mean score's for this question).
        A subgroup's are not kept here (each is used once): its caller lends `metric_ranks`
        (one metric's, across questions) and `score_ranks` (this question's under
        `score_key`) for as long as it needs them."""
        x, y = self.metrics[name].to_numpy()[rows], self.mean_score[rows]
        reason = why_uncomputable(x, y)
        block: dict[str, Any] = {"n": int(len(rows)), "spearman": None, "spearman_ci": None}
        if reason:
            return {**block, "reason": reason}, None
        metric_key: object
        if metric_ranks is None or score_ranks is None:
            metric_ranks, metric_key = self._metric_ranks, ("metric", name)
            score_ranks, score_key = self._score_ranks, "mean score"
        else:
            metric_key = id(self.counts)  # the lent store holds one metric, for every question
        metric = self._ranked(metric_ranks, metric_key, self.metrics[name].to_numpy(), rows)
        score = self._ranked(score_ranks, score_key, self.mean_score, rows)
        block["spearman"] = point_spearman(metric, score)
        rho = spearman_between(metric, score)
        ci = percentile_interval(rho)
        block["spearman_ci"] = list(ci) if ci else None
        return block, rho

    def metric_rows(self, name: str) -> np.ndarray:
        """The rows where metric `name` has a value."""
        if name not in self._metric_rows:
            self._metric_rows[name] = np.flatnonzero(self.metrics[name].notna().to_numpy())
        return self._metric_rows[name]

    def metric_rows_among(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Those of `rows` (sorted) where metric `name` has a value."""
        present = self.metric_rows(name)
        return rows if len(present) == len(self.units) else np.intersect1d(present, rows)

    def baseline(self) -> tuple[dict[str, Any], np.ndarray | None]:
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

    def per_reader(self, metric_names: list[str]) -> dict[str, dict[str, float | None]]:
        """Spearman of each metric with each reader's own scores (all metrics ranked at once)."""
        table: dict[str, dict[str, float | None]] = {name: {} for name in metric_names}
        values = self.metrics[metric_names].to_numpy()
        ranked: dict[bytes, RankedColumns] = {}  # by the rows a reader scored
        for index, reader in enumerate(self.readers):
            own = self.wide.iloc[:, index].to_numpy()
            scored = ~np.isnan(own)
            key = scored.tobytes()
            if key not in ranked:
                ranked[key] = RankedColumns(values[scored])
            columns = ranked[key]
            for name, rho in zip(metric_names, columns.spearman(own[scored]), strict=True):
                table[name][reader] = rho
        return table
