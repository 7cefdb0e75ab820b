"""The pure cores import in a fresh interpreter without Django or Celery."""

import subprocess
import sys

import pytest

CORES = [
    "metrics.image",
    "metrics.io",
    "metrics.device",
    "metrics.engine",
    "metrics.cli",
    "metrics.bench.metrics",
    "metrics.dfd.encoders",
    "metrics.dfd.weights",
    "metrics.dfd.builders",
    "metrics.dfd.networks",
    "metrics.dfd.distances",
    "metrics.research.ssfd_training",
    "metrics.stats.correlation",
    "metrics.stats.agreement",
    "metrics.stats.analysis",
    "metrics.stats.rank_kernel",
    "fixtures.simulation",
    "fixtures.perturbations",
    "metrics.lab",
    "metrics.lab_command",
    "fixtures.images",
    "fixtures.demo",
]


@pytest.mark.parametrize("module", CORES)
def test_core_module_imports_no_django_or_celery(module):
    code = (
        f"import sys, {module}; "
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'kombu')); "
        "print(','.join(leaked)); sys.exit(1 if leaked else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": ""}
    )
    assert result.returncode == 0, f"{module} pulls in {result.stdout.strip() or result.stderr}"


def test_pixel_metrics_from_the_command_line_import_no_torch(tmp_path):
    """`compare` with pixel metrics only runs on the CPU kernel: torch's import alone took
    longer than a plain scikit-image loop spends on a 400-slice volume."""
    import numpy as np

    rng = np.random.default_rng(0)
    reference = rng.random((2, 32, 32))
    np.save(tmp_path / "a.npy", reference)
    np.save(tmp_path / "b.npy", reference + 0.01 * rng.random((2, 32, 32)))
    code = (
        "import sys; from metrics.cli import main; "
        f"status = main(['compare', r'{tmp_path / 'a.npy'}', r'{tmp_path / 'b.npy'}', "
        "'--metric', 'psnr', '--metric', 'ssim', '--metric', 'nmse', '--metric', 'hfen']); "
        "print('torch' in sys.modules); sys.exit(status)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
