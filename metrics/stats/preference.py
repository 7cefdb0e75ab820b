"""Reader preferences between reconstructions of one case, and how well a metric follows them.

Issue 20's ranking and forced-choice designs both come down to preferences: a reader's ranking
of a case's reconstructions gives a pair for every two of them with different ranks (the
better one first), and a forced choice gives one pair; equal ranks and "no difference" give
none. A metric agrees with a pair when, in its own direction (`polarity`: +1 higher is
better, -1 lower is better), it orders the two the same way; a tie in the metric counts half.
The **concordance** of a metric is the share of pairs it agrees with, (1 + Kendall's tau-a)/2
for a single complete ranking, so 0.5 is chance and 1 is perfect. Its interval resamples whole
cases (the pairs of a case share its reference and its readers' view of it). The
**inter-reader concordance** puts readers on the same yardstick: each reader's pairs against
the majority of the other readers on the same two reconstructions (a split majority counts
half), the agreement a metric would need to read like one more radiologist.

Also here: Kendall's W for agreement within ranked cases. A reader's agreement with their own
repeat reads, and their drift over a session, are in metrics.stats.reliability.

Pure NumPy/pandas: no Django (the study app turns stored answers into pair frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from metrics.stats.bootstrap import cluster_counts, percentile_interval
from metrics.stats.bradley_terry import bradley_terry, spearman_with_scale
from metrics.stats.plackett_luce import plackett_luce
from metrics.stats.ranking_checks import check_rankings

PAIR_COLUMNS = ("case", "reader", "better", "worse")
RANKING_KEYS = ("case", "reader", "set", "reconstruction", "rank")


def pairs_from_ranks(ranks: pd.DataFrame) -> pd.DataFrame:
    """Preference pairs from rankings: `ranks` has case, reader, reconstruction, rank (1 is
    best; equal ranks are ties and give no pair). One ranking is one (case, reader) group, or
    one (case, reader, set) group when a case was split into subsets (a `set` column)."""
    keys = ["case", "reader", *(["set"] if "set" in ranks.columns else [])]
    # Every two members of a ranking at once: the ranking joined with itself on its keys.
    members = ranks[[*keys, "reconstruction", "rank"]]
    joined = members.merge(members, on=keys, suffixes=("_better", "_worse"))
    joined = joined[joined["rank_better"] < joined["rank_worse"]]
    return pd.DataFrame(
        {
            "case": joined["case"].to_numpy(),
            "reader": joined["reader"].to_numpy(),
            "better": joined["reconstruction_better"].to_numpy(),
            "worse": joined["reconstruction_worse"].to_numpy(),
        }
    )


def pairs_from_choices(choices: pd.DataFrame) -> pd.DataFrame:
    """Preference pairs from forced choices: `choices` has case, reader, left, right, chosen
    (the chosen reconstruction, or empty/NaN for "no difference", which gives no pair)."""
    made = choices[choices["chosen"].notna() & (choices["chosen"].astype(str) != "")]
    other = np.where(made["chosen"] == made["left"], made["right"], made["left"])
    return pd.DataFrame(
        {
            "case": made["case"].to_numpy(),
            "reader": made["reader"].to_numpy(),
            "better": made["chosen"].to_numpy(),
            "worse": other,
        }
    )


def agreement_with_metric(pairs: pd.DataFrame, values: pd.Series, polarity: int) -> np.ndarray:
    """Per pair: 1 when the metric (values by reconstruction, oriented by `polarity`) prefers
    the reader's better reconstruction, 0.5 on a tie, 0 otherwise; NaN when a value is missing."""
    better = pairs["better"].map(values).to_numpy(dtype=np.float64)
    worse = pairs["worse"].map(values).to_numpy(dtype=np.float64)
    # Equal values tie, two infinite PSNRs (both identical to the reference) included.
    with np.errstate(invalid="ignore"):
        difference = np.where(better == worse, 0.0, polarity * (better - worse))
    agreement = np.where(difference > 0, 1.0, np.where(difference == 0, 0.5, 0.0))
    agreement[np.isnan(difference)] = np.nan
    return agreement


