"""The metric lab: how each metric responds to graded k-space degradations of real references.

Pure (no Django): `run_lab` perturbs each reference at every severity of every kind
(fixtures.perturbations), scores all the copies of one reference in one batch of the metric
engine (the workers' engine, on the GPU where there is one), and `summarise` reads the
curves: does the metric get monotonically worse as the image does, over which noise levels
does it respond, and does it punish a shift a reader would not notice as much as noise?

Every figure is *aligned*: a metric's "badness" is -polarity x value (polarity +1 where a
higher value is better), so that for every metric larger means worse.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from fixtures.perturbations import DEFAULT_KINDS, PERTURBATIONS
from metrics.image import nmse
from metrics.polarity import registry_polarity

# A metric "moves" once its change reaches this share of its whole response to the noise sweep.
JND_FRACTION = 0.05
SATURATION_FRACTION = 0.95

Progress = Callable[[int, int], None]


def unusable_reference(image: np.ndarray) -> str | None:
    """Why the lab cannot degrade `image`, or None: a constant image (a blank slice) stays
    constant under every perturbation, and the perturbed copies are magnitudes, so a reference
    with negative values (a real part, a background-subtracted map) would differ from its own
    copies at severity zero."""
    if not np.ptp(image) > 0:
        return "is constant: there is nothing to perturb"
    if float(image.min()) < 0:
        return "has negative values: the lab degrades magnitude images (take the magnitude)"
    return None


def perturbed_copies(
    reference: np.ndarray,
    kind: str,
    severities: Sequence[float] | np.ndarray,
    seed: Sequence[int] | np.ndarray,
) -> list[np.ndarray]:
    """One copy of `reference` per severity, each from a generator seeded the same way (one
    realisation, scaled)."""
    apply = PERTURBATIONS[kind].apply
    return [apply(reference, float(s), np.random.default_rng(list(seed))) for s in severities]


# How far the matched noise may go: below it no metric moves, above it the image is noise.
MATCHED_NOISE_RANGE = (1e-5, 30.0)


def matched_noise(
    reference: np.ndarray, target_nmse: float, seed: Sequence[int] | np.ndarray
) -> tuple[float, np.ndarray] | None:
    """The noise severity whose copy of `reference` (the noise sweep's own realisation,
    scaled) has NMSE `target_nmse`, solved to 1e-9 in log severity, and that copy; None
    where no severity in MATCHED_NOISE_RANGE reaches it.

    The shift-to-noise ratio compares a shift with noise of the same NMSE. Interpolating
    between the sweep's levels (4x apart in NMSE) read the NMSE metric itself at 0.85, where
    it is 1 by construction, and moved other metrics by up to 15 % (issue 32)."""
    from scipy.optimize import brentq

    if not np.isfinite(target_nmse) or target_nmse <= 0:
        return None
    apply = PERTURBATIONS["noise"].apply

    def copy_at(log_std: float) -> np.ndarray:
        return apply(reference, math.exp(log_std), np.random.default_rng(list(seed)))

    def excess(log_std: float) -> float:
        return math.log(nmse(reference, copy_at(log_std)) / target_nmse)

    low, high = (math.log(bound) for bound in MATCHED_NOISE_RANGE)
    if excess(low) > 0 or excess(high) < 0:
        return None
    log_std = brentq(excess, low, high, xtol=1e-9, rtol=1e-12)
    return math.exp(log_std), copy_at(log_std)


def run_lab(
    references: Sequence[np.ndarray],
    engine: Any,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    levels: int = 10,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every metric of `engine` (a metrics.engine.MetricEngine) on every perturbed copy.

    Returns the JSON-ready result: the severity scales, NMSE and raw values per reference and
    level, normalised mean curves and the summary (see `summarise`). Raises ValueError for an
    unknown kind or fewer than 2 levels.
    """
    unknown = [kind for kind in kinds if kind not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"unknown perturbation {unknown[0]!r}; known: {', '.join(PERTURBATIONS)}")
    if not references:
        raise ValueError("the lab needs at least one reference")
    for index, reference in enumerate(references):
        reason = unusable_reference(reference)
        if reason:
            raise ValueError(f"reference {index + 1} {reason}")
    kinds = list(dict.fromkeys(kinds))
    severities = {kind: PERTURBATIONS[kind].severities(levels) for kind in kinds}
    names = list(engine.names)
    values: dict[str, dict[str, list[list[float | None]]]] = {
        name: {kind: [] for kind in kinds} for name in names
    }
    errors: dict[str, str] = {}
    nmse_of: dict[str, list[list[float | None]]] = {kind: [] for kind in kinds}
    # Noise of exactly each translation's NMSE, for the shift-to-noise ratio.
    matching = "noise" in kinds and "translation" in kinds
    matched: dict[str, Any] = {"severities": [], "values": {name: [] for name in names}}
    started = time.perf_counter()
    for index, reference in enumerate(references):
        # One stream per reference and kind: adding a kind leaves the others' draws alone.
        streams = np.random.SeedSequence([seed, index]).spawn(len(kinds))
        copies = {
            kind: perturbed_copies(reference, kind, severities[kind], stream.generate_state(4))
            for kind, stream in zip(kinds, streams, strict=True)
        }
        batch = [copy for kind in kinds for copy in copies[kind]]
        for kind in kinds:
            nmse_of[kind].append([_finite(nmse(reference, copy)) for copy in copies[kind]])
        matches: list[tuple[float, np.ndarray] | None] = []
        if matching:
            noise_seed = streams[kinds.index("noise")].generate_state(4)
            matches = [
                matched_noise(reference, target, noise_seed) if target is not None else None
                for target in nmse_of["translation"][-1]
            ]
            matched["severities"].append([m[0] if m else None for m in matches])
            batch += [m[1] for m in matches if m is not None]
        by_metric = engine.by_metric(reference, batch)
        for name in names:
            results = list(by_metric[name])
            for value in results:
                if isinstance(value, Exception):
                    errors.setdefault(name, str(value))
            for position, kind in enumerate(kinds):
                row = results[position * levels : (position + 1) * levels]
                values[name][kind].append(
                    [None if isinstance(v, Exception) else _finite(v) for v in row]
                )
            if matching:
                found = iter(results[len(kinds) * levels :])
                matched["values"][name].append(
                    [_value(next(found)) if m is not None else None for m in matches]
                )
        if progress is not None:
            progress(index + 1, len(references))
    result = {
        "references": len(references),
        "levels": levels,
        "seed": seed,
        "metrics": names,
        # The order to show them in: a JSON object's keys keep no order in PostgreSQL's jsonb.
        "kinds": kinds,
        "jnd_fraction": JND_FRACTION,
        "perturbations": {
            kind: {
                "unit": PERTURBATIONS[kind].unit,
                "meaning": PERTURBATIONS[kind].meaning,
                "logarithmic": PERTURBATIONS[kind].logarithmic,
                "severities": [float(s) for s in severities[kind]],
                "nmse": nmse_of[kind],
            }
            for kind in kinds
        },
        "values": values,
        "errors": errors,
    }
    if matching:
        result["matched_noise"] = matched
    result["curves"], result["normalisation"] = normalised_curves(result)
    result["summary"] = summarise(result)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _value(value: Any) -> float | None:
    return None if isinstance(value, Exception) else _finite(value)


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _badness(
    name: str, by_kind: dict[str, list[list[float | None]]]
) -> dict[str, np.ndarray] | None:
    """Per kind, references x levels of -polarity x value (NaN where missing); None for a
    metric without a polarity."""
    polarity = registry_polarity(name)
    if polarity is None:
        return None
    return {
        kind: -polarity * np.array([[np.nan if v is None else v for v in row] for row in rows])
        for kind, rows in by_kind.items()
    }


