"""`python -m metrics train-ssfd` and `evaluate-ssfd`: train this project's SSFD encoder and
check it against untrained ones on the held-out demo slices (docs/ssfd-local.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from metrics.dfd.networks import SSFDEncoder

from fixtures.simulation import RECONSTRUCTORS
from metrics.cli import UsageError
from metrics.dfd.weights import LOCAL_WEIGHTS_DIR, sha256_of

TRAINING_STEPS_DEFAULT = 800

# Untrained encoders of these further seeds show how far the initial weights alone move the
# ordering check: a trained encoder's lead smaller than that spread means little.
YARDSTICK_SEED_OFFSETS = (1, 2, 3, 4)
ORDERING_HEADER = (
    "held-out demo slices, pooled Spearman(distance, acceleration), trained against "
    "untrained (95 % interval of the difference, slices resampled) [yardsticks: NMSE on "
    "the same reconstructions; untrained encoders of five seeds]"
)


def ordering_checks(encoder: SSFDEncoder, seed: int, method: str = "zero-filled") -> list[Any]:
    """The trained-against-untrained ordering check on the held-out demo slices, with the
    untrained encoder of `seed` (where training started) and of four more seeds."""
    from fixtures.images import load_slices, slice_sources
    from metrics.research.ssfd_training import acceleration_checks, anatomy_groups, untrained_model

    held_out = load_slices()  # the demo slices, never seen in training
    return acceleration_checks(
        encoder,
        untrained_model(seed).encoder,
        held_out,
        anatomy_groups(held_out, slice_sources()),
        other_untrained=[
            untrained_model(seed + offset).encoder for offset in YARDSTICK_SEED_OFFSETS
        ],
        method=method,
    )


def cmd_train_ssfd(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fixtures.images import load_slices
    from metrics.research.ssfd_model_card import write_model_card
    from metrics.research.ssfd_training import (
        TrainingConfig,
        inpainting_loss,
        save_encoder,
        train_ssfd,
        untrained_model,
    )

    images = np.load(args.data)["images"]
    config = TrainingConfig(steps=args.steps, seed=args.seed)
    with tqdm(
        total=config.steps, unit="step", disable=not sys.stderr.isatty(), file=sys.stderr
    ) as bar:

        def progress(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        model, result = train_ssfd(images, config, progress=progress)
    checks = ordering_checks(model.encoder, config.seed)
    held_out = list(load_slices().values())
    untrained = untrained_model(config.seed)
    result.evaluation = {
        "spearman_trained": checks[0].trained,
        "spearman_untrained": checks[0].untrained,
        "ordering_checks": [check.as_dict() for check in checks],
        "inpainting_loss_trained": inpainting_loss(model, held_out, config),
        "inpainting_loss_untrained": inpainting_loss(untrained, held_out, config),
    }
    save_encoder(model.encoder, result, args.out)
    card = write_model_card(args.out, result, data=args.data, n_slices=len(images))
    evaluation = result.evaluation
    print(
        f"trained {config.steps} steps in {result.seconds:.0f} s; "
        f"final loss {result.losses[-1]:.4f}\n{ORDERING_HEADER}:"
    )
    for check in checks:
        print(f"  {check.describe()}")
    print(
        f"held-out inpainting L2 loss: trained {evaluation['inpainting_loss_trained']:.4f}, "
        f"untrained {evaluation['inpainting_loss_untrained']:.4f}\n"
        f"weights: {args.out} (SHA-256 {sha256_of(args.out)})\nmodel card: {card}"
    )
    return 0


def cmd_evaluate_ssfd(args: argparse.Namespace) -> int:
    """The ordering check of a trained SSFD encoder (by default the shipped dfd-ssfd-local),
    on zero-filled or compressed-sensing reconstructions of the held-out demo slices."""
    import torch

    from metrics.dfd.networks import SSFDEncoder

    try:
        checkpoint = torch.load(args.weights, map_location="cpu", weights_only=True)
        encoder = SSFDEncoder()
        encoder.load_state_dict(checkpoint["model_state_dict"])
    except FileNotFoundError:
        raise UsageError(f"{args.weights}: no such file") from None
    except Exception as error:  # torch's unpickling and state-dict errors have no common base
        raise UsageError(
            f"{args.weights}: not an SSFD checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]})"
        ) from None
    seed = args.seed if args.seed is not None else checkpoint.get("training", {}).get("seed", 0)
    print(
        f"{args.weights} (SHA-256 {sha256_of(args.weights)}); untrained seed {seed}\n"
        f"{ORDERING_HEADER}:"
    )
    results = {}
    for method in args.method or ["zero-filled"]:
        checks = ordering_checks(encoder.eval(), seed, method)
        results[method] = [check.as_dict() for check in checks]
        print(f"  {method} reconstructions:")
        for check in checks:
            print(f"    {check.describe()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.record:
        import datetime

        from metrics.research.ssfd_model_card import record_later_checks

        card = record_later_checks(
            args.weights, results, seed=seed, when=datetime.date.today().isoformat()
        )
        print(f"recorded in {card}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The research commands, on the command line's subparsers."""
    p = sub.add_parser("train-ssfd", help="train this project's SSFD encoder (dfd-ssfd-local)")
    p.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "fixtures/data/training_slices.npz",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="where to write the checkpoint (and its model card beside it); the shipped "
        f"weights, {LOCAL_WEIGHTS_DIR / 'ssfd-local.pt'}, change only when named here",
    )
    p.add_argument("--steps", type=int, default=TRAINING_STEPS_DEFAULT)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=cmd_train_ssfd)

    p = sub.add_parser(
        "evaluate-ssfd",
        help="does a trained SSFD encoder order held-out reconstructions by acceleration "
        "better than untrained ones?",
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=LOCAL_WEIGHTS_DIR / "ssfd-local.pt",
        help="SSFD checkpoint (default: the shipped dfd-ssfd-local weights)",
    )
    p.add_argument(
        "--method",
        action="append",
        choices=tuple(RECONSTRUCTORS),
        help="reconstructions to order (repeatable; default zero-filled)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="untrained seed (default: the checkpoint's)"
    )
    p.add_argument("--json", type=Path, help="also write the checks to this file")
    p.add_argument(
        "--record", action="store_true", help="write the checks into the weights' model card"
    )
    p.set_defaults(run=cmd_evaluate_ssfd)
