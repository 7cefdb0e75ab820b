"""The reference study's later baseline metrics, HFEN, VIF and NQM, for many reconstructions
of one reference: the engine's entry point to `metrics.hfen`, `metrics.vif`, `metrics.nqm`.

CPU only, in NumPy and SciPy (pyrtools for VIF's pyramid): each is a few FFTs or filters per
slice, a small share of a DFD's work, and the study's code runs them on the CPU too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from metrics.hfen import hfen
from metrics.image import MetricInputError
from metrics.nqm import nqm
from metrics.vif import vif_for_case

REFERENCE_SUITE = ("hfen", "vif", "nqm")
# StanfordMIMI/deep-feature-mr-recon HEAD 924eb9e; bump when a recipe here changes.
REFERENCE_SUITE_VERSION = "dfd-mr-recon-924eb9e-1"


def reference_suite_for_case(
    reference: np.ndarray, reconstructions: list[np.ndarray], names: list[str]
) -> dict[str, list[float | MetricInputError]]:
    """{metric: one value or error per reconstruction} for the named metrics of the suite.

    A pair that cannot be compared (shape, NaN) or on which a metric is undefined yields its
    error; the other reconstructions and metrics are still computed.
    """
    results: dict[str, list[float | MetricInputError]] = {}
    for name in names:
        if name == "vif":  # the reference's model is built once for the case
            results[name] = vif_for_case(reference, reconstructions)
        else:
            function = {"hfen": hfen, "nqm": nqm}[name]
            results[name] = [_value_or_error(function, reference, p) for p in reconstructions]
    return results


def _value_or_error(
    function: Callable[[np.ndarray, np.ndarray], float], reference: np.ndarray, pred: np.ndarray
) -> float | MetricInputError:
    try:
        return function(reference, pred)
    except MetricInputError as error:
        return error
