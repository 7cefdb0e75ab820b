"""`python -m metrics.benchmark` (`make bench-metrics`): metric throughput on real MR pairs.

In one run, on the same 320x320 pairs (the shipped real slices, resampled to 320x320, with
zero-filled reconstructions at 2-12x):

* the pixel suite (PSNR, SSIM, NMSE) batched in torch against a per-slice scikit-image + NumPy
  loop (fastMRI's evaluate.py way);
* each available DFD batched with the reference's features computed once per case, against
  per-pair unbatched calls that encode the reference every time;
* peak memory of a DFD run on few and on many pairs, in fresh processes (flat means bounded);
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
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from fixtures.images import load_slices
from fixtures.simulation import zero_filled_series
from metrics.dfd.distances import DeepFeatureDistance
from metrics.dfd.encoders import ENCODERS, default_weights_dir
from metrics.engine import available_metrics
from metrics.image import pixel_metrics_for_case, psnr_batch, ssim_batch

SIZE = 320
ACCELERATIONS = (2, 3, 4, 6, 8, 12)


def make_cases(
    reconstructions_per_case: int, cases: int, seed: int = 0
) -> list[tuple[np.ndarray, list[np.ndarray]]]:
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


def timed(function, repeat: int = 3) -> float:
    """Best of `repeat` wall-clock runs, in seconds (after one warm-up)."""
    function()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def pixel_loop(cases) -> None:
    for reference, recs in cases:
        for rec in recs:
            peak_signal_noise_ratio(reference, rec, data_range=reference.max())
            structural_similarity(reference, rec, data_range=reference.max())
            np.linalg.norm(reference - rec) ** 2 / np.linalg.norm(reference) ** 2


def pixel_batched(cases, device: str) -> None:
    for reference, recs in cases:
        pixel_metrics_for_case(reference, recs, device=device)


def dfd_batched(dfd: DeepFeatureDistance, cases) -> None:
    for reference, recs in cases:
        dfd.case_distances(reference, recs)


def dfd_per_pair(dfd: DeepFeatureDistance, cases) -> None:
    for reference, recs in cases:
        for rec in recs:
            dfd.pair_distances(reference[None], rec[None])


def report(label: str, pairs: int, seconds: float, baseline: float | None = None) -> dict:
    row = {
        "what": label,
        "pairs": pairs,
        "seconds": round(seconds, 4),
        "pairs_per_s": round(pairs / seconds, 1),
    }
    if baseline is not None:
        row["speed-up"] = round(baseline / seconds, 2)
    print(
        f"  {label:<58} {pairs / seconds:>10.1f} pairs/s"
        + (f"   x{baseline / seconds:.2f}" if baseline else "")
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_targets(device: str, rows: list, batch: int = 256, repeat: int = 3) -> None:
    """PSNR+SSIM with a DFD, all on the device, in large batches of 320x320 pairs.

    dfd-vgg16 runs on random weights of the right shape (its speed does not depend on them).
    """
    import torchvision

    from metrics.dfd.networks import VGG16_TAPS, tapped

    on_gpu = device.startswith("cuda")
    x = torch.rand(batch, SIZE, SIZE, device=device)
    y = (x + 0.05 * torch.randn_like(x)).clamp_min(0)
    peak = x.amax(dim=(1, 2))
    network = tapped(torchvision.models.vgg16(), VGG16_TAPS).to(device).eval()
    vgg = DeepFeatureDistance(
        ENCODERS["dfd-vgg16"],
        network.to(memory_format=torch.channels_last),
        {},
        device,
        batch_size=batch,
    )
    effnet = DeepFeatureDistance.load(
        ENCODERS["dfd-efficientnet-lite0"],
        weights_dir=default_weights_dir(),
        device=device,
        batch_size=batch,
    )
    for label, dfd in (("PSNR+SSIM+dfd-vgg16", vgg), ("PSNR+SSIM+dfd-efficientnet-lite0", effnet)):
        for precision in ("fp32", "fp16" if on_gpu else "bf16"):
            dfd.precision = precision

            def step(dfd=dfd):
                psnr_batch(x.double(), y.double(), peak.double())
                ssim_batch(x.double(), y.double(), peak.double())
                dfd.pair_distances_tensor(x, y)
                if on_gpu:
                    torch.cuda.synchronize()

            seconds = timed(step, repeat=repeat)
            rows.append(report(f"{label} ({precision}, batch {batch})", batch, seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", type=int, default=8, help="references (8 reconstructions each)")
    parser.add_argument("--dfd-cases", type=int, default=2)
    parser.add_argument("--memory-probe", nargs=2, metavar=("NAME", "PAIRS"))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--gpu-batch", type=int, default=256, help="pairs per batch in the GPU targets"
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
    rows: list[dict] = []
    cases = make_cases(8, args.cases)
    pairs = sum(len(r) for _, r in cases)
    print("pixel suite (PSNR + SSIM + NMSE)")
    loop = timed(lambda: pixel_loop(cases))
    rows.append(report("scikit-image + NumPy, one slice at a time", pairs, loop))
    rows.append(
        report(
            f"torch batched per case ({device})",
            pairs,
            timed(lambda: pixel_batched(cases, device)),
            loop,
        )
    )

    dfd_cases = make_cases(8, args.dfd_cases)
    dfd_pairs = sum(len(r) for _, r in dfd_cases)
    for name in available_metrics(default_weights_dir()):
        if name not in ENCODERS:
            continue
        print(name)
        plain = DeepFeatureDistance.load(
            ENCODERS[name], weights_dir=default_weights_dir(), device=device
        )
        plain.network.to(memory_format=torch.contiguous_format)
        plain.channels_last = False
        one = timed(lambda plain=plain: dfd_per_pair(plain, dfd_cases), repeat=1)
        rows.append(report("plain: per pair, NCHW fp32, reference every time", dfd_pairs, one))
        for precision in ("fp32", "bf16" if device == "cpu" else "fp16"):
            dfd = DeepFeatureDistance.load(
                ENCODERS[name],
                weights_dir=default_weights_dir(),
                device=device,
                precision=precision,
            )
            seconds = timed(lambda dfd=dfd: dfd_batched(dfd, dfd_cases), repeat=1)
            label = f"engine: batched, reference once per case, channels-last {precision}"
            rows.append(report(label, dfd_pairs, seconds, one))

    print("peak memory of dfd-resnet50-random, fresh process each (MiB)")
    for probe_pairs in (8, 64):
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "metrics.benchmark",
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
        gpu_targets(device, rows, batch=args.gpu_batch)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
