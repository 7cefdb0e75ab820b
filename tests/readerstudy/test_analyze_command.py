"""`manage.py analyze` as a user runs it (CONTRACTS.md section 3)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    result = run_on_files(tmp_path, "--bootstrap", "50", "--json", "--full")
    assert result.returncode == 0, result.stderr
    block = json.loads(result.stdout)["questions"]["overall"]
    assert {(c["a"], c["b"]) for c in block["comparisons"]} == {
        ("dfd", "noise"),
        ("dfd", "psnr"),
        ("noise", "psnr"),
    }
    assert set(block["by_method"]) == {"cs", "zf"} and set(block["by_acceleration"]) == {"4"}
    assert set(block["versus_readers"]) == {"dfd", "noise", "psnr"}
