"""The dashboard's analysis beyond the contract: paired comparisons, the inter-reader baseline,
subgroups, the sample-size hint and reasons for nulls; and property tests of invariances."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from metrics.stats.analysis import AnalysisInputError, analyze, resample_rng
from metrics.stats.bootstrap import percentile_interval, resample_indices, two_sided_p
from tests.metrics.test_stats import simulated_study

B = 300
# The simulated study's metric names are not the registry's: give their directions.
POLARITIES = {"dfd": -1, "psnr": 1, "noise": 1}


def plain_resampled(x, y, indices):
    return np.array([stats.spearmanr(x[i], y[i]).statistic for i in indices])


@pytest.fixture(scope="module")
def study():
    scores, metrics = simulated_study(n_recon=50, missing=0.0, seed=11)
    names = sorted(scores.reconstruction.unique())
    groups = pd.DataFrame(
        {
            "reconstruction": names,
            "method": ["cs" if i % 2 else "zero-filled" for i in range(len(names))],
            "acceleration": [4 if i % 3 else 8 for i in range(len(names))],
        }
    )
    result = analyze(
        scores, metrics, bootstrap=B, seed=5, groups=groups, extended=True, polarities=POLARITIES
    )
    return scores, metrics, groups, result


def test_paired_comparison_equals_a_plain_loop_on_the_same_resamples(study):
    scores, metrics, _, result = study
    block = result["questions"]["overall"]
    wide = scores[scores.question == "overall"].pivot(
        index="reconstruction", columns="reader", values="score"
    )
    mean = wide.mean(axis=1).to_numpy()
    indices = resample_indices(len(wide), B, resample_rng(wide.index, 5))
    value = metrics.pivot(index="reconstruction", columns="metric", values="value").reindex(
        wide.index
    )
    rho = {m: plain_resampled(value[m].to_numpy(), mean, indices) for m in ("dfd", "psnr")}
    point = {m: stats.spearmanr(value[m], mean).statistic for m in rho}
    difference = -rho["dfd"] - rho["psnr"]  # aligned: polarity -1 for the distance, +1 for PSNR
    (comparison,) = [c for c in block["comparisons"] if {c["a"], c["b"]} == {"dfd", "psnr"}]
    assert comparison["a"] == "dfd", "pairs are sorted by name"
    assert comparison["difference"] == pytest.approx(-point["dfd"] - point["psnr"])
    assert comparison["ci"] == pytest.approx(list(percentile_interval(difference)), abs=1e-12)
    assert comparison["p"] == pytest.approx(two_sided_p(difference))
    assert block["metrics"]["dfd"]["spearman_ci"] == pytest.approx(
        list(percentile_interval(rho["dfd"])), abs=1e-12
    )
    assert len(block["comparisons"]) == 3, "every pair of the three metrics once"


def statsmodels_holm(p):
    """The independent reference: statsmodels' Holm (1979) step-down adjustment."""
    from statsmodels.stats.multitest import multipletests

    return multipletests(p, method="holm")[1]


def test_comparisons_are_holm_adjusted_within_each_family(study):
    block = study[3]["questions"]["overall"]
    for family in (block["comparisons"], list(block["versus_readers"].values())):
        raw = [entry["p"] for entry in family]
        assert [entry["p_holm"] for entry in family] == pytest.approx(statsmodels_holm(raw))
        assert all(e["p_holm"] >= e["p"] for e in family), "adjusting never lowers a p-value"


def test_metrics_against_the_inter_reader_baseline(study):
    scores, _, _, result = study
    block = result["questions"]["overall"]
    wide = scores[scores.question == "overall"].pivot(
        index="reconstruction", columns="reader", values="score"
    )
    indices = resample_indices(len(wide), B, resample_rng(wide.index, 5))
    matrix = wide.to_numpy(float)
    per_reader = [
        plain_resampled(matrix[:, j], np.delete(matrix, j, axis=1).mean(axis=1), indices)
        for j in range(matrix.shape[1])
    ]
    baseline = np.mean(per_reader, axis=0)
    assert block["baseline"]["mean"] == block["agreement"]["reader_vs_rest"]["mean"]
    assert block["baseline"]["ci"] == pytest.approx(list(percentile_interval(baseline)), abs=1e-12)
    noise = block["versus_readers"]["noise"]
    assert noise["difference"] < 0 and noise["ci"][1] < 0 and noise["p"] < 0.05, (
        "a metric of pure noise agrees with the readers far less than they agree"
    )


def test_results_per_method_and_per_acceleration(study):
    scores, metrics, groups, result = study
    block = result["questions"]["overall"]
    assert set(block["by_method"]) == {"cs", "zero-filled"}
    assert set(block["by_acceleration"]) == {"4", "8"}
    cs = groups[groups.method == "cs"].reconstruction
    mean = (
        scores[(scores.question == "overall") & scores.reconstruction.isin(cs)]
        .groupby("reconstruction")
        .score.mean()
    )
    dfd = metrics[metrics.metric == "dfd"].set_index("reconstruction").value[mean.index]
    row = block["by_method"]["cs"]["dfd"]
    assert row["n"] == len(cs)
    assert row["spearman"] == pytest.approx(stats.spearmanr(dfd, mean).statistic, abs=1e-12)
    assert row["spearman_ci"][0] < row["spearman"] < row["spearman_ci"][1]