def normalised_curves(result: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Mean aligned curves on a common scale, per metric and kind.

    With noise in the lab, 0 is the metric at the mildest noise and 1 at the strongest, per
    reference, then averaged: the other kinds read as "as bad as this much noise". Without
    noise, 0 and 1 are the metric's least and most bad mean over every kind and level.
    """
    curves: dict[str, dict[str, list[float | None]]] = {}
    with_noise = "noise" in result["perturbations"]
    for name in result["metrics"]:
        matched = (
            {"matched_noise": result["matched_noise"]["values"][name]}
            if ("matched_noise" in result)
            else {}
        )
        bad = _badness(name, {**result["values"][name], **matched})
        if bad is None:
            curves[name] = {kind: [None] * result["levels"] for kind in result["values"][name]}
            continue
        if with_noise:
            low, high = bad["noise"][:, :1], bad["noise"][:, -1:]
            span = np.where(np.abs(high - low) > 0, high - low, np.nan)
            scaled = {kind: (b - low) / span for kind, b in bad.items()}
            means = {kind: _nanmean_rows(s) for kind, s in scaled.items()}
        else:
            raw = {kind: _nanmean_rows(b) for kind, b in bad.items()}
            pooled = np.array([v for m in raw.values() for v in m if v is not None])
            least, most = (float(pooled.min()), float(pooled.max())) if pooled.size else (0, 0)
            means = {
                kind: [
                    None if v is None or most == least else (v - least) / (most - least) for v in m
                ]
                for kind, m in raw.items()
            }
        curves[name] = means
    if with_noise:
        return curves, "0 = the metric at the mildest noise, 1 = at the strongest (per reference)"
    return curves, "0 = the metric's least bad mean, 1 = its worst, over every perturbation"


def _nanmean_rows(matrix: np.ndarray) -> list[float | None]:
    out = []
    for column in matrix.T:
        finite = column[np.isfinite(column)]
        out.append(float(finite.mean()) if finite.size else None)
    return out


def aligned_monotonicity(severities: Sequence[float], badness: np.ndarray) -> float | None:
    """Mean over references of Spearman's rho between severity and the metric's badness: +1 when
    it gets worse at every step, 0 when it does not follow, negative when it improves."""
    rhos = []
    for row in badness:
        keep = np.isfinite(row)
        if keep.sum() >= 3 and np.ptp(row[keep]) > 0:
            rhos.append(spearmanr(np.asarray(severities)[keep], row[keep]).statistic)
    return float(np.mean(rhos)) if rhos else None


def noise_response_range(
    severities: Sequence[float], badness: np.ndarray
) -> tuple[float | None, float | None]:
    """(onset, saturation): the first noise severity at which the mean change from the mildest
    level reaches JND_FRACTION of the sweep's whole change, and SATURATION_FRACTION of it;
    saturation is None ("not reached") where only the strongest level reaches it."""
    change = np.nanmean(badness - badness[:, :1], axis=0)
    total = change[-1]
    if not np.isfinite(total) or total <= 0:
        return None, None

    def first(fraction: float) -> float | None:
        reached = np.flatnonzero(change >= fraction * total)
        return float(severities[reached[0]]) if reached.size else None

    # Reached first at the strongest level, the 95 % says only that the sweep ended there:
    # the metric was still rising, so it has not saturated within the sweep.
    saturation = first(SATURATION_FRACTION)
    return first(JND_FRACTION), None if saturation == float(severities[-1]) else saturation


def shift_to_noise(
    result: dict[str, Any], badness: dict[str, np.ndarray], matched: np.ndarray
) -> dict[str, Any]:
    """The metric's response to each translation over its response to noise of exactly the
    same NMSE (`matched`: references x levels, its badness on `matched_noise`'s copies),
    both measured from the mildest noise level: 1 means a shift counts as much as noise of
    equal pixel error, below 1 that the metric forgives a shift. Median over references;
    null where no noise matches or where the matched noise has not moved the metric by a
    just-noticeable amount (JND_FRACTION of its whole response to the noise sweep)."""
    noise_bad, shift_bad = badness["noise"], badness["translation"]
    per_level: list[list[float]] = [[] for _ in range(shift_bad.shape[1])]
    for ref in range(shift_bad.shape[0]):
        base = noise_bad[ref, 0]
        jnd = JND_FRACTION * (noise_bad[ref, -1] - base)
        for level in range(shift_bad.shape[1]):
            expected = matched[ref, level] - base
            observed = shift_bad[ref, level] - base
            if np.isfinite(expected) and np.isfinite(observed) and expected > jnd:
                per_level[level].append(float(observed / expected))
    medians = [float(np.median(v)) if v else None for v in per_level]
    pooled = [r for v in per_level for r in v]
    return {"by_level": medians, "median": float(np.median(pooled)) if pooled else None}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per metric: polarity, monotonicity per kind, the noise onset and saturation (and the
    decades between them), and the shift-to-noise ratio."""
    summary = {}
    kinds = result["perturbations"]
    for name in result["metrics"]:
        polarity = registry_polarity(name)
        entry: dict[str, Any] = {"polarity": polarity}
        matched = (
            {"matched_noise": result["matched_noise"]["values"][name]}
            if ("matched_noise" in result)
            else {}
        )
        bad = _badness(name, {**result["values"][name], **matched})
        if bad is None:
            entry["reason"] = "unknown polarity: no direction to align with"
            summary[name] = entry
            continue
        entry["monotonicity"] = {
            kind: aligned_monotonicity(kinds[kind]["severities"], bad[kind]) for kind in kinds
        }
        if "noise" in kinds:
            onset, saturation = noise_response_range(kinds["noise"]["severities"], bad["noise"])
            entry["noise_onset"], entry["noise_saturation"] = onset, saturation
            if onset is not None and saturation is None:
                entry["noise_saturation_reason"] = (
                    "not reached: still rising at the strongest noise"
                )
            entry["dynamic_range_decades"] = (
                round(math.log10(saturation / onset), 3) if onset and saturation else None
            )
        if "matched_noise" in bad:
            entry["shift_to_noise"] = shift_to_noise(result, bad, bad["matched_noise"])
        summary[name] = entry
    return summary


def plot(result: dict[str, Any], path: str) -> None:
    """Small multiples (one per perturbation, one line per metric, the normalised curves), as
    PNG or SVG by the file's suffix."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import NullFormatter

    kinds = result["kinds"]
    figure, axes = pyplot.subplots(
        1, len(kinds), figsize=(3.2 * len(kinds), 3.2), sharey=True, squeeze=False
    )
    for axis, kind in zip(axes[0], kinds, strict=True):
        scale = result["perturbations"][kind]
        for name in result["metrics"]:
            curve = result["curves"][name][kind]
            y = [np.nan if v is None else v for v in curve]
            axis.plot(scale["severities"], y, marker=".", label=name)
        if scale["logarithmic"]:
            axis.set_xscale("log")
            axis.xaxis.set_minor_formatter(NullFormatter())  # overlapping labels otherwise
        axis.set_title(kind)
        axis.set_xlabel(scale["unit"])
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("badness (normalised)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8)
    figure.suptitle(
        f"Metric lab: {result['references']} reference(s), {result['levels']} levels. "
        f"{result['normalisation']}",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0.12 + 0.04 * (len(labels) // 5), 1, 0.93))
    figure.savefig(path)
    pyplot.close(figure)
