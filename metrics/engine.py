"""One engine for every caller (command line, Celery worker, benchmark): pick metrics, load
encoders once, compute many reconstructions of one reference at a time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metrics.dfd.encoders import ENCODERS
from metrics.dfd.weights import (
    WeightsChecksumError,
    WeightsUnavailableError,
    availability,
    weights_version,
)
from metrics.image import (
    PIXEL_METRICS,
    PIXEL_METRICS_VERSION,
    SSIM_WINDOW,
    MetricInputError,
    pixel_metrics_or_errors,
)
from metrics.reference_suite import (
    REFERENCE_SUITE,
    REFERENCE_SUITE_VERSION,
    reference_suite_for_case,
)
from metrics.vif import MIN_SIDE as VIF_MIN_SIDE

if TYPE_CHECKING:
    from metrics.dfd.distances import DeepFeatureDistance

ALL_METRICS = (*PIXEL_METRICS, *REFERENCE_SUITE, *ENCODERS)


def available_metrics(weights_dir: Path, wanted: list[str] | None = None) -> list[str]:
    """Pixel metrics, HFEN, VIF and NQM, and every DFD whose weights are here (or only those
    of `wanted`)."""
    names = [n for n in ALL_METRICS if wanted is None or n in wanted]
    return [n for n in names if n not in ENCODERS or availability(ENCODERS[n], weights_dir)[0]]


def minimum_side(name: str) -> int:
    """The smallest image side (in-plane, pixels) on which `name` is defined: SSIM's window
    for the pixel metrics, HFEN and NQM (one shared input check), VIF's 4-scale pyramid, and
    each encoder's declared minimum."""
    if name == "vif":
        return VIF_MIN_SIDE
    if name in ENCODERS:
        return ENCODERS[name].min_side
    return SSIM_WINDOW


def too_small(names: list[str], shape: Sequence[int]) -> dict[str, str]:
    """{metric: why} for each of `names` that an image of `shape` is too small for, known
    before anything runs (the importer warns, the engine stores it as that metric's failure)."""
    side = min(shape[-2:]) if len(shape) >= 2 else 0
    height, width = (shape[-2], shape[-1]) if len(shape) >= 2 else (0, 0)
    return {
        name: (
            f"{name}: images of {height} x {width} pixels are too small (it needs at least "
            f"{minimum_side(name)} x {minimum_side(name)})"
        )
        for name in names
        if side < minimum_side(name)
    }


def metric_version(name: str, precision: str = "fp32", weights_dir: Path | None = None) -> str:
    """The version stored with a value: conventions, weights, and a reduced precision if any.
    Only the DFD encoders run at a reduced precision; the other metrics are float64 always.
    With `weights_dir`, a user-supplied weights file without a registered checksum adds its
    own hash (`weights_version`)."""
    if name in PIXEL_METRICS:
        return PIXEL_METRICS_VERSION
    if name in REFERENCE_SUITE:
        return REFERENCE_SUITE_VERSION
    version = weights_version(ENCODERS[name], weights_dir)
    return version if precision == "fp32" else f"{version}+{precision}"


@lru_cache(maxsize=8)
def cached_encoder(
    name: str,
    weights_dir: Path,
    device: str,
    batch_size: int | None,
    precision: str = "fp32",
    compiled: bool = False,
) -> DeepFeatureDistance:
    """An encoder loaded (and compiled) once per worker process and reused for every task."""
    from metrics.dfd.distances import DeepFeatureDistance

    return DeepFeatureDistance.load(
        ENCODERS[name],
        weights_dir=weights_dir,
        device=device,
        batch_size=batch_size,
        precision=precision,
        compiled=compiled,
    )


