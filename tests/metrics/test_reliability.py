"""Reader reliability (metrics/stats/reliability.py): repeat-read agreement against
scikit-learn's kappa and scipy's Kendall tau, reading sessions on a worked example, and drift
by simulation."""

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import cohen_kappa_score

from metrics.stats.reliability import (
    drift_analysis,
    inter_reader_kappa,
    likert_repeat_agreement,
    preference_repeat_agreement,
    quadratic_kappa,
    reader_drift,
    reading_clock,
    repeat_agreement,
)


def test_quadratic_kappa_equals_scikit_learns():
    rng = np.random.default_rng(9)
    for _ in range(20):
        first = rng.integers(1, 6, size=40)
        second = np.clip(first + rng.integers(-1, 2, size=40), 1, 5)
        expected = cohen_kappa_score(first, second, weights="quadratic", labels=[1, 2, 3, 4, 5])
        assert quadratic_kappa(first, second, [1, 2, 3, 4, 5]) == pytest.approx(
            expected, abs=1e-12
        )
    assert quadratic_kappa(np.array([3, 3]), np.array([3, 3]), [1, 2, 3, 4, 5]) is None


def drift_study(rng, readers=5, items=200, drifting=None, per_100=0.6):
    quality = rng.integers(1, 6, size=items).astype(float)
    rows = []
    for r in range(readers):
        order = rng.permutation(items)
        for position, item in enumerate(order, start=1):
            trend = per_100 * position / 100 if r == drifting else 0.0
            score = np.clip(np.rint(quality[item] + trend + rng.normal(0, 0.7)), 1, 9)
            rows.append((f"r{r}", item, position, score))
    return pd.DataFrame(rows, columns=["reader", "reconstruction", "position", "score"])


def test_reader_drift_slope_is_the_least_squares_fit_of_the_deviation():
    from scipy.stats import linregress

    rng = np.random.default_rng(11)
    scores = drift_study(rng, drifting=2)
    result = reader_drift(scores)
    mine = scores[scores["reader"] == "r2"]
    others = scores[scores["reader"] != "r2"].groupby("reconstruction")["score"].mean()
    deviation = mine["score"].to_numpy() - mine["reconstruction"].map(others).to_numpy()
    expected = linregress(mine["position"], deviation)
    assert result["r2"]["slope"] == pytest.approx(expected.slope * 100, rel=1e-10)
    assert result["r2"]["p"] == pytest.approx(expected.pvalue, rel=1e-8)
    assert result["r2"]["flagged"], "a reader drifting 0.6 points per 100 items is flagged"


def test_reader_drift_rarely_flags_steady_readers():
    """By simulation: 100 studies of 5 steady readers flag at most 5 % of studies (the
    Bonferroni bound on the family-wise error is 5 %)."""

    rng = np.random.default_rng(12)
    flagged_studies = sum(
        any(r["flagged"] for r in reader_drift(drift_study(rng, items=120)).values())
        for _ in range(100)
    )
    assert flagged_studies <= 9, flagged_studies  # 5 % of 100, plus binomial slack


def test_likert_repeat_kappa_per_reader_equals_scikit_learns_on_the_observed_span():
    """Quadratic weights depend on the distance between levels only, so a reader who never
    used 1 or 5 gets the kappa of the whole 1-5 scale."""
    rng = np.random.default_rng(3)
    rows = []
    for reader in ("a", "b"):
        first = rng.integers(2, 5, size=30)
        repeat = np.clip(first + rng.integers(-1, 2, size=30), 2, 4)
        rows += [(reader, "overall", "likert", f, r) for f, r in zip(first, repeat, strict=True)]
    repeats = pd.DataFrame(rows, columns=["reader", "question", "kind", "first", "repeat"])
    result = likert_repeat_agreement(repeats)
    for reader, mine in repeats.groupby("reader"):
        expected = cohen_kappa_score(
            mine["first"], mine["repeat"], weights="quadratic", labels=[1, 2, 3, 4, 5]
        )
        assert result["per_reader"][reader]["value"] == pytest.approx(expected, abs=1e-12)
        assert result["per_reader"][reader]["exact"] == pytest.approx(
            np.mean(mine["first"] == mine["repeat"])
        )
    assert result["mean"] == pytest.approx(
        np.mean([result["per_reader"][r]["value"] for r in "ab"])
    )


def test_a_reader_repeating_one_answer_has_no_kappa_and_says_why():
    repeats = pd.DataFrame(
        [("a", "q", "likert", 3, 3), ("a", "q", "likert", 3, 3)],
        columns=["reader", "question", "kind", "first", "repeat"],
    )
    only = likert_repeat_agreement(repeats)["per_reader"]["a"]
    assert only["value"] is None and "same" in only["reason"] and only["exact"] == 1.0


