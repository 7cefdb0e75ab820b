"""`manage.py analyze` as a user runs it (docs/interfaces.md section 5)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.metrics.test_stats import simulated_study

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    return subprocess.run(
        [sys.executable, "manage.py", "analyze", *map(str, args), "--settings", "tests.settings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_on_files(folder, *options):
    """analyze on FOLDER/scores.csv and FOLDER/metrics.csv."""
    return run("--scores", folder / "scores.csv", "--metrics", folder / "metrics.csv", *options)


def test_analyze_prints_the_contract_json(tmp_path):
    scores, metrics = simulated_study()
    scores.assign(study="s", extra="ignored").to_csv(tmp_path / "scores.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    result = run_on_files(tmp_path, "--bootstrap", "100", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["n_readers"] == 4 and set(data["questions"]) == {"overall", "artifacts"}
    assert len(data["questions"]["overall"]["metrics"]["psnr"]["spearman_ci"]) == 2


def test_analyze_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "scores.csv").write_text("reader,reconstruction,question\na,x,q\n")
    (tmp_path / "metrics.csv").write_text("reconstruction,metric,value\nx,m,1\n")
    result = run_on_files(tmp_path, "--json")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing column(s) score" in lines[0]
    missing = run(
        "--scores", tmp_path / "nope.csv", "--metrics", tmp_path / "metrics.csv", "--json"
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_analyze_full_adds_comparisons_and_groups(tmp_path):
    scores, metrics = simulated_study(n_recon=30)
    scores["method"] = np.where(scores.reconstruction.str[-1].isin(list("02468")), "cs", "zf")
    scores["acceleration"] = 4
    scores.to_csv(tmp_path / "scores.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    directions = ("--polarity", "dfd=-1", "--polarity", "noise=+1")  # not registry names
    result = run_on_files(tmp_path, "--bootstrap", "50", "--json", "--full", *directions)
    assert result.returncode == 0, result.stderr
    block = json.loads(result.stdout)["questions"]["overall"]
    assert {(c["a"], c["b"]) for c in block["comparisons"]} == {
        ("dfd", "noise"),
        ("dfd", "psnr"),
        ("noise", "psnr"),
    }
    assert set(block["by_method"]) == {"cs", "zf"} and set(block["by_acceleration"]) == {"4"}
    assert set(block["versus_readers"]) == {"dfd", "noise", "psnr"}


def test_analyze_resamples_cases_from_the_exports_case_column(tmp_path):
    scores, metrics = simulated_study(n_recon=30)
    scores["case"] = "case" + (scores.reconstruction.str[3:].astype(int) // 3).astype(str)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    with_cases = json.loads(run_on_files(tmp_path, "--bootstrap", "50", "--json").stdout)
    assert with_cases["resampling"] == "cases"
    scores.drop(columns="case").to_csv(tmp_path / "scores.csv", index=False)
    without = json.loads(run_on_files(tmp_path, "--bootstrap", "50", "--json").stdout)
    assert without["resampling"] == "reconstructions"
    a = with_cases["questions"]["overall"]["metrics"]["psnr"]
    b = without["questions"]["overall"]["metrics"]["psnr"]
    assert a["spearman"] == b["spearman"] and a["spearman_ci"] != b["spearman_ci"]


def test_analyze_polarity_option_is_checked(tmp_path):
    scores, metrics = simulated_study(n_recon=10)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    result = run_on_files(tmp_path, "--json", "--polarity", "dfd=down")
    assert result.returncode == 2 and "expected NAME=+1 or NAME=-1" in result.stderr
    given = json.loads(run_on_files(tmp_path, "--json", "--polarity", "dfd=-1").stdout)
    dfd = given["questions"]["overall"]["metrics"]["dfd"]
    assert dfd["polarity"] == -1 and dfd["aligned_spearman"] == -dfd["spearman"]


def test_an_infinite_psnr_gives_valid_json_ranked_first(tmp_path):
    """A fully sampled control is identical to its reference: PSNR is infinite."""
    scores, metrics = simulated_study(n_recon=20, missing=0.0)
    best = scores.groupby("reconstruction").score.mean().idxmax()
    metrics.loc[(metrics.metric == "psnr") & (metrics.reconstruction == best), "value"] = np.inf
    scores.to_csv(tmp_path / "scores.csv", index=False)
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    result = run_on_files(tmp_path, "--bootstrap", "50", "--json", "--full")
    assert result.returncode == 0, result.stderr
    assert "NaN" not in result.stdout and "Infinity" not in result.stdout
    psnr = json.loads(result.stdout)["questions"]["overall"]["metrics"]["psnr"]
    assert psnr["pearson"] is None, "Pearson is undefined with an infinite value"
    finite = metrics[metrics.metric == "psnr"].set_index("reconstruction").value
    mean = scores[scores.question == "overall"].groupby("reconstruction").score.mean()
    from scipy import stats

    # an infinite value ranks above every finite one: as a value larger than all of them
    stand_in = finite.replace(np.inf, finite[np.isfinite(finite)].max() + 1)
    assert psnr["spearman"] == pytest.approx(stats.spearmanr(stand_in[mean.index], mean).statistic)
    assert psnr["kendall"] is not None and psnr["spearman_ci"] is not None