class MetricEngine:
    """Computes the named metrics for many reconstructions of one reference."""

    def __init__(
        self,
        names: list[str],
        *,
        weights_dir: Path,
        device: str = "cpu",
        batch_size: int | None = None,
        overrides: dict[str, Path] | None = None,
        precision: str = "fp32",
        compiled: bool = False,
        tolerate_load_errors: bool = False,
    ):
        """With `tolerate_load_errors` (workers), an encoder that cannot be loaded (missing
        or corrupt weights) becomes that metric's error for every reconstruction, and every
        other metric is still computed; otherwise its error is raised (the command line)."""
        overrides = overrides or {}
        self.precision = precision
        self.names = list(names)
        self.device = device
        self.compiled = compiled
        self.load_errors: dict[str, Exception] = {}
        self.dfds = {}
        for name in self.names:
            if name not in ENCODERS:
                continue
            try:
                self.dfds[name] = self._load(name, weights_dir, batch_size, overrides.get(name))
            except (WeightsUnavailableError, WeightsChecksumError) as error:
                if not tolerate_load_errors:
                    raise
                self.load_errors[name] = error

    def _load(
        self, name: str, weights_dir: Path, batch_size: int | None, override: Path | None
    ) -> DeepFeatureDistance:
        """A researcher's own checkpoint loads afresh; a registered encoder once per process."""
        if override is None:
            return cached_encoder(
                name, weights_dir, self.device, batch_size, self.precision, self.compiled
            )
        from metrics.dfd.distances import DeepFeatureDistance

        return DeepFeatureDistance.load(
            ENCODERS[name],
            weights_dir=weights_dir,
            device=self.device,
            batch_size=batch_size,
            override=override,
            precision=self.precision,
            compiled=self.compiled,
        )

    def by_metric(
        self, reference: np.ndarray, reconstructions: list[np.ndarray]
    ) -> dict[str, Sequence[float | Exception]]:
        """{metric: one value or error per reconstruction}; the reference is encoded once."""
        results: dict[str, Sequence[float | Exception]] = {}
        count = len(reconstructions)
        for name, reason in too_small(self.names, reference.shape).items():
            results[name] = [MetricInputError(reason)] * count
        pixel = [n for n in self.names if n in PIXEL_METRICS and n not in results]
        if pixel:
            rows = _isolated(
                "the pixel metrics",
                count,
                lambda: pixel_metrics_or_errors(
                    reference, reconstructions, device=self.device, compiled=self.compiled
                ),
            )
            for name in pixel:
                results[name] = [r if isinstance(r, Exception) else r[name] for r in rows]
        for name in (n for n in self.names if n in REFERENCE_SUITE and n not in results):
            results[name] = _isolated(
                name, count, partial(_suite_metric, name, reference, reconstructions)
            )
        for name, dfd in self.dfds.items():
            if name in results:
                continue
            results[name] = _isolated(
                name, count, partial(dfd.case_distances, reference, reconstructions)
            )
        for name, error in self.load_errors.items():
            results[name] = [error] * len(reconstructions)
        return {name: results[name] for name in self.names}

    def rows(
        self, reference: np.ndarray, reconstructions: list[np.ndarray]
    ) -> list[dict[str, Any] | Exception]:
        """Per reconstruction: {metric: value}, or the first error any metric met."""
        by_metric = self.by_metric(reference, reconstructions)
        rows: list[dict[str, Any] | Exception] = []
        for index in range(len(reconstructions)):
            values = {name: by_metric[name][index] for name in self.names}
            error = next((v for v in values.values() if isinstance(v, Exception)), None)
            rows.append(error or values)
        return rows


def _suite_metric(
    name: str, reference: np.ndarray, reconstructions: list[np.ndarray]
) -> Sequence[float | Exception]:
    return reference_suite_for_case(reference, reconstructions, [name])[name]


# What numeric code raises where a metric meets an image it cannot handle (VIF's steerable
# pyramid on a 64 x 64 slice, a decomposition that does not converge, a tensor too large).
_COMPUTATION_ERRORS = (ValueError, ArithmeticError, IndexError, RuntimeError)


def _isolated(name: str, count: int, compute: Callable[[], Sequence[Any]]) -> Sequence[Any]:
    """`compute()`, or, if it raises, that metric's failure for each of the case's `count`
    reconstructions: one metric failing on one case costs that metric there, not the case's
    other metrics."""
    try:
        return compute()
    except _COMPUTATION_ERRORS as error:
        failure = MetricInputError(
            f"{name}: cannot be computed on this image ({type(error).__name__}: {error})"
        )
        return [failure] * count
