"""How reliable each reader is: agreement with their own repeat reads, and drift over a session.

**Repeat reads** (issue 20): a share of each reader's items is shown a second time, later and
under a new id. For a Likert question, a reader's first and repeat scores are compared by
Cohen's kappa with quadratic weights, beside the same kappa between that reader and each other
reader on the items both scored (the inter-reader figure on the same yardstick). For a ranking
or forced choice, the **intra-reader concordance** is the share of pairs a reader ordered in
their first read that the repeat orders the same way (a tie in the repeat counts half), the
yardstick of the inter-reader concordance of metrics.stats.preference.

**Drift**: a reader's deviation from the other readers on shared items, regressed on where an
answer falls in their reading (the n-th answer, and minutes into a reading session).

Pure NumPy/pandas/SciPy: no Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import combinations
from typing import Any, cast

import numpy as np
import pandas as pd

# Answers further apart than this start a new reading session (a break, another day).
SESSION_GAP_MINUTES = 30.0

REPEAT_COLUMNS = ("reader", "question", "kind", "first", "repeat")


def quadratic_kappa(first: np.ndarray, second: np.ndarray, levels: list[int]) -> float | None:
    """Cohen's kappa with quadratic weights between two reads of the same items on a scale of
    `levels`. None when it is undefined (fewer than 2 items, or every answer the same level
    in both reads)."""
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape or first.size < 2:
        return None
    index = {level: k for k, level in enumerate(levels)}
    k = len(levels)
    observed = np.zeros((k, k))
    np.add.at(observed, ([index[v] for v in first], [index[v] for v in second]), 1)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    grid = np.arange(k)
    weights = (grid[:, None] - grid[None, :]) ** 2 / max((k - 1) ** 2, 1)
    disagreement_expected = float((weights * expected).sum())
    if disagreement_expected == 0:
        return None
    return 1 - float((weights * observed).sum()) / disagreement_expected


def _levels(*values: np.ndarray) -> list[int]:
    # Quadratic weights depend only on the distance between levels, so the observed span
    # gives the kappa of the full scale.
    joined = np.concatenate([np.asarray(v, dtype=np.int64) for v in values])
    return list(range(int(joined.min()), int(joined.max()) + 1))


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def likert_repeat_agreement(repeats: pd.DataFrame) -> dict[str, Any]:
    """Per reader, the quadratic kappa of first against repeat scores (`repeats`: one
    question's rows of reader, first, repeat), with the share of identical answers."""
    per_reader: dict[str, dict[str, Any]] = {}
    for reader, mine in repeats.groupby("reader", sort=True):
        first, repeat = mine["first"].to_numpy(), mine["repeat"].to_numpy()
        kappa = quadratic_kappa(first, repeat, _levels(first, repeat))
        per_reader[str(reader)] = {
            "n": int(len(mine)),
            "value": kappa,
            "exact": float(np.mean(first == repeat)),
            **({} if kappa is not None else {"reason": _kappa_reason(len(mine))}),
        }
    return {"per_reader": per_reader, "mean": _mean(r["value"] for r in per_reader.values())}


def _kappa_reason(n: int) -> str:
    return "fewer than 2 repeat reads" if n < 2 else "every answer the same in both reads"


def inter_reader_kappa(scores: pd.DataFrame) -> dict[str, Any]:
    """Quadratic kappa between every two readers on the items both scored (`scores`: one
    question's reader, reconstruction, score; first reads). Per reader, the mean of their
    kappas with the others; `mean`, the mean over the pairs of readers."""
    wide = scores.pivot_table(index="reconstruction", columns="reader", values="score")
    readers = sorted(wide.columns, key=str)
    kappas = _pairwise_quadratic_kappas(wide[readers].to_numpy(dtype=np.float64))
    pairs: dict[tuple[str, str], float] = {}
    for (i, a), (j, b) in combinations(enumerate(readers), 2):
        if not np.isnan(kappas[i, j]):
            pairs[(str(a), str(b))] = float(kappas[i, j])
    per_reader = {
        str(r): _mean(v for (a, b), v in pairs.items() if str(r) in (a, b)) for r in wide.columns
    }
    return {"per_reader": per_reader, "mean": _mean(pairs.values())}


def _pairwise_quadratic_kappas(wide: np.ndarray) -> np.ndarray:
    """(readers, readers) quadratic kappa of every two columns of `wide` (items x readers,
    NaN where not scored) on the items both scored; NaN where undefined (`quadratic_kappa`'s
    None). On whole-number scores with quadratic weights, kappa = 1 - D_o / D_e: D_o the
    mean squared difference of the two reads, D_e its mean over every pairing of the two
    readers' answers (var_a + var_b + (mean_a - mean_b)^2); the scale's span cancels. Every
    sum comes from one matrix product over all pairs at once: a loop over the 1,225 pairs of
    50 readers took 2.4 s of a dashboard analysis."""
    scored = ~np.isnan(wide)
    present = scored.astype(np.float64)
    values = np.where(scored, wide, 0.0)
    n = present.T @ present  # [a, b]: items both scored
    sums = values.T @ present  # [a, b]: a's scores summed over the items b scored too
    squares = (values**2).T @ present
    cross = values.T @ values
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = (squares + squares.T - 2 * cross) / n
        expected = (squares + squares.T) / n - 2 * (sums / n) * (sums.T / n)
        kappa = 1 - observed / expected
        # Sums of whole numbers are exact; a constant pair of reads leaves D_e at zero up
        # to rounding in the division.
        undefined = (n < 2) | ~(expected > 1e-12 * np.maximum((squares + squares.T) / n, 1.0))
    kappa[undefined] = np.nan
    return kappa


def preference_repeat_agreement(repeats: pd.DataFrame) -> dict[str, Any]:
    """Per reader, the share of pairs ordered in the first read that the repeat orders the
    same way (a tie in the repeat counts half). `repeats`: one question's rows of reader,
    case, set, reconstruction, first, repeat (ranks, 1 best; a forced choice is a ranking of
    two). Pairs come from within one ranking, a (reader, case, set)."""
    keys = ["reader", "case", "set"]
    members = repeats[[*keys, "reconstruction", "first", "repeat"]]
    joined = members.merge(members, on=keys, suffixes=("_a", "_b"))
    ordered = joined[joined["first_a"] < joined["first_b"]]  # a preferred in the first read
    agree = np.sign(ordered["repeat_b"].to_numpy() - ordered["repeat_a"].to_numpy())
    score = pd.Series((agree + 1) / 2, index=ordered["reader"].to_numpy())
    per_reader: dict[str, dict[str, Any]] = {}
    for reader in sorted(members["reader"].unique(), key=str):
        mine = score[score.index == reader]
        per_reader[str(reader)] = {
            "n": int(mine.size),
            "value": float(mine.mean()) if mine.size else None,
            **({} if mine.size else {"reason": "no preference in the first reads repeated"}),
        }
    return {"per_reader": per_reader, "mean": _mean(r["value"] for r in per_reader.values())}


def check_repeats(repeats: pd.DataFrame) -> pd.DataFrame:
    """The repeats export's rows made fit for repeat_agreement, or ValueError naming the first
    problem (a missing column, an unknown kind, an answer that is not a whole number)."""
    missing = [c for c in REPEAT_COLUMNS if c not in repeats.columns]
    comparing = repeats["kind"].astype(str) != "likert" if "kind" in repeats else None
    if comparing is not None and comparing.any():
        missing += [c for c in ("case", "set", "reconstruction") if c not in repeats.columns]
    if missing:
        raise ValueError(f"repeats: needs the columns {', '.join(missing)}")
    known = repeats["kind"].astype(str).isin(["likert", "rank", "choice"])
    if not known.all():
        line = int(np.flatnonzero(~known.to_numpy())[0]) + 2
        raise ValueError(f"repeats line {line}: kind must be likert, rank or choice")
    out = repeats.copy()
    for column in ("first", "repeat"):
        number = pd.to_numeric(out[column], errors="coerce")
        bad = number.isna() | (number != np.floor(number))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ValueError(f"repeats line {line}: {column} must be a whole number")
        out[column] = number.astype(np.int64)
    for column in ("reader", "question", "case", "set", "reconstruction"):
        if column in out:
            out[column] = out[column].fillna("").astype(str)
    return out


def repeat_agreement(
    repeats: pd.DataFrame, first_scores: pd.DataFrame | None = None
) -> dict[str, dict[str, Any]]:
    """Intra-reader agreement per question from repeat reads (the repeats export's rows: reader,
    question, kind, first, repeat, and case, set, reconstruction for rankings and choices).
    With the study's Likert first reads (`first_scores`: reader, reconstruction, question,
    score), each Likert question also gets the inter-reader kappa beside it."""
    out: dict[str, dict[str, Any]] = {}
    for question, rows in repeats.groupby("question", sort=True):
        kind = str(rows["kind"].iloc[0])
        if kind == "likert":
            result = {"statistic": "quadratic_kappa", **likert_repeat_agreement(rows)}
            if first_scores is not None:
                mine = first_scores[first_scores["question"] == question]
                result["inter_reader"] = inter_reader_kappa(mine)
        else:
            result = {"statistic": "concordance", **preference_repeat_agreement(rows)}
        out[str(question)] = {"kind": kind, "n_repeats": _repeat_count(rows, kind), **result}
    return out


def _repeat_count(rows: pd.DataFrame, kind: str) -> int:
    if kind == "likert":
        return int(len(rows))
    return int(rows.groupby(["reader", "case", "set"]).ngroups)


def reading_clock(
    answers: pd.DataFrame, *, gap_minutes: float = SESSION_GAP_MINUTES
) -> pd.DataFrame:
    """`answers` (reader, answered_at: timestamps) with two columns added: `order`, the n-th
    answer of that reader (1 first), and `session_minutes`, minutes since the first answer
    of the reading session it falls in (a pause over `gap_minutes` starts a new session)."""
    out = answers.copy()
    times = pd.to_datetime(out["answered_at"], utc=True, format="ISO8601")
    out["order"] = times.groupby(out["reader"]).rank(method="first").astype(int)
    sorted_index = times.sort_values(kind="stable").index
    ordered = pd.DataFrame({"reader": out["reader"], "t": times}).loc[sorted_index]
    pause = ordered.groupby("reader")["t"].diff() > pd.Timedelta(minutes=gap_minutes)
    session = pause.astype(int).groupby(ordered["reader"]).cumsum()
    start = ordered.groupby([ordered["reader"], session])["t"].transform("min")
    out.loc[sorted_index, "session_minutes"] = (
        (ordered["t"] - start).dt.total_seconds() / 60
    ).to_numpy()
    return out


def reader_drift(
    scores: pd.DataFrame,
    *,
    by: str = "position",
    per: float = 100.0,
    level: float = 0.95,
    least_spread: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Does a reader's scoring drift over their reading (fatigue, calibration)?

    `scores` has reader, reconstruction, score and the column `by` (the item's place in the
    reader's order, or minutes into a session: reading_clock). For each item a reader shares
    with others, the deviation is their score minus the other readers' mean for it, which
    removes the items' own quality; the deviation is regressed on `by` (ordinary least
    squares). Per reader: the slope per `per` units of `by` with its interval, the p-value, and
    `flagged` when the slope differs from 0 after a Bonferroni correction over the readers (a
    clear trend, not one of many chance ones). A reader whose `by` spans no more than
    `least_spread` gets no slope (minutes of answers entered in one go say nothing of an hour).
    """
    from scipy import stats

    totals = scores.groupby("reconstruction")["score"].agg(["sum", "count"])
    joined = scores.join(totals, on="reconstruction")
    shared = joined[joined["count"] > 1]
    others = (shared["sum"] - shared["score"]) / (shared["count"] - 1)
    deviation = shared["score"] - others
    positions = shared.groupby("reader", sort=False).indices  # one pass, not one per reader
    readers = sorted(positions, key=str)
    along, deviations = shared[by].to_numpy(dtype=np.float64), deviation.to_numpy(np.float64)
    result: dict[str, dict[str, Any]] = {}
    for reader in readers:
        x, y = along[positions[reader]], deviations[positions[reader]]
        if x.size < 3 or np.ptp(x) <= least_spread:
            result[str(reader)] = {
                "n": int(x.size),
                "slope": None,
                "reason": "too few shared items"
                if x.size < 3
                else f"{by} spans {np.ptp(x):.3g}, too little to tell a trend",
            }
            continue
        if np.ptp(y) == 0:  # the same deviation throughout: no trend at all
            result[str(reader)] = {
                "n": int(x.size),
                "slope": 0.0,
                "slope_ci": [0.0, 0.0],
                "p": 1.0,
                "flagged": False,
            }
            continue
        fit = stats.linregress(x, y)
        t = stats.t.ppf((1 + level) / 2, x.size - 2)
        if not np.isfinite([fit.slope, fit.stderr, fit.pvalue]).all():
            result[str(reader)] = {"n": int(x.size), "slope": None, "reason": "no fit"}
            continue
        result[str(reader)] = {
            "n": int(x.size),
            "slope": float(fit.slope * per),
            "slope_ci": [
                float((fit.slope - t * fit.stderr) * per),
                float((fit.slope + t * fit.stderr) * per),
            ],
            "p": float(fit.pvalue),
            "flagged": bool(fit.pvalue < (1 - level) / len(readers)),
        }
    return result


# (column of reading_clock, per how many of its units a slope is given, the unit's name, the
# least span of it that tells a trend: 10 minutes of reading for a slope per hour)
DRIFT_AXES = {
    "order": ("order", 100.0, "per 100 items", 0.0),
    "session": ("session_minutes", 60.0, "per hour of a session", 10.0),
}


def drift_analysis(answers: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per Likert question, each reader's drift over their reading order and over session
    time. `answers`: reader, reconstruction, question, score, answered_at (first reads)."""
    out: dict[str, dict[str, Any]] = {}
    # One canonical row order: the sums behind a slope then add in the same order for the
    # dashboard, an export in any order and a restored study (12.5 was 12.499999999999998).
    # Readers, questions and reconstructions as integer codes in their sorted order: the sort
    # and every groupby below then take numbers, not strings (at 144,000 answers the strings
    # took two thirds of the time).
    reader_codes, reader_names = pd.factorize(answers["reader"], sort=True)
    question_codes, question_names = pd.factorize(answers["question"], sort=True)
    reconstruction_codes = pd.factorize(answers["reconstruction"], sort=True)[0]
    order = np.lexsort((reconstruction_codes, question_codes, reader_codes))
    coded = pd.DataFrame(
        {
            "reader": reader_codes[order],
            "question": question_codes[order],
            "reconstruction": reconstruction_codes[order],
            "score": answers["score"].to_numpy()[order],
            "answered_at": pd.to_datetime(answers["answered_at"], utc=True, format="ISO8601")
            .iloc[order]
            .reset_index(drop=True),
        }
    )
    for code, rows in coded.groupby("question", sort=True):
        question = question_names[cast(int, code)]
        clocked = reading_clock(rows)
        out[str(question)] = {
            axis: {
                "unit": unit,
                "per_reader": _named(
                    reader_drift(clocked, by=column, per=per, least_spread=spread), reader_names
                ),
            }
            for axis, (column, per, unit, spread) in DRIFT_AXES.items()
        }
    return out


def _named(per_code: dict[str, Any], names: pd.Index) -> dict[str, Any]:
    """`reader_drift`'s result on integer reader codes, keyed by the readers' names again, in
    their order."""
    return {str(names[int(code)]): per_code[code] for code in sorted(per_code, key=int)}
