"""`python -m metrics.bench.metrics` (`make bench-metrics`): metric throughput on real MR pairs.

In one run, on the same 320x320 pairs (the shipped real slices, resampled to 320x320, with
zero-filled reconstructions at 2-12x):

* the pixel suite (PSNR, SSIM, NMSE) batched in torch against a per-slice scikit-image + NumPy
  loop (fastMRI's evaluate.py way);
* each available DFD batched with the reference's features computed once per case, against
  per-pair unbatched calls that encode the reference every time;
* peak memory of a DFD run on few and on many pairs, in fresh processes (flat means bounded);
* end to end as a user runs it: `python -m metrics compare` on a volume of real 320x320 slices
  (PSNR, SSIM, NMSE), start-up included, against a plain scikit-image loop in a fresh process;
* on a CUDA device, the same plus the issue's targets: PSNR+SSIM+dfd-vgg16 (any weights of the
  right shape) and PSNR+SSIM+dfd-efficientnet-lite0 in pairs per second.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from fixtures.images import load_slices
from fixtures.simulation import zero_filled_series
from metrics.bench.gpu_targets import gpu_targets
from metrics.bench.roofline import SIZE, ceilings_row, compute_bound, device_ceilings, native_bf16
from metrics.bench.timing import report, timed
from metrics.dfd.distances import DeepFeatureDistance, default_batch_size
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.weights import default_weights_dir, resolve_weights
from metrics.engine import available_metrics
from metrics.image import pixel_metrics_for_case

ACCELERATIONS = (2, 3, 4, 6, 8, 12)


# Each case: a reference and its reconstructions.
Cases = list[tuple[np.ndarray, list[np.ndarray]]]


def make_cases(reconstructions_per_case: int, cases: int, seed: int = 0) -> Cases:
    rng = np.random.default_rng(seed)
    slices = list(load_slices().values())
    out = []
    for index in range(cases):
        image = resize(
            slices[index % len(slices)].astype(np.float64), (SIZE, SIZE), anti_aliasing=True
        )
        image /= image.max()
        accelerations = tuple(
            ACCELERATIONS[r % len(ACCELERATIONS)] for r in range(reconstructions_per_case)
        )
        out.append((image, zero_filled_series(image, accelerations, rng=rng)))
    return out


# fastMRI's evaluate.py way, as a user would script it: the baseline of the end-to-end figure.
PLAIN_VOLUME_LOOP = """
import sys, numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
gt, pred = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
maxval = gt.max()
psnr = peak_signal_noise_ratio(gt, pred, data_range=maxval)
nmse = np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
ssim = np.mean([structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)])
print(psnr, ssim, nmse)
"""


def volume_end_to_end(slices: int, rows: list[dict[str, Any]], repeat: int = 2) -> None:
    """Seconds for `python -m metrics compare` on a (slices, 320, 320) volume pair, start-up
    and file reading included, against the plain loop in a fresh process: best of `repeat`."""
    import tempfile

    cases = make_cases(1, min(slices, 10))
    reference = np.stack([cases[i % len(cases)][0] for i in range(slices)]).astype(np.float32)
    reconstruction = np.stack([cases[i % len(cases)][1][0] for i in range(slices)])
    with tempfile.TemporaryDirectory() as folder:
        ref_path, rec_path = Path(folder) / "reference.npy", Path(folder) / "reconstruction.npy"
        np.save(ref_path, reference)
        np.save(rec_path, reconstruction.astype(np.float32))
        commands = {
            "plain scikit-image loop, fresh process": [sys.executable, "-c", PLAIN_VOLUME_LOOP],
            "python -m metrics compare": [sys.executable, "-m", "metrics", "compare"],
        }
        extra = {
            "python -m metrics compare": [
                "--metric",
                "psnr",
                "--metric",
                "ssim",
                "--metric",
                "nmse",
                "--json",
            ]
        }
        seconds = {}
        for label, command in commands.items():
            best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                subprocess.run(
                    [*command, str(ref_path), str(rec_path), *extra.get(label, [])],
                    check=True,
                    capture_output=True,
                )
                best = min(best, time.perf_counter() - started)
            seconds[label] = best
    loop = seconds["plain scikit-image loop, fresh process"]
    for label, value in seconds.items():
        rows.append(
            report(f"{label} ({slices} slices)", slices, value, None if value is loop else loop)
        )


def pixel_loop(cases: Cases) -> None:
    for reference, recs in cases:
        for rec in recs:
            peak_signal_noise_ratio(reference, rec, data_range=reference.max())
            structural_similarity(reference, rec, data_range=reference.max())
            np.linalg.norm(reference - rec) ** 2 / np.linalg.norm(reference) ** 2


def pixel_batched(cases: Cases, device: str) -> None:
    for reference, recs in cases:
        pixel_metrics_for_case(reference, recs, device=device)


def plain_dfd(name: str, device: str) -> DeepFeatureDistance:
    """The encoder as its builder makes it (eval mode, NCHW, batch norms unfolded, every
    layer computed), the way a per-pair script would use it."""
    spec = ENCODERS[name]
    network, calibration = spec.builder(resolve_weights(spec, default_weights_dir(), None))
    return DeepFeatureDistance(spec, network.to(device).eval(), calibration, device)


def dfd_batched(dfd: DeepFeatureDistance, cases: Cases) -> None:
    for reference, recs in cases:
        dfd.case_distances(reference, recs)


def dfd_per_pair(dfd: DeepFeatureDistance, cases: Cases) -> None:
    for reference, recs in cases:
        for rec in recs:
            dfd.pair_distances(reference[None], rec[None])


def dfd_values(dfd: DeepFeatureDistance, cases: Cases) -> np.ndarray:
    return np.array(
        [value for reference, recs in cases for value in dfd.case_distances(reference, recs)]
    )


def precision_cost(exact: np.ndarray, reduced: np.ndarray, *, label: str) -> dict[str, Any]:
    """What a reduced precision does to the values: how far they move, and whether they still
    rank the reconstructions alike (what a correlation with readers depends on)."""
    from scipy.stats import spearmanr

    relative = np.abs(reduced / exact - 1)
    row = {
        "what": label,
        "spearman": round(float(spearmanr(exact, reduced).statistic), 5),
        "median_relative_difference": float(np.median(relative)),
        "max_relative_difference": float(relative.max()),
    }
    print(
        f"  {label:<58} Spearman {row['spearman']:.4f}, relative difference median "
        f"{row['median_relative_difference']:.1e}, max {row['max_relative_difference']:.1e}"
    )
    return row


def memory_probe(name: str, pairs: int, device: str) -> float:
    """Peak memory (MiB) of a DFD run over `pairs` pairs in this process."""
    cases = make_cases(8, max(1, pairs // 8))
    dfd = DeepFeatureDistance.load(
        ENCODERS[name], weights_dir=default_weights_dir(), device=device
    )
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    dfd_batched(dfd, cases)
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident memory. Linux keeps ru_maxrss across exec, so a child
    started by a large parent reports the parent's size there; VmHWM belongs to this image."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


# The throughput targets (pairs/s at 320x320 on an H100), reported beside the figures.
def dfd_rows(
    name: str, device: str, dfd_cases: Cases, compile_too: bool, fp32_rate: float
) -> list[Any]:
    """One DFD against its plain per-pair use: the engine at each precision (and batch size
    and torch.compile where asked), the compute bound, and what the reduced precision costs."""
    rows: list[dict[str, Any]] = []
    dfd_pairs = sum(len(r) for _, r in dfd_cases)
    # Images encoded per pair: each case's reference once, then each reconstruction.
    images_per_pair = (dfd_pairs + len(dfd_cases)) / dfd_pairs
    print(name)
    plain = plain_dfd(name, device)
    one = timed(lambda: dfd_per_pair(plain, dfd_cases), repeat=2)
    label = "plain: the network as built, per pair, NCHW fp32, reference every time"
    rows.append(report(label, dfd_pairs, one))
    values = {}
    reduced = "bf16" if device == "cpu" else "fp16"
    # (precision, torch.compile, batch size); None is the device's default batch size,
    # and the engine at 2 and 16 slices per pass shows why the CPU default is smaller.
    variants: list[tuple[str, bool, int | None]] = [("fp32", False, None)]
    if native_bf16(device) or reduced != "bf16":
        variants.append((reduced, False, None))
    else:
        print("  bf16 skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX)")
    variants += [("fp32", False, size) for size in (2, 16) if default_batch_size(device) < size]
    variants += [("fp32", True, None)] if compile_too else []
    for precision, compiled, batch_size in variants:
        dfd = DeepFeatureDistance.load(
            ENCODERS[name],
            weights_dir=default_weights_dir(),
            device=device,
            precision=precision,
            compiled=compiled,
            batch_size=batch_size,
        )
        # timed() runs once untimed first: that is where torch.compile compiles.
        seconds = timed(partial(dfd_batched, dfd, dfd_cases), repeat=2)
        label = (
            f"engine: batches of {dfd.batch_size}, reference once per case, "
            f"channels-last {precision}"
        )
        label += ", torch.compile" if compiled else ""
        rows.append(report(label, dfd_pairs, seconds, one))
        if compiled or batch_size is not None:
            continue  # the values and the compute bound are the default engine's
        values[precision] = dfd_values(dfd, dfd_cases)
        if precision == "fp32":
            rows.append(compute_bound(dfd, dfd_pairs * images_per_pair / seconds, fp32_rate))
    if len(values) == 2:
        rows.append(precision_cost(*values.values(), label=f"{name}: {reduced} against fp32"))

    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", type=int, default=8, help="references (8 reconstructions each)")
    parser.add_argument("--dfd-cases", type=int, default=2)
    parser.add_argument("--memory-probe", nargs=2, metavar=("NAME", "PAIRS"))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--volume-slices",
        type=int,
        default=400,
        help="slices of the volume timed end to end through the command line (0: skip)",
    )
    parser.add_argument(
        "--gpu-batch", type=int, default=128, help="pairs per batch in the GPU targets"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time the DFDs (and the GPU targets) under torch.compile",
    )
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(memory_probe(args.memory_probe[0], int(args.memory_probe[1]), args.device))
        return 0

    device = args.device
    threads = torch.get_num_threads()
    print(
        f"device {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else f'{threads} CPU threads'}), "
        f"torch {torch.__version__}, {SIZE}x{SIZE} real MR pairs"
    )
    rows: list[dict[str, Any]] = []
    cases = make_cases(8, args.cases)
    pairs = sum(len(r) for _, r in cases)
    print("pixel suite (PSNR + SSIM + NMSE)")
    loop = timed(lambda: pixel_loop(cases))
    rows.append(report("scikit-image + NumPy, one slice at a time", pairs, loop))
    rows.append(
        report(
            f"engine, batched per case ({device}: {'torch' if device.startswith('cuda') else 'compiled CPU kernel'})",
            pairs,
            timed(lambda: pixel_batched(cases, device)),
            loop,
        )
    )

    if args.volume_slices:
        print(f"end to end, one {args.volume_slices}-slice volume (PSNR + SSIM + NMSE)")
        volume_end_to_end(args.volume_slices, rows)

    dfd_cases = make_cases(8, args.dfd_cases)
    ceilings = device_ceilings(device, size=8192 if device.startswith("cuda") else 2048)
    fp32_rate = ceilings["fp32_tflops"] * 1e12
    print(f"measured fp32 matrix rate: {fp32_rate / 1e9:.0f} GFLOP/s")
    rows.append(ceilings_row(ceilings))
    for name in available_metrics(default_weights_dir()):
        if name in ENCODERS:
            rows += dfd_rows(name, device, dfd_cases, args.compile, fp32_rate)

    print("peak memory of dfd-resnet50-random, fresh process each (MiB)")
    for probe_pairs in (8, 64):
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "metrics.bench.metrics",
                "--device",
                device,
                "--memory-probe",
                "dfd-resnet50-random",
                str(probe_pairs),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[-1]
        rows.append({"what": f"peak memory, {probe_pairs} pairs", "MiB": round(float(output), 1)})
        print(f"  {probe_pairs:>4} pairs: {float(output):8.1f} MiB")

    if device.startswith("cuda"):
        print("GPU targets (synthetic 320x320 batches, all on the device)")
        gpu_targets(device, rows, batch=args.gpu_batch, compiled=args.compile, ceilings=ceilings)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