def test_sample_size_hint_follows_the_widest_interval(study):
    _, _, _, result = study
    block = result["questions"]["overall"]
    hint = block["sample_size"]
    widths = {
        name: m["spearman_ci"][1] - m["spearman_ci"][0] for name, m in block["metrics"].items()
    }
    assert hint["widest_metric"] == max(widths, key=widths.get)
    assert hint["widest_ci_width"] == pytest.approx(max(widths.values()))
    expected = math.ceil(50 * (hint["widest_ci_width"] / 0.1) ** 2) - 50
    assert hint["additional_reconstructions"] == expected > 0


def test_nulls_carry_their_reason():
    scores, metrics = simulated_study(readers=("solo",), n_recon=30)
    metrics.loc[metrics.metric == "noise", "value"] = 2.0
    result = analyze(scores, metrics, bootstrap=20, extended=True)["questions"]["overall"]
    assert result["metrics"]["noise"]["reason"] == "the metric is constant"
    assert result["baseline"] == {
        "mean": None,
        "ci": None,
        "reason": "fewer than two readers overlap",
    }
    assert result["versus_readers"] == {}
    tiny_scores = scores[scores.reconstruction.isin(["rec0", "rec1"])]
    tiny = analyze(tiny_scores, metrics, bootstrap=20, extended=True)["questions"]["overall"]
    assert tiny["metrics"]["dfd"]["reason"] == "fewer than 3 reconstructions (2)"
    assert tiny["sample_size"] is None and tiny["comparisons"] == []


def test_groups_need_their_columns():
    scores, metrics = simulated_study(n_recon=10)
    with pytest.raises(AnalysisInputError, match="groups: missing column"):
        analyze(scores, metrics, groups=pd.DataFrame({"reconstruction": ["rec0"]}), extended=True)


def test_contract_output_has_only_the_contract_keys():
    scores, metrics = simulated_study(n_recon=20)
    result = analyze(scores, metrics, bootstrap=20, polarities={"psnr": 1})
    assert set(result) == {"n_readers", "n_reconstructions", "resampling", "questions"}
    assert result["resampling"] == "reconstructions", "no case column: reconstructions"
    block = result["questions"]["overall"]
    assert set(block) == {"metrics", "agreement"}
    contract = {
        "n", "spearman", "spearman_ci", "kendall", "pearson", "per_reader",
        "polarity", "aligned_spearman", "aligned_spearman_ci",
    }  # fmt: skip
    assert set(block["metrics"]["psnr"]) == contract
    unknown = block["metrics"]["dfd"]  # "dfd" is not a registry name (those start "dfd-")
    assert set(unknown) == contract | {"aligned_spearman_reason"}
    assert unknown["polarity"] is None and unknown["aligned_spearman"] is None
    assert "--polarity" in unknown["aligned_spearman_reason"]


def test_aligned_spearman_is_the_coefficient_in_the_metrics_own_direction():
    scores, metrics = simulated_study(n_recon=40, seed=3)
    renamed = metrics.replace({"metric": {"dfd": "dfd-vgg16"}})  # a registry name: polarity -1
    result = analyze(scores, renamed, bootstrap=50, extended=True)["questions"]["overall"]
    dfd, psnr = result["metrics"]["dfd-vgg16"], result["metrics"]["psnr"]
    assert dfd["polarity"] == -1 and psnr["polarity"] == 1
    assert dfd["aligned_spearman"] == pytest.approx(-dfd["spearman"])
    assert dfd["aligned_spearman_ci"] == pytest.approx(sorted(-c for c in dfd["spearman_ci"]))
    assert psnr["aligned_spearman_ci"] == pytest.approx(psnr["spearman_ci"])
    # A similarity that falls as quality rises runs against the readers: negative, last.
    flipped = renamed.assign(
        value=np.where(renamed.metric == "psnr", -renamed.value, renamed.value)
    )
    against = analyze(scores, flipped, bootstrap=50, extended=True)["questions"]["overall"]
    assert against["metrics"]["psnr"]["aligned_spearman"] < 0
    (pair,) = [c for c in against["comparisons"] if {c["a"], c["b"]} == {"dfd-vgg16", "psnr"}]
    assert pair["a"] == "dfd-vgg16" and pair["difference"] > 0, (
        "the distance that tracks the readers beats the similarity that runs against them"
    )
    assert against["versus_readers"]["psnr"]["difference"] < -1


# -- properties -----------------------------------------------------------------------------