def test_inter_reader_kappa_is_the_mean_of_scikit_learns_over_reader_pairs():
    rng = np.random.default_rng(4)
    quality = rng.integers(1, 6, size=40)
    rows = [
        (reader, item, int(np.clip(quality[item] + rng.integers(-1, 2), 1, 5)))
        for reader in ("a", "b", "c")
        for item in range(40)
        if not (reader == "c" and item < 10)  # c scored only some: pairs use shared items
    ]
    scores = pd.DataFrame(rows, columns=["reader", "reconstruction", "score"])
    wide = scores.pivot(index="reconstruction", columns="reader", values="score")

    def sk(a, b):
        both = wide[[a, b]].dropna()
        return cohen_kappa_score(both[a], both[b], weights="quadratic", labels=[1, 2, 3, 4, 5])

    result = inter_reader_kappa(scores)
    assert result["mean"] == pytest.approx(np.mean([sk("a", "b"), sk("a", "c"), sk("b", "c")]))
    assert result["per_reader"]["c"] == pytest.approx((sk("a", "c") + sk("b", "c")) / 2)


def test_inter_reader_kappa_equals_scikit_learns_for_every_pair_with_gaps_and_constant_readers():
    """The pairwise kappas come from matrix products over all readers at once; each equals
    scikit-learn's on the items the two readers share, and is left out where it is
    undefined (a constant pair of reads, fewer than two shared items)."""
    rng = np.random.default_rng(8)
    for trial in range(40):
        n_items, n_readers = int(rng.integers(2, 40)), int(rng.integers(2, 7))
        rows = [
            (
                f"r{reader}",
                item,
                3 if (trial % 5 == 0 and reader == 0) else int(rng.integers(1, 6)),
            )
            for reader in range(n_readers)
            for item in range(n_items)
            if rng.random() > 0.3
        ]
        scores = pd.DataFrame(rows, columns=["reader", "reconstruction", "score"])
        wide = scores.pivot(index="reconstruction", columns="reader", values="score")
        expected = {}
        for a, b in combinations(sorted(wide.columns), 2):
            both = wide[[a, b]].dropna()
            if len(both) >= 2:
                value = cohen_kappa_score(
                    both[a], both[b], weights="quadratic", labels=[1, 2, 3, 4, 5]
                )
                if np.isfinite(value):
                    expected[(a, b)] = value
        got = inter_reader_kappa(scores)
        means = []
        for reader in sorted(wide.columns):
            mine = [v for pair, v in expected.items() if reader in pair]
            means.append(np.mean(mine) if mine else np.nan)
        for reader, mean in zip(sorted(wide.columns), means, strict=True):
            value = got["per_reader"][reader]
            if np.isnan(mean):
                assert value is None
            else:
                assert value == pytest.approx(mean, abs=1e-12)
        if expected:
            assert got["mean"] == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
        else:
            assert got["mean"] is None


def test_repeat_concordance_without_ties_is_one_plus_kendall_tau_over_two():
    """One repeated ranking of 6 per reader, no ties: the share of the first read's pairs that
    the repeat keeps is (1 + tau)/2 (scipy's Kendall tau)."""
    rng = np.random.default_rng(5)
    rows, expected = [], {}
    for reader in ("a", "b", "c"):
        first = rng.permutation(6) + 1
        repeat = first.copy()
        swap = rng.choice(6, size=2, replace=False)
        repeat[swap] = repeat[swap[::-1]]
        rows += [
            (reader, "rank", "rank", "c1", "1", f"r{k}", first[k], repeat[k]) for k in range(6)
        ]
        expected[reader] = (1 + kendalltau(first, repeat).statistic) / 2
    repeats = pd.DataFrame(
        rows,
        columns=["reader", "question", "kind", "case", "set", "reconstruction", "first", "repeat"],
    )
    result = preference_repeat_agreement(repeats)
    for reader, value in expected.items():
        assert result["per_reader"][reader]["value"] == pytest.approx(value, abs=1e-12)
        assert result["per_reader"][reader]["n"] == 15


def test_repeat_concordance_counts_a_tie_in_the_repeat_half_and_a_first_read_tie_not_at_all():
    """Worked example: first read A1 B2 C2; repeat A1 B1 C2. Pairs ordered in the first read:
    A>B (repeat ties: 0.5) and A>C (kept: 1); B=C was a tie, so it is not counted."""
    repeats = pd.DataFrame(
        [("a", "c1", "1", "A", 1, 1), ("a", "c1", "1", "B", 2, 1), ("a", "c1", "1", "C", 2, 2)],
        columns=["reader", "case", "set", "reconstruction", "first", "repeat"],
    )
    only = preference_repeat_agreement(repeats)["per_reader"]["a"]
    assert only == {"n": 2, "value": 0.75}


