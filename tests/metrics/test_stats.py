"""Statistics core against scipy, pingouin, krippendorff and published worked examples."""

import json

import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats

from metrics.stats.agreement import agreement_reasons, icc2, krippendorff_alpha, reader_vs_rest
from metrics.stats.analysis import AnalysisInputError, analyze
from metrics.stats.correlation import kendall, pearson, spearman, spearman_bootstrap_ci

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)


def simulated_study(n_recon=60, readers=("r1", "r2", "r3", "r4"), seed=0, missing=0.1):
    """Readers score a latent quality with noise; two metrics track it, one does not."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=n_recon)
    recon = [f"rec{i}" for i in range(n_recon)]
    rows = []
    for reader in readers:
        bias = rng.normal(scale=0.3)
        for i, r in enumerate(recon):
            if rng.random() < missing:
                continue
            for question in ("overall", "artifacts"):
                score = int(np.clip(np.rint(3 + quality[i] + bias + rng.normal(scale=0.6)), 1, 5))
                rows.append(
                    {"reader": reader, "reconstruction": r, "question": question, "score": score}
                )
    metrics = []
    for i, r in enumerate(recon):
        metrics += [
            {
                "reconstruction": r,
                "metric": "psnr",
                "value": 30 + 3 * quality[i] + rng.normal(scale=2),
            },
            {
                "reconstruction": r,
                "metric": "dfd",
                "value": 1 - 0.5 * quality[i] + rng.normal(scale=0.2),
            },
            {"reconstruction": r, "metric": "noise", "value": rng.normal()},
        ]
    return pd.DataFrame(rows), pd.DataFrame(metrics)


def test_correlations_equal_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = np.rint(x + rng.normal(size=40))  # ties
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert kendall(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize(("x", "y"), [([1, 2], [2, 1]), ([1, 1, 1, 1], [1, 2, 3, 4]), ([], [])])
def test_uncomputable_correlations_are_none(x, y):
    assert spearman(x, y) is None and kendall(x, y) is None and pearson(x, y) is None
    assert spearman_bootstrap_ci(x, y, resamples=10, rng=np.random.default_rng(0)) is None


def test_bootstrap_equals_a_plain_loop_and_is_reproducible():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y = x + y
    ci = spearman_bootstrap_ci(x, y, resamples=500, rng=np.random.default_rng(7))
    assert ci == spearman_bootstrap_ci(x, y, resamples=500, rng=np.random.default_rng(7)), (
        "same seed, same CI"
    )
    index = np.random.default_rng(7).integers(0, 30, size=(500, 30))
    loop = [stats.spearmanr(x[i], y[i]).statistic for i in index]
    assert ci == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])), abs=1e-9), (
        "scipy, one resample at a time"
    )
    assert ci[0] < spearman(x, y) < ci[1]


def test_icc_matches_shrout_fleiss_worked_example():
    single, average = icc2(SHROUT_FLEISS)
    assert single == pytest.approx(0.29, abs=0.005), "published ICC(2,1) = 0.29"
    assert average == pytest.approx(0.62, abs=0.005), "published ICC(2,4) = 0.62"


def test_icc_matches_pingouin_on_a_simulated_study():
    """pingouin 0.7 names Shrout-Fleiss ICC(2,1)/(2,k) by McGraw-Wong: ICC(A,1)/ICC(A,k)."""
    scores, _ = simulated_study(missing=0.0)
    overall = scores[scores.question == "overall"]
    matrix = overall.pivot(index="reconstruction", columns="reader", values="score").to_numpy(
        float
    )
    table = pingouin.intraclass_corr(
        overall, targets="reconstruction", raters="reader", ratings="score"
    ).set_index("Type")
    single, average = icc2(matrix)
    assert single == pytest.approx(table.loc["ICC(A,1)", "ICC"], abs=1e-4)
    assert average == pytest.approx(table.loc["ICC(A,k)", "ICC"], abs=1e-4)


def test_icc_with_a_cancelling_denominator_is_undefined_not_huge():
    # hypothesis found it: ICC(2,k)'s denominator MSR + (MSC - MSE)/n is 0 here, and
    # rounding left 1e-17 whose sign and size depended on the row order.
    matrix = np.array([[4.0, 3.0], [3.0, 4.0], [4.0, 2.0]])
    long = pd.DataFrame(
        [(unit, reader, matrix[unit, reader]) for unit in range(3) for reader in range(2)],
        columns=["unit", "reader", "score"],
    )
    table = pingouin.intraclass_corr(
        long, targets="unit", raters="reader", ratings="score"
    ).set_index("Type")
    for rows in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        single, average = icc2(matrix[rows])
        assert single == pytest.approx(table.loc["ICC(A,1)", "ICC"], abs=1e-4)
        assert average is None
    assert agreement_reasons(matrix) == {
        "icc2_k": "undefined: the variance components cancel (zero denominator)"
    }


def test_agreement_reasons_say_what_is_missing():
    matrix = np.array([[4.0, np.nan], [3.0, 3.0], [np.nan, 2.0]])
    reasons = agreement_reasons(matrix)
    assert reasons["icc2_1"] == reasons["icc2_k"]
    assert (
        reasons["icc2_1"] == "needs at least 2 reconstructions scored by every reader (1 so far)"
    )
    assert "krippendorff_alpha" in reasons
    assert agreement_reasons(SHROUT_FLEISS) == {}


def test_icc_uses_only_units_every_reader_scored():
    matrix = np.vstack([SHROUT_FLEISS, [[np.nan, 3, 3, 3]]])
    assert icc2(matrix) == icc2(SHROUT_FLEISS)


def test_krippendorff_worked_example_and_ordinal_call():
    """Krippendorff (2011), 4 observers x 12 units, nominal alpha = 0.743."""
    n = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
        ]
    )
    assert krippendorff_alpha(data.T, level="nominal") == pytest.approx(0.743, abs=0.001)
    import krippendorff

    assert krippendorff_alpha(data.T) == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"), abs=1e-12
    )


def test_reader_vs_rest_against_a_manual_computation():
    scores, _ = simulated_study()
    wide = scores[scores.question == "overall"].pivot(
        index="reconstruction", columns="reader", values="score"
    )
    result = reader_vs_rest(wide.to_numpy(float), list(wide.columns))
    own = wide["r2"]
    rest = wide.drop(columns="r2").mean(axis=1)
    usable = own.notna() & wide.drop(columns="r2").notna().any(axis=1)
    assert result["r2"] == pytest.approx(
        stats.spearmanr(own[usable], rest[usable]).statistic, abs=1e-12
    )
    assert result["mean"] == pytest.approx(np.mean([result[r] for r in ("r1", "r2", "r3", "r4")]))


def test_analyze_follows_the_contract():
    scores, metrics = simulated_study()
    result = analyze(scores, metrics, bootstrap=200, seed=3)
    assert result["n_readers"] == 4 and result["n_reconstructions"] == 60
    assert set(result["questions"]) == {"overall", "artifacts"}
    block = result["questions"]["overall"]
    dfd, noise = block["metrics"]["dfd"], block["metrics"]["noise"]
    assert (
        dfd["spearman"] < -0.5 and dfd["spearman_ci"][0] < dfd["spearman"] < dfd["spearman_ci"][1]
    )
    assert abs(noise["spearman"]) < 0.4
    mean_scores = scores[scores.question == "overall"].groupby("reconstruction").score.mean()
    values = metrics[metrics.metric == "dfd"].set_index("reconstruction").value
    assert dfd["spearman"] == pytest.approx(
        stats.spearmanr(values[mean_scores.index], mean_scores).statistic, abs=1e-12
    )
    assert set(dfd["per_reader"]) == {"r1", "r2", "r3", "r4"}
    agreement = block["agreement"]
    assert set(agreement) == {"icc2_1", "icc2_k", "krippendorff_alpha", "reader_vs_rest"}
    assert 0 < agreement["icc2_1"] < agreement["icc2_k"] < 1
    json.dumps(result)  # plain JSON types only
    assert result == analyze(scores, metrics, bootstrap=200, seed=3), "reproducible with a seed"


def test_analyze_invariant_to_row_order_and_reader_names():
    scores, metrics = simulated_study(seed=4)
    first = analyze(scores, metrics, bootstrap=50, seed=1)["questions"]["overall"]
    shuffled = scores.sample(frac=1, random_state=0).replace({"reader": {"r1": "z", "r2": "y"}})
    second = analyze(shuffled, metrics, bootstrap=50, seed=1)["questions"]["overall"]
    assert first["metrics"]["dfd"]["spearman"] == pytest.approx(
        second["metrics"]["dfd"]["spearman"]
    )
    assert first["agreement"]["icc2_1"] == pytest.approx(second["agreement"]["icc2_1"])
    assert first["agreement"]["krippendorff_alpha"] == pytest.approx(
        second["agreement"]["krippendorff_alpha"]
    )


def test_one_reader_and_a_constant_metric_give_nulls_not_crashes():
    scores, metrics = simulated_study(readers=("solo",))
    metrics.loc[metrics.metric == "noise", "value"] = 1.0
    result = analyze(scores, metrics, bootstrap=20)["questions"]["overall"]
    assert result["agreement"] == {
        "icc2_1": None,
        "icc2_k": None,
        "krippendorff_alpha": None,
        "reader_vs_rest": {},
    }
    assert (
        result["metrics"]["noise"]["spearman"] is None
        and result["metrics"]["noise"]["spearman_ci"] is None
    )
    assert result["metrics"]["dfd"]["spearman"] is not None


@pytest.mark.parametrize(
    ("scores", "metrics", "message"),
    [
        (
            pd.DataFrame({"reader": ["a"], "reconstruction": ["x"]}),
            pd.DataFrame({"reconstruction": ["x"], "metric": ["m"], "value": [1]}),
            "missing column(s) question, score",
        ),
        (
            pd.DataFrame(
                {"reader": ["a"], "reconstruction": ["x"], "question": ["q"], "score": ["good"]}
            ),
            pd.DataFrame({"reconstruction": ["x"], "metric": ["m"], "value": [1]}),
            "non-numeric score 'good'",
        ),
        (
            pd.DataFrame(
                {"reader": ["a"], "reconstruction": ["x"], "question": ["q"], "score": [3]}
            ),
            pd.DataFrame({"reconstruction": ["y"], "metric": ["m"], "value": [1]}),
            "no reconstruction appears in both",
        ),
    ],
)
def test_bad_input_raises_one_clear_error(scores, metrics, message):
    with pytest.raises(AnalysisInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        analyze(scores, metrics)
