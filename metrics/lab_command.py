"""`python -m metrics lab REFERENCES...`: the metric lab on the command line (metrics/lab.py).

Every metric on every perturbed copy of each reference; prints per metric its monotonicity per
perturbation, its noise onset and saturation and its shift-to-noise ratio; `--json` writes the
whole result, `--plot` the curves (PNG or SVG).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fixtures.perturbations import DEFAULT_KINDS, PERTURBATIONS

PLOT_SUFFIXES = (".png", ".svg")


def cmd_lab(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from metrics.cli import UsageError, build_engine, parse_weight_overrides, select_metrics
    from metrics.io import load_image
    from metrics.lab import plot, run_lab, unusable_reference

    if args.levels < 2:
        raise UsageError(f"--levels must be at least 2, got {args.levels}")
    if args.plot is not None and args.plot.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {args.plot}: the file must end in .png or .svg")
    for output in (args.json, args.plot):
        # Checked before a run of minutes or hours, not when its result is written.
        if output is not None and not output.parent.is_dir():
            raise UsageError(f"{output}: no folder {output.parent} to write it into")
    kinds = args.perturbation or list(DEFAULT_KINDS)
    references = []
    for path in args.references:
        image = load_image(Path(path), max_voxels=args.max_voxels)
        reason = unusable_reference(image)
        if reason:
            raise UsageError(f"{path}: the image {reason}")
        references.append(image)
    overrides = parse_weight_overrides(args.weights)
    names = select_metrics(args.metric, args.weights_dir, overrides)
    engine = build_engine(names, args, overrides)
    print(
        f"metric lab: {len(references)} reference(s) x {len(kinds)} perturbation(s) x "
        f"{args.levels} levels, {len(names)} metric(s) on {engine.device}",
        file=sys.stderr,
    )
    with tqdm(
        total=len(references), unit="reference", disable=not sys.stderr.isatty(), file=sys.stderr
    ) as bar:
        result = run_lab(
            references,
            engine,
            kinds=kinds,
            levels=args.levels,
            seed=args.seed,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    print_summary(result)
    for name, error in result["errors"].items():
        print(f"note: {name} failed on some copies: {error}", file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, allow_nan=False))
    if args.plot is not None:
        plot(result, str(args.plot))
    print(f"{result['seconds']} s", file=sys.stderr)
    return 0


def _cell(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_summary(result: dict[str, Any]) -> None:
    kinds = result["kinds"]
    header = ["metric", *(f"mono:{k}" for k in kinds)]
    with_noise = "noise" in kinds
    if with_noise:
        header += ["noise onset", "saturation", "decades"]
    if with_noise and "translation" in kinds:
        header.append("shift/noise")
    rows = []
    for name in result["metrics"]:
        entry = result["summary"][name]
        if entry["polarity"] is None:
            rows.append([name, *(["-"] * (len(header) - 1))])
            continue
        row = [name, *(_cell(entry["monotonicity"][k]) for k in kinds)]
        if with_noise:
            row += [
                _cell(entry["noise_onset"], 3),
                _cell(entry["noise_saturation"], 3),
                _cell(entry["dynamic_range_decades"]),
            ]
        if "shift_to_noise" in entry:
            row.append(_cell(entry["shift_to_noise"]["median"]))
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    p = sub.add_parser(
        "lab",
        parents=parents,
        help="how every metric responds to graded k-space degradations of your references",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("references", nargs="+", help="reference images or volumes (as `compare`)")
    p.add_argument(
        "--perturbation",
        action="append",
        choices=list(PERTURBATIONS),
        metavar="KIND",
        help=f"one of {', '.join(PERTURBATIONS)}; repeatable (default: {', '.join(DEFAULT_KINDS)})",
    )
    p.add_argument("--levels", type=int, default=10, help="severities per perturbation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="write the whole result here")
    p.add_argument("--plot", type=Path, help="draw the curves here (.png or .svg)")
    p.set_defaults(run=cmd_lab)
