"""The rankings export as `analyze --rankings` and the dashboard read it, checked: one refusal
naming the first wrong line, for every answer no form of the reading room could have given
(issue 32). Pure pandas, no Django.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

RANKING_COLUMNS = ("reader", "question", "case", "set", "reconstruction", "rank")


def check_rankings(rankings: pd.DataFrame) -> pd.DataFrame:
    """The rankings export (docs/interfaces.md section 3), or ValueError naming the first
    line that is wrong: a missing column; a rank that is not a whole number from 1 to the
    size of its ranking; a reconstruction twice in one ranking; a reconstruction in two
    cases; a forced choice that is not two reconstructions ranked 1 and 2 (1 and 1 where
    ties are allowed); tied ranks where the question does not allow them (`allow_ties`)."""
    missing = [c for c in RANKING_COLUMNS if c not in rankings.columns]
    if missing:
        raise ValueError(f"rankings: missing column(s) {', '.join(missing)}")
    out = rankings.reset_index(drop=True)
    ranks = pd.to_numeric(out["rank"], errors="coerce")
    bad = ~np.isfinite(ranks) | (ranks < 1) | (ranks != np.round(ranks))
    _refuse(out, bad, lambda row: f"rank {row['rank']!r} is not a whole number of at least 1")
    out["rank"] = ranks.astype(int)
    for column in ("reader", "question", "case", "set", "reconstruction"):
        out[column] = out[column].astype(str)
    # Integer codes, hashed once: each check below is then a pass over numbers (the string
    # groupbys took 0.2 s at 120,000 rows, bench-preferences).
    ranking = out.groupby(["reader", "question", "case", "set"], sort=False).ngroup().to_numpy()
    reconstruction = pd.factorize(out["reconstruction"])[0]
    rank = out["rank"].to_numpy()
    sizes = np.bincount(ranking)[ranking]
    _refuse(
        out,
        pd.Series(ranking * (reconstruction.max() + 1) + reconstruction).duplicated().to_numpy(),
        lambda row: (
            f"reconstruction {row['reconstruction']} is twice in one ranking "
            f"(reader {row['reader']}, question {row['question']}, case {row['case']}, "
            f"set {row['set']})"
        ),
    )
    _refuse(
        out,
        rank > sizes,
        lambda row: (
            f"rank {row['rank']} in a ranking of {sizes[row['_line'] - 2]} reconstructions"
        ),
    )
    case = pd.factorize(out["case"])[0]
    cases_of = pd.Series(case).groupby(reconstruction).transform("nunique").to_numpy()
    _refuse(
        out,
        cases_of > 1,
        lambda row: (
            f"reconstruction {row['reconstruction']} is in more than one case; "
            "names must be unique within a study"
        ),
    )
    first_place = pd.Series(rank).groupby(ranking).transform("min").to_numpy()
    _refuse(
        out,
        first_place != 1,
        lambda row: (
            f"a ranking without a first place (reader {row['reader']}, question "
            f"{row['question']}, case {row['case']}, set {row['set']}); the best is rank 1"
        ),
    )
    if "kind" in out.columns:
        _refuse(
            out,
            (out["kind"].astype(str) == "choice").to_numpy() & (sizes != 2),
            lambda row: (
                f"a forced choice of {sizes[row['_line'] - 2]} reconstructions (it is two)"
            ),
        )
    allow_ties = (
        out["allow_ties"].map(_truth).to_numpy(dtype=bool)
        if "allow_ties" in out.columns
        else np.ones(len(out), dtype=bool)
    )
    tied = pd.Series(ranking * (rank.max() + 1) + rank).duplicated(keep=False).to_numpy()
    _refuse(
        out,
        tied & ~allow_ties,
        lambda row: f"tied ranks in question {row['question']}, which does not allow ties",
    )
    return out


def _truth(value: object) -> bool:
    """An `allow_ties` cell: true, 1, yes (any case) or a boolean true."""
    return str(value).strip().lower() in {"true", "1", "yes"}


def _refuse(
    frame: pd.DataFrame, bad: pd.Series | np.ndarray, say: Callable[[pd.Series], str]
) -> None:
    """ValueError naming the first bad row by its line in the CSV (the header is line 1)."""
    if bad.any():
        first = int(np.flatnonzero(np.asarray(bad))[0])
        row = frame.iloc[first].copy()
        row["_line"] = first + 2
        raise ValueError(f"rankings: line {first + 2}: {say(row)}")
