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
    "metrics.benchmark",
    "metrics.dfd.encoders",
    "metrics.dfd.networks",
    "metrics.dfd.distances",
    "metrics.dfd.training",
    "metrics.stats.correlation",
    "metrics.stats.agreement",
    "metrics.stats.analysis",
    "fixtures.simulation",
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
