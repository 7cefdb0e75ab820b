"""The metrics benchmark's code paths run (figures are printed by `make bench-metrics`)."""

import json

from metrics import benchmark


def test_benchmark_cases_are_real_320_pairs():
    cases = benchmark.make_cases(reconstructions_per_case=3, cases=2)
    assert len(cases) == 2 and all(len(recs) == 3 for _, recs in cases)
    reference, recs = cases[0]
    assert reference.shape == (320, 320) and reference.max() == 1.0
    assert all(rec.shape == (320, 320) for rec in recs)


def test_gpu_target_path_runs_on_whatever_device_is_here():
    rows = []
    benchmark.gpu_targets("cpu", rows, batch=2, repeat=1)
    assert [row["what"].split(" (")[0] for row in rows] == [
        "PSNR+SSIM+dfd-vgg16",
        "PSNR+SSIM+dfd-vgg16",
        "PSNR+SSIM+dfd-efficientnet-lite0",
        "PSNR+SSIM+dfd-efficientnet-lite0",
    ]
    assert all(row["pairs_per_s"] > 0 for row in rows)


def test_memory_probe_reports_mebibytes():
    assert 50 < benchmark.memory_probe("dfd-resnet50-random", 8, "cpu") < 20_000


def test_main_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark, "available_metrics", lambda weights_dir: ["psnr"])
    out = tmp_path / "bench.json"
    assert benchmark.main(["--cases", "1", "--dfd-cases", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["what"].startswith("scikit-image") and "speed-up" in rows[1]
    assert any("peak memory" in row["what"] for row in rows)
