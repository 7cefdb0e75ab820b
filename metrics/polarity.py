"""Which way each metric points: +1 where a higher value means a better image, -1 where lower.

Pure and import-light (no torch), so the statistics engine and `manage.py analyze` can ask it
without loading the metric engine. docs/metrics.md: lower is better for NMSE, HFEN and
every deep feature distance (names starting `dfd-`); higher for PSNR, SSIM, VIF and NQM.
"""

from __future__ import annotations

HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "vif", "nqm"})
LOWER_IS_BETTER = frozenset({"nmse", "hfen"})
DFD_PREFIX = "dfd-"


def registry_polarity(name: str) -> int | None:
    """+1 or -1 for a metric the registry knows by name, None for any other."""
    if name in HIGHER_IS_BETTER:
        return 1
    if name in LOWER_IS_BETTER or name.startswith(DFD_PREFIX):
        return -1
    return None


def parse_polarity(text: str) -> tuple[str, int]:
    """`NAME=+1` or `NAME=-1` (as `--polarity` takes it) -> (name, sign).

    Raises:
        ValueError: anything else, with the accepted form in the message.
    """
    name, sep, sign = text.partition("=")
    sign = sign.strip()
    if not sep or not name.strip() or sign not in {"+1", "1", "-1"}:
        raise ValueError(f"--polarity {text!r}: expected NAME=+1 or NAME=-1")
    return name.strip(), -1 if sign == "-1" else 1