def _by_case(pairs: pd.DataFrame, agreement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of agreement and number of usable pairs per case, cases in sorted order: the
    bootstrap draws over them, so the same study gives the same interval whatever the order of
    its rows (the dashboard's, an export's, a restored server's)."""
    usable = ~np.isnan(agreement)
    codes, _ = pd.factorize(pairs["case"].astype(str), sort=True)
    n_cases = int(codes.max()) + 1 if codes.size else 0
    sums = np.bincount(codes[usable], weights=agreement[usable], minlength=n_cases)
    counts = np.bincount(codes[usable], minlength=n_cases).astype(np.float64)
    return sums, counts


def concordance(
    pairs: pd.DataFrame,
    values: pd.Series,
    polarity: int,
    *,
    resamples: int = 1000,
    rng: np.random.Generator | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """The metric's concordance with the readers' pairs, with a case-level percentile
    bootstrap interval, and the same per reader (no interval). Never NaN: an undefined
    figure is None with a `reason`."""
    agreement = agreement_with_metric(pairs, values, polarity)
    usable = ~np.isnan(agreement)
    if not usable.any():
        return {
            "n_pairs": 0,
            "concordance": None,
            "concordance_ci": None,
            "per_reader": {},
            "reason": "no reader preference has both metric values",
        }
    sums, counts = _by_case(pairs, agreement)
    rng = rng if rng is not None else np.random.default_rng(0)
    weights = cluster_counts(np.arange(len(sums)), resamples, rng)  # (cases, B)
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (sums @ weights) / (counts @ weights)
    per_reader = (
        pd.Series(agreement[usable], index=pairs["reader"].to_numpy()[usable])
        .groupby(level=0, sort=True)
        .mean()
    )
    n_cases = int((counts > 0).sum())
    block: dict[str, Any] = {
        "n_pairs": int(usable.sum()),
        "n_cases": n_cases,
        "concordance": float(sums.sum() / counts.sum()),
        "concordance_ci": percentile_interval(resampled[np.isfinite(resampled)], level),
        "per_reader": {str(reader): float(value) for reader, value in per_reader.items()},
    }
    if n_cases < 2:
        # Resampling one case redraws that case every time: a zero-width interval that
        # would claim certainty about cases never seen.
        block["concordance_ci"] = None
        block["ci_reason"] = "one case: an interval over cases needs at least two"
    return block


def inter_reader_concordance(pairs: pd.DataFrame) -> dict[str, Any]:
    """Each reader against the majority of the other readers on the same two reconstructions
    of a case: 1 when the majority agrees, 0.5 when it is split, 0 when it disagrees; pairs no
    other reader judged are left out, however often one reader judged them. Returns per
    reader and their mean."""
    if pairs.empty:
        return {"per_reader": {}, "mean": None, "reason": "no preferences yet"}
    first = np.where(
        pairs["better"].astype(str) < pairs["worse"].astype(str), pairs["better"], pairs["worse"]
    )
    second = np.where(first == pairs["better"], pairs["worse"], pairs["better"])
    frame = pd.DataFrame(
        {
            "case": pairs["case"].to_numpy(),
            "first": first,
            "second": second,
            "reader": pairs["reader"].to_numpy(),
            "vote": np.where(first == pairs["better"], 1, -1),  # +1: first preferred
        }
    )
    key = ["case", "first", "second"]
    pair, mine = frame.groupby(key)["vote"], frame.groupby([*key, "reader"])["vote"]
    # The other readers' net vote and count on this pair: a reader's own repeated judgments
    # of it (split-rank designs repeat pairs) are theirs, never another reader's vote.
    others = pair.transform("sum") - mine.transform("sum")
    has_others = (pair.transform("size") - mine.transform("size") > 0).to_numpy()
    agree = np.sign(others.to_numpy()) * frame["vote"].to_numpy()
    score = np.where(agree > 0, 1.0, np.where(agree == 0, 0.5, 0.0))[has_others]
    readers = frame["reader"].to_numpy()[has_others]
    if not score.size:
        return {"per_reader": {}, "mean": None, "reason": "no pair was judged by two readers"}
    per_reader = pd.Series(score, index=readers).groupby(level=0, sort=True).mean()
    return {
        "per_reader": {str(reader): float(value) for reader, value in per_reader.items()},
        "mean": float(per_reader.mean()),
    }


def kendalls_w(ranks: np.ndarray) -> float | None:
    """Kendall's coefficient of concordance W of `ranks` (m readers x n reconstructions of one
    case; 1 is best), with the correction for tied ranks: 1 when every reader gives the same
    order, 0 when their orders cancel. None for fewer than 2 readers or 2 items, or when every
    reader tied everything."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 2 or ranks.shape[0] < 2 or ranks.shape[1] < 2:
        return None
    m, n = ranks.shape
    # Average ranks within each reader, so that ties are handled whatever numbers were given.
    ranked = np.vstack([pd.Series(row).rank(method="average").to_numpy() for row in ranks])
    totals = ranked.sum(axis=0)
    spread = float(((totals - totals.mean()) ** 2).sum())
    ties = 0.0
    for row in ranked:
        _, sizes = np.unique(row, return_counts=True)
        ties += float((sizes**3 - sizes).sum())
    denominator = m**2 * (n**3 - n) - m * ties
    if denominator <= 0:
        return None
    return 12 * spread / denominator


def ranking_agreement(ranks: pd.DataFrame) -> dict[str, Any]:
    """Kendall's W of each ranked set (case, and `set` where cases were split) over the
    readers who ranked all of it, and their mean: the agreement between readers within a
    case (1: the same order). `kendalls_w` for every set at once (a study has hundreds)."""
    keys = ["case", *(["set"] if "set" in ranks.columns else [])]
    frame = ranks[[*keys, "reader", "reconstruction", "rank"]].copy()
    frame["unit"] = frame.groupby(keys, sort=False).ngroup()
    items = frame.groupby("unit")["reconstruction"].transform("nunique")
    answered = frame.groupby(["unit", "reader"])["reconstruction"].transform("nunique")
    frame = frame[(answered == items) & (items >= 2)].copy()
    # Average ranks within each reader's ranking, whatever numbers were given for ties.
    frame["r"] = frame.groupby(["unit", "reader"])["rank"].rank(method="average")
    n = frame.groupby("unit")["reconstruction"].nunique()
    m = frame.groupby("unit")["reader"].nunique()
    totals = frame.groupby(["unit", "reconstruction"])["r"].sum()
    centred = totals - totals.groupby(level="unit").transform("mean")
    spread = (centred**2).groupby(level="unit").sum()
    sizes = frame.groupby(["unit", "reader", "r"]).size().astype(np.float64)
    ties = (sizes**3 - sizes).groupby(level="unit").sum()
    denominator = m**2 * (n**3 - n) - m * ties.reindex(m.index, fill_value=0.0)
    usable = (m >= 2) & (denominator > 0)
    w = 12 * spread[usable] / denominator[usable]
    if w.empty:
        return {"kendalls_w": None, "n_sets": 0, "reason": "no set was ranked by two readers"}
    return {"kendalls_w": float(w.mean()), "n_sets": int(w.size)}


def preference_analysis(
    rankings: pd.DataFrame,
    metrics: pd.DataFrame,
    polarities: Mapping[str, int | None],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Issue 20's figures for every rank or forced-choice question in `rankings` (one row per
    rank position: reader, question, case, set, reconstruction, rank, and `kind`): per metric
    the concordance with its case-bootstrap interval and per reader, and the Spearman with the
    Bradley-Terry scale; the inter-reader concordance baseline; Kendall's W; the scale itself.
    `metrics` is long (reconstruction, metric, value); `polarities` each metric's direction
    (None: unknown, and its figures are None with a reason). Never NaN."""
    rankings = check_rankings(rankings)
    table = metrics.pivot_table(
        index="reconstruction", columns="metric", values="value", aggfunc="mean"
    )
    table.index = table.index.astype(str)
    result: dict[str, Any] = {}
    for question, rows in rankings.groupby("question", sort=True):
        pairs = pairs_from_ranks(rows[["case", "reader", "set", "reconstruction", "rank"]])
        kind = str(rows["kind"].iloc[0]) if "kind" in rows.columns else "rank"
        # A ranking is one observation (Plackett-Luce); its pairs are not independent, and
        # Bradley-Terry on them gave intervals that covered 86-90 %. A choice is a pair.
        scale = (
            plackett_luce(rows[[c for c in RANKING_KEYS if c in rows.columns]])
            if kind == "rank"
            else bradley_terry(pairs)
        )
        per_metric: dict[str, Any] = {}
        for name in sorted(table.columns):
            values = table[name].dropna()  # an infinite PSNR orders above every finite one
            polarity = polarities.get(name)
            if polarity is None:
                per_metric[name] = {
                    "polarity": None,
                    "concordance": None,
                    "concordance_ci": None,
                    "per_reader": {},
                    "bt_spearman": None,
                    "reason": "unknown direction: give --polarity NAME=+1 or NAME=-1",
                }
                continue
            block = concordance(
                pairs, values, polarity, resamples=bootstrap, rng=np.random.default_rng(seed)
            )
            block["polarity"] = polarity
            if block["n_pairs"] < len(pairs):
                block["coverage"] = (
                    f"computed on {block['n_pairs']} of the {len(pairs)} pairs the readers "
                    "judged (the others lack a value of this metric)"
                )
            block["bt_spearman"] = spearman_with_scale(scale, values, polarity)["spearman"]
            per_metric[name] = block
        ranked = sorted(
            (name for name, block in per_metric.items() if block["concordance"] is not None),
            key=lambda name: -per_metric[name]["concordance"],
        )
        result[str(question)] = {
            "kind": kind,
            "n_readers": int(rows["reader"].nunique()),
            "n_cases": int(rows["case"].nunique()),
            "n_pairs": len(pairs),
            "metrics": per_metric,
            "ranking": ranked,
            "inter_reader": inter_reader_concordance(pairs),
            **(ranking_agreement(rows) if kind == "rank" else {}),
            "scale": [
                {
                    "reconstruction": row.reconstruction,
                    "case": row.case,
                    "strength": row.strength,
                    "low": row.low,
                    "high": row.high,
                }
                for row in scale.itertuples()
            ],
        }
    return result