def test_repeat_agreement_reports_each_question_in_its_own_statistic():
    repeats = pd.DataFrame(
        [
            ("a", "overall", "likert", "", "", "x", 3, 4),
            ("a", "overall", "likert", "", "", "y", 5, 5),
            ("a", "pick", "choice", "c1", "1", "x", 1, 2),
            ("a", "pick", "choice", "c1", "1", "y", 2, 1),
        ],
        columns=["reader", "question", "kind", "case", "set", "reconstruction", "first", "repeat"],
    )
    first = pd.DataFrame(
        [
            ("a", "x", "overall", 3),
            ("b", "x", "overall", 4),
            ("a", "y", "overall", 5),
            ("b", "y", "overall", 4),
        ],
        columns=["reader", "reconstruction", "question", "score"],
    )
    result = repeat_agreement(repeats, first)
    assert result["overall"]["statistic"] == "quadratic_kappa"
    assert result["overall"]["n_repeats"] == 2
    assert set(result["overall"]["inter_reader"]["per_reader"]) == {"a", "b"}
    assert result["pick"] == {
        "kind": "choice",
        "n_repeats": 1,
        "statistic": "concordance",
        "per_reader": {"a": {"n": 1, "value": 0.0}},
        "mean": 0.0,
    }


def test_reading_clock_numbers_answers_and_restarts_the_session_after_a_pause():
    answers = pd.DataFrame(
        {
            "reader": ["a", "a", "a", "a", "b"],
            "answered_at": [
                "2026-01-01T09:00:00+00:00",
                "2026-01-01T09:10:00+00:00",
                "2026-01-01T10:00:00+00:00",  # 50 minutes later: a new session
                "2026-01-01T09:05:00+00:00",
                "2026-01-01T12:00:00+00:00",
            ],
        }
    )
    clocked = reading_clock(answers)
    assert clocked["order"].tolist() == [1, 3, 4, 2, 1]
    assert clocked["session_minutes"].tolist() == [0.0, 10.0, 0.0, 5.0, 0.0]


def test_drift_over_session_time_flags_a_reader_who_tires_within_each_session():
    """By simulation: 5 readers, 4 sessions of 50 items a minute apart; one reader's scores
    fall 1.5 points per hour into each session and recover after the break. Flagged by
    session time; the others are not."""
    rng = np.random.default_rng(13)
    quality = rng.integers(1, 6, size=200)
    start = pd.Timestamp("2026-01-01T08:00:00Z")
    rows = []
    for r in range(5):
        for n, item in enumerate(rng.permutation(200)):
            session, minute = divmod(n, 50)
            at = start + pd.Timedelta(days=session, minutes=minute)
            tired = -1.5 * minute / 60 if r == 0 else 0.0
            score = np.clip(np.rint(quality[item] + tired + rng.normal(0, 0.4)), 1, 5)
            rows.append((f"r{r}", item, "overall", score, at.isoformat()))
    answers = pd.DataFrame(
        rows, columns=["reader", "reconstruction", "question", "score", "answered_at"]
    )
    session = drift_analysis(answers)["overall"]["session"]
    assert session["unit"] == "per hour of a session"
    assert session["per_reader"]["r0"]["flagged"]
    assert session["per_reader"]["r0"]["slope_ci"][1] < 0
    assert not any(session["per_reader"][f"r{r}"]["flagged"] for r in range(1, 5))


def test_drift_of_readers_who_always_agree_is_zero_not_nan():
    """Every reader gives every image the same score: the deviation is 0 throughout, which is
    no trend (a NaN here once broke the dashboard's JSON)."""
    scores = pd.DataFrame(
        [(r, item, float(item % 5 + 1), item) for r in "ab" for item in range(10)],
        columns=["reader", "reconstruction", "score", "position"],
    )
    result = reader_drift(scores)
    assert result["a"] == {
        "n": 10,
        "slope": 0.0,
        "slope_ci": [0.0, 0.0],
        "p": 1.0,
        "flagged": False,
    }


def test_answers_entered_within_minutes_give_no_slope_per_hour():
    """A script (or an import) entering a session's scores within seconds spans no time to
    speak of: no slope per hour, and the reason says so; the order still has one."""
    rng = np.random.default_rng(14)
    start = pd.Timestamp("2026-01-01T08:00:00Z")
    answers = pd.DataFrame(
        [
            (
                r,
                item,
                "q",
                float(rng.integers(1, 6)),
                (start + pd.Timedelta(seconds=n)).isoformat(),
            )
            for r in ("a", "b", "c")
            for n, item in enumerate(rng.permutation(40))
        ],
        columns=["reader", "reconstruction", "question", "score", "answered_at"],
    )
    drift = drift_analysis(answers)["q"]
    assert drift["session"]["per_reader"]["a"]["slope"] is None
    assert "too little" in drift["session"]["per_reader"]["a"]["reason"]
    assert drift["order"]["per_reader"]["a"]["slope"] is not None
