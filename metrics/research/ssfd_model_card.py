"""The model card written beside a trained SSFD encoder."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from metrics.dfd.weights import sha256_of
from metrics.research.ssfd_training import TrainingResult, format_interval


def write_model_card(weights: Path, result: TrainingResult, *, data: Path, n_slices: int) -> Path:
    """Write `<weights>.md`: data, split, recipe, seed, loss curve, evaluation and SHA-256."""
    losses = np.asarray(result.losses)
    checkpoints = sorted({0, *range(99, len(losses), 100), len(losses) - 1})
    curve = "\n".join(
        f"| {i + 1} | {losses[max(0, i - 19) : i + 1].mean():.4f} |" for i in checkpoints
    )
    config = asdict(result.config)
    evaluation = result.evaluation
    checks = cast(list[dict[str, Any]], evaluation.get("ordering_checks", []))
    table = checks_table(checks)
    overall = checks[0]["verdict"] if checks else "undetermined"
    verdict = {
        "better": "The trained encoder orders reconstructions better than the untrained one.",
        "worse": "**The trained encoder orders reconstructions worse than the untrained one.**",
    }.get(
        overall,
        "**No clear difference from the untrained encoder** on this criterion: the interval "
        "of the difference includes zero.",
    )
    card = weights.with_suffix(".md")
    card.write_text(f"""# Model card: `dfd-ssfd-local` ({weights.name})

An SSFD feature encoder (the contracting path of a UNet, channels 20-40-80-160-320) trained by
this project on real MR images, so that one in-domain deep feature distance works offline.
Produced by `python -m metrics train-ssfd --steps {config["steps"]} --seed {config["seed"]}`
(torch {torch.__version__}, CPU, {result.seconds:.0f} s).

- **Weights**: `{weights.name}`, SHA-256 `{sha256_of(weights)}`, in the published SSFD
  checkpoint layout (`{{"model_state_dict": ...}}`, the published encoder's parameter names).
- **Architecture and tap**: the published SSFD encoder as its authors corrected it
  (StanfordMIMI/deep-feature-mr-recon commit b3ce5d8, "correct SSFD layer"): the second
  convolution of every block weight-standardised; the distance taps `block4_relu1` (160
  channels, 1/8 resolution); MSE over space, mean over channels.
- **Data**: `{data.name}`: {n_slices} real T1 brain slices (256x256, 8-bit) from two subjects,
  pycortex S1 and Colin27, in three orientations (fixtures/PROVENANCE.md). **Held out**: the
  demo study's slices and every slice within 6 of them (fixtures/extract.py); no shoulder or
  abdomen image is used for training.
- **Recipe** (after Adamson et al., SSFD, NeurIPS 2021 workshop): inpainting; each slice
  z-scored as a whole (as the distance scales an image), then random
  {config["crop"]}x{config["crop"]} crops; {config["hidden_fraction"]:.0%} of the
  {config["patch"]}x{config["patch"]} patches hidden; symmetric UNet decoder; L2 loss on the whole
  crop; Adam, learning rate {config["learning_rate"]}, halved every {config["decay_every"]} steps;
  batch {config["batch_size"]}; {config["steps"]} steps; seed {config["seed"]}.
- **Evaluation** on the held-out demo slices: zero-filled reconstructions at 2, 3, 4, 6, 8
  and 12x with random and equispaced masks; Spearman of the distance with the acceleration,
  pooled over slices, for this encoder and for the same encoder untrained (seed
  {config["seed"]}). The interval of the difference (95 %) comes from resampling whole slices.
  {verdict} The pretext task's held-out L2 loss is
  {evaluation.get("inpainting_loss_trained", float("nan")):.4f} trained and
  {evaluation.get("inpainting_loss_untrained", float("nan")):.4f} untrained.

  Two yardsticks say how much this check can tell: NMSE's Spearman on the same reconstructions
  (pooled over slices nothing reaches 1, as the same acceleration costs one image more than
  another) and the range over untrained encoders of seeds {config["seed"]} to {config["seed"] + 4}
  (how far the initial weights alone move it).

{_indent(table)}

  `python -m metrics evaluate-ssfd --method cs-tv --record` runs the same check on
  compressed-sensing reconstructions (the demo study's kind) and records it below.
- **Limits**: two subjects, T1 brain only, magnitude 8-bit images, a few minutes of CPU
  training. It is a working in-domain control, not a replacement for the published SSFD
  (trained on fastMRI knee k-space reconstructions).

## Loss (mean of the last 20 steps)

| step | L2 loss |
|---|---|
{curve}
""")
    return card


LATER_CHECKS = "\n## Later checks\n"


def checks_table(checks: list[dict[str, Any]]) -> str:
    """A markdown table of OrderingCheck.as_dict() rows."""
    rows = "\n".join(
        f"| {c['group']} | {c['slices']} | {c['trained']:.3f} | {c['untrained']:.3f} | "
        f"{c['difference']:+.3f} | {format_interval(c['difference_interval'])} | {c['verdict']} | "
        f"{_value(c.get('nmse'))} | {_span(c.get('untrained_range'))} |"
        for c in checks
    )
    return (
        "| held-out slices | n | trained | untrained | difference | 95 % interval | verdict | "
        "NMSE | untrained, 5 seeds |\n|---|---|---|---|---|---|---|---|---|\n" + rows
    )


def record_later_checks(
    weights: Path, results: dict[str, list[dict[str, Any]]], *, seed: int, when: str
) -> Path:
    """Write `evaluate-ssfd`'s checks into the card beside `weights`, under "Later checks"
    (replacing an earlier such section: the card keeps one current record, git the rest)."""
    card = weights.with_suffix(".md")
    text = card.read_text() if card.exists() else f"# Model card: {weights.name}\n"
    text = text.split(LATER_CHECKS)[0].rstrip("\n") + "\n"
    sections = "\n\n".join(
        f"{method} reconstructions of the held-out demo slices:\n\n{checks_table(checks)}"
        for method, checks in results.items()
    )
    card.write_text(
        f"""{text}{LATER_CHECKS}
`python -m metrics evaluate-ssfd` on {when} (torch {torch.__version__}), these weights
(SHA-256 `{sha256_of(weights)}`) against the untrained encoder of seed {seed}: pooled
Spearman of the distance with the acceleration, 95 % interval of the difference from
resampling whole slices, NMSE and untrained encoders of five seeds as yardsticks. Zero-filled
as at training time; cs-tv and cs-l1-wavelet at 2, 3, 4, 6, 8 and 12x with random masks,
simulated and reconstructed as the demo study's are.

{sections}
"""
    )
    return card


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _span(span: tuple[float, float] | list[float] | None) -> str:
    return "n/a" if not span else f"{span[0]:.3f} to {span[1]:.3f}"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
