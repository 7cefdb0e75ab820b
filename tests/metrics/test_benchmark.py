"""The metrics benchmark's code paths run (figures are printed by `make bench-metrics`)."""

import json

import numpy as np

from metrics.bench import metrics as benchmark
from metrics.bench.gpu_targets import GPU_TARGETS, gpu_targets
from metrics.bench.roofline import native_bf16


def test_benchmark_cases_are_real_320_pairs():
    cases = benchmark.make_cases(reconstructions_per_case=3, cases=2)
    assert len(cases) == 2 and all(len(recs) == 3 for _, recs in cases)
    reference, recs = cases[0]
    assert reference.shape == (320, 320) and reference.max() == 1.0
    assert all(rec.shape == (320, 320) for rec in recs)


def test_gpu_target_path_runs_on_whatever_device_is_here():
    rows = []
    gpu_targets("cpu", rows, batch=1, repeat=1)
    ceilings = rows[0]
    assert ceilings["what"] == "device ceilings" and ceilings["copy_gb_per_s"] > 0
    targets = [row for row in rows if "target_h100" in row]
    precisions = ("bf16", "fp32") if native_bf16("cpu") else ("fp32",)
    assert [row["what"] for row in targets] == [
        f"{label} ({precision}, batch 1)" for label in GPU_TARGETS for precision in precisions
    ]
    encoders = [row for row in rows if "encoder only" in row["what"]]
    assert len(encoders) == 2 * len(precisions) and all(
        row["of_measured_matrix_rate"] > 0 and row["tflops"] >= 0 for row in encoders
    ), "each encoder's rate is set against the matrix rate measured in the same run"
    assert all(row["pairs_per_s"] > 0 for row in rows[1:])


def test_memory_probe_reports_mebibytes():
    assert 50 < benchmark.memory_probe("dfd-resnet50-random", 8, "cpu") < 20_000


def test_memory_probe_in_a_child_is_not_its_parents_size():
    import subprocess
    import sys

    ballast = bytearray(1500 * 2**20)  # a large parent, as the benchmark is by then
    ballast[::4096] = b"x" * len(ballast[::4096])
    code = "from metrics.bench.metrics import peak_rss_mib; print(peak_rss_mib())"
    parent = benchmark.peak_rss_mib()
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    del ballast
    assert float(child.stdout) < parent - 1000, "the child's peak is its own, not the parent's"


def test_main_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(
        benchmark, "available_metrics", lambda weights_dir: ["psnr", "dfd-ssfd-local"]
    )
    out = tmp_path / "bench.json"
    # The volume timing has its own test; here it would add four 400-slice runs.
    arguments = ["--cases", "1", "--dfd-cases", "1", "--compile", "--volume-slices", "0"]
    arguments += ["--json", str(out)]
    assert benchmark.main(arguments) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["what"].startswith("scikit-image") and "speed-up" in rows[1]
    assert any("peak memory" in row["what"] for row in rows)
    assert any(row["what"].endswith("fp32, torch.compile") for row in rows)
    for size in (1, 2, 16):
        assert any(row["what"].startswith(f"engine: batches of {size},") for row in rows), (
            "on a CPU the engine is timed at 2 and 16 slices per pass beside its default, 1"
        )
    (bound,) = [row for row in rows if "against the measured matrix rate" in row["what"]]
    assert bound["gflop_per_image"] > 1 and 0 < bound["of_measured_matrix_rate"] < 2
    costs = [row for row in rows if row["what"] == "dfd-ssfd-local: bf16 against fp32"]
    if native_bf16("cpu"):  # elsewhere bf16 is emulated, and skipped
        (cost,) = costs
        assert 0.9 < cost["spearman"] <= 1 and 0 < cost["median_relative_difference"] < 0.05
    else:
        assert not costs


def test_precision_cost_of_identical_values_is_nothing():
    values = np.array([0.1, 0.3, 0.2, 0.5])
    cost = benchmark.precision_cost(values, values.copy(), label="same")
    assert cost["spearman"] == 1 and cost["max_relative_difference"] == 0


def test_volume_end_to_end_times_the_command_against_the_plain_loop():
    """bench-metrics' end-to-end figure runs both programs on the same volume (a small one
    here: a test that it works, not a timing)."""
    from metrics.bench.metrics import volume_end_to_end

    rows = []
    volume_end_to_end(3, rows, repeat=1)
    assert [row["what"] for row in rows] == [
        "plain scikit-image loop, fresh process (3 slices)",
        "python -m metrics compare (3 slices)",
    ]
    assert "speed-up" in rows[1] and rows[0]["seconds"] > 0