@st.composite
def studies(draw):
    n_recon = draw(st.integers(3, 12))
    n_readers = draw(st.integers(1, 4))
    scores = []
    for reader in range(n_readers):
        for recon in range(n_recon):
            if draw(st.booleans()) or reader == 0:
                scores.append(
                    {
                        "reader": f"r{reader}",
                        "reconstruction": f"rec{recon}",
                        "question": "overall",
                        "score": draw(st.integers(1, 5)),
                    }
                )
    values = draw(
        # integers: the float transform below keeps distinct ones distinct
        st.lists(st.integers(-1000, 1000), min_size=n_recon, max_size=n_recon)
    )
    metrics = [
        {"reconstruction": f"rec{i}", "metric": "m", "value": v} for i, v in enumerate(values)
    ] + [{"reconstruction": f"rec{i}", "metric": "flat", "value": 1.0} for i in range(n_recon)]
    return pd.DataFrame(scores), pd.DataFrame(metrics)


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(studies(), st.randoms(use_true_random=False))
def test_invariant_to_row_order_and_reader_relabelling(study, random):
    scores, metrics = study
    first = analyze(scores, metrics, bootstrap=30, seed=2, extended=True)
    readers = sorted(scores.reader.unique())
    relabel = dict(zip(readers, random.sample(readers, len(readers)), strict=True))
    relabel = {old: f"x-{new}" for old, new in relabel.items()}
    shuffled = scores.sample(frac=1, random_state=random.randint(0, 1000)).assign(
        reader=lambda f: f.reader.map(relabel)
    )
    second = analyze(
        shuffled, metrics.sample(frac=1, random_state=1), bootstrap=30, seed=2, extended=True
    )
    a, b = first["questions"]["overall"], second["questions"]["overall"]
    for key in ("spearman", "spearman_ci", "kendall", "pearson"):
        assert a["metrics"]["m"][key] == pytest.approx(b["metrics"]["m"][key], abs=1e-12)
    for key in ("icc2_1", "icc2_k", "krippendorff_alpha"):
        assert a["agreement"][key] == pytest.approx(b["agreement"][key], abs=1e-12)
    assert a["baseline"]["ci"] == pytest.approx(b["baseline"]["ci"], abs=1e-12)
    renamed = {relabel[r]: v for r, v in a["metrics"]["m"]["per_reader"].items()}
    assert renamed == pytest.approx(b["metrics"]["m"]["per_reader"], abs=1e-12)


@PROPERTY
@given(studies())
def test_monotone_transforms_and_negation(study):
    """Spearman depends on ranks only; a distance is a negated similarity."""
    scores, metrics = study
    base = analyze(scores, metrics, bootstrap=30, seed=4)["questions"]["overall"]["metrics"]
    squashed = metrics.assign(value=np.arctan(metrics.value / 100) * 3 + 7)
    same = analyze(scores, squashed, bootstrap=30, seed=4)["questions"]["overall"]["metrics"]
    assert same["m"]["spearman"] == pytest.approx(base["m"]["spearman"], abs=1e-9)
    assert same["m"]["spearman_ci"] == pytest.approx(base["m"]["spearman_ci"], abs=1e-9)
    negated = metrics.assign(value=-metrics.value)
    flipped = analyze(scores, negated, bootstrap=30, seed=4)["questions"]["overall"]["metrics"]
    if base["m"]["spearman"] is None:
        assert flipped["m"]["spearman"] is None
    else:
        assert flipped["m"]["spearman"] == pytest.approx(-base["m"]["spearman"], abs=1e-9)
        low, high = base["m"]["spearman_ci"]
        assert flipped["m"]["spearman_ci"] == pytest.approx([-high, -low], abs=1e-9)
    assert base["flat"]["spearman"] is None, "a constant metric is null, never a crash"


def test_holm_equals_statsmodels_with_ties_and_missing_values():
    from metrics.stats.extended import holm

    p = [0.01, 0.04, None, 0.03, 0.04, 0.5, 0.001, 0.9]
    present = [value for value in p if value is not None]
    adjusted = holm(p)
    assert adjusted[2] is None
    assert [a for a in adjusted if a is not None] == pytest.approx(statsmodels_holm(present))
    assert holm([None, None]) == [None, None]


def test_accelerations_are_listed_by_value_not_as_text():
    rng = np.random.default_rng(3)
    labels = ["2x", "16x", "4x", "unknown"]
    names = [f"r{i}" for i in range(40)]
    groups = pd.DataFrame(
        {
            "reconstruction": names,
            "method": "zf",
            "acceleration": [labels[i % 4] for i in range(40)],
        }
    )
    scores = pd.DataFrame(
        [(reader, name, "q", int(rng.integers(1, 6))) for reader in ("a", "b") for name in names],
        columns=["reader", "reconstruction", "question", "score"],
    )
    metrics = pd.DataFrame(
        {"reconstruction": names, "metric": "psnr", "value": rng.normal(size=40)}
    )
    result = analyze(scores, metrics, bootstrap=20, groups=groups, extended=True)
    assert list(result["questions"]["q"]["by_acceleration"]) == ["2x", "4x", "16x", "unknown"]
