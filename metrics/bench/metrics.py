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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from fixtures.images import load_slices
from fixtures.simulation import zero_filled_series
from metrics.dfd.distances import DeepFeatureDistance, default_batch_size
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.weights import default_weights_dir, resolve_weights
from metrics.engine import available_metrics
from metrics.image import pixel_metrics_for_case
from metrics.pixel_torch import pixel_maths, pixel_values

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


def volume_end_to_end(slices: int, rows: list[dict], repeat: int = 2) -> None:
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


def plain_dfd(name: str, device: str) -> DeepFeatureDistance:
    """The encoder as its builder makes it (eval mode, NCHW, batch norms unfolded, every
    layer computed), the way a per-pair script would use it."""
    spec = ENCODERS[name]
    network, calibration = spec.builder(resolve_weights(spec, default_weights_dir(), None))
    return DeepFeatureDistance(spec, network.to(device).eval(), calibration, device)


def dfd_batched(dfd: DeepFeatureDistance, cases) -> None:
    for reference, recs in cases:
        dfd.case_distances(reference, recs)


def dfd_per_pair(dfd: DeepFeatureDistance, cases) -> None:
    for reference, recs in cases:
        for rec in recs:
            dfd.pair_distances(reference[None], rec[None])


def dfd_values(dfd: DeepFeatureDistance, cases) -> np.ndarray:
    return np.array(
        [value for reference, recs in cases for value in dfd.case_distances(reference, recs)]
    )


def compute_bound(dfd: DeepFeatureDistance, images_per_s: float, matrix_rate: float) -> dict:
    """How close the fp32 engine runs to the device's measured fp32 matrix rate. Near it, only
    less work helps: encoding each reference once saves at most 2 / (1 + 1/n) for n
    reconstructions per reference (16/9 for 8)."""
    flops = flops_per_image(dfd.network, dfd.device)
    rate = flops * images_per_s
    row = {
        "what": f"{dfd.spec.name}: fp32 engine against the measured matrix rate",
        "gflop_per_image": round(flops / 1e9, 2),
        "gflop_per_s": round(rate / 1e9, 1),
        "of_measured_matrix_rate": round(rate / matrix_rate, 3),
    }
    print(
        f"  {dfd.spec.name}: {flops / 1e9:.1f} GFLOP per image; fp32 engine at "
        f"{rate / 1e9:.0f} GFLOP/s = {rate / matrix_rate:.0%} of the measured matrix rate"
    )
    return row


def precision_cost(exact: np.ndarray, reduced: np.ndarray, *, label: str) -> dict:
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


def report(label: str, pairs: int, seconds: float, baseline: float | None = None) -> dict:
    row = {
        "what": label,
        "pairs": pairs,
        "seconds": round(seconds, 4),
        "pairs_per_s": float(f"{pairs / seconds:.3g}"),
    }
    if baseline is not None:
        row["speed-up"] = round(baseline / seconds, 2)
    print(
        f"  {label:<78} {pairs / seconds:>10.1f} pairs/s"
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
GPU_TARGETS = {"PSNR+SSIM+dfd-vgg16": 2_000, "PSNR+SSIM+dfd-efficientnet-lite0": 10_000}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def native_bf16(device: str) -> bool:
    """Whether bf16 arithmetic runs on hardware here: every CUDA GPU the engine supports, and
    a CPU with AVX-512 BF16 or AMX. Elsewhere torch emulates it at about 1 GFLOP/s, which
    would turn a benchmark of minutes into hours (and measure nothing a user would run)."""
    if device.startswith("cuda"):
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def device_ceilings(device: str, size: int = 8192) -> dict[str, float]:
    """This device's measured limits, in this run: dense matrix rates and copy bandwidth.

    Achieved rates are compared with these rather than with a datasheet, which assumes boost
    clocks and shapes that no convolution network has.
    """
    ceilings = {}
    kinds = [("bf16", torch.bfloat16, False), ("fp32", torch.float32, False)]
    if device.startswith("cuda"):
        kinds.append(("tf32", torch.float32, True))
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    for label, dtype, tf32 in kinds:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        # Grow the matrices until one product takes a measurable while: a CPU without native
        # bf16 (no AVX-512 BF16 or AMX) multiplies bf16 at about 1 GFLOP/s, where an 8192^3
        # product would take half an hour.
        side = min(256, size)
        while True:
            a = torch.randn(side, side, device=device, dtype=dtype)
            b = torch.randn(side, side, device=device, dtype=dtype)

            def product(a=a, b=b):
                a @ b
                synchronize(device)

            seconds = timed(product, repeat=5 if side == size else 1)
            if side >= size or seconds > 0.2:
                break
            side *= 2
        ceilings[f"{label}_tflops"] = 2 * side**3 / seconds / 1e12
    torch.backends.cuda.matmul.allow_tf32 = tf32_before
    source = torch.empty(2**28, device=device)  # 1 GiB of float32
    target = torch.empty_like(source)

    def copy():
        target.copy_(source)
        synchronize(device)

    ceilings["copy_gb_per_s"] = 2 * source.numel() * 4 / timed(copy, repeat=5) / 1e9
    return ceilings


def ceilings_row(ceilings: dict[str, float]) -> dict:
    return {"what": "device ceilings", **{k: round(v, 3) for k, v in ceilings.items()}}


def probe_image(network: torch.nn.Module, device: str, size: int) -> torch.Tensor:
    """One blank size x size image with as many channels as the network's first layer takes."""
    channels = next(network.parameters()).shape[1]
    return torch.zeros(1, channels, size, size, device=device)


def flops_per_image(network: torch.nn.Module, device: str, size: int = SIZE) -> float:
    """Floating-point operations of one forward pass on a 3-channel size x size image."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(probe_image(network, device, size))
    return float(counter.get_total_flops())


def activation_elements_per_image(network: torch.nn.Module, device: str, size: int = SIZE) -> int:
    """Elements written by the network's leaf layers for one image: each is written once and
    read at least once, so 2 x this x element size is the least memory traffic of a pass."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    leaves = [m for m in network.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.inference_mode():
            network(probe_image(network, device, size))
    finally:
        for handle in handles:
            handle.remove()
    return total


def gpu_targets(
    device: str,
    rows: list,
    batch: int = 128,
    repeat: int = 3,
    compiled: bool = False,
    precisions: tuple[str, ...] | None = None,
    ceilings: dict[str, float] | None = None,
) -> None:
    """PSNR+SSIM with a DFD, all on the device, in large batches of 320x320 pairs.

    For each DFD and precision, three stages are timed so that the figures say where the time
    goes: the encoder alone (both images of each pair), the DFD (encoder and distance), and the
    issue's target (PSNR + SSIM in float64, then the DFD). Rates are compared with the device's
    measured matrix rate. dfd-vgg16 runs on random weights of the right shape (its speed does not
    depend on them). With `compiled`, the target is timed again with the network and the distance
    compiled by torch.compile (fused kernels), in half precision, and on a GPU the pixel maths
    fused too, as the engine does.
    """
    import torchvision

    from metrics.dfd.networks import VGG16_TAPS, tapped

    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.backends.cudnn.benchmark = True
    if ceilings is None:  # main() has measured them already
        ceilings = device_ceilings(device, size=8192 if on_gpu else 512)
        rows.append(ceilings_row(ceilings))
    print(
        f"  measured: {ceilings['bf16_tflops']:.0f} TFLOP/s bf16 and "
        f"{ceilings['fp32_tflops']:.0f} fp32 matrix products"
        + (f" ({ceilings['tf32_tflops']:.0f} with TF32), " if "tf32_tflops" in ceilings else ", ")
        + f"{ceilings['copy_gb_per_s']:.0f} GB/s device copy"
    )
    x = torch.rand(batch, SIZE, SIZE, device=device)
    y = (x + 0.05 * torch.randn_like(x)).clamp_min(0)
    peak = x.amax(dim=(1, 2))
    # Each pair as a one-slice volume with its own reference, as the engine's pixel maths takes it.
    x64, y64, peak64 = x.double()[:, None], y.double()[:, None], peak.double()

    def target_step(
        dfd: DeepFeatureDistance | None, pixel: Callable = pixel_values
    ) -> Callable[[], None]:
        """The issue's target: the engine's PSNR, SSIM (and NMSE) in float64, then the DFD (if
        any) of each pair."""

        def step():
            pixel(x64, y64, peak64)
            if dfd is not None:
                dfd.pair_distances_tensor(x, y)
            synchronize(device)

        return step

    pixel_seconds = timed(target_step(None), repeat)
    rows.append(report(f"PSNR+SSIM float64 (batch {batch})", batch, pixel_seconds))
    # The pixel maths the engine runs where it compiles the encoders (fused on a GPU only).
    fused_pixel = pixel_maths(compiled=compiled, cuda=on_gpu)
    if fused_pixel is not pixel_values:
        seconds = timed(target_step(None, fused_pixel), repeat)
        rows.append(report(f"PSNR+SSIM float64, torch.compile (batch {batch})", batch, seconds))
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
    both = torch.cat([x, y])
    for label, dfd in (("PSNR+SSIM+dfd-vgg16", vgg), ("PSNR+SSIM+dfd-efficientnet-lite0", effnet)):
        flops = flops_per_image(dfd.network, device)
        elements = activation_elements_per_image(dfd.network, device)
        name = label.removeprefix("PSNR+SSIM+")
        print(
            f"  {name}: {flops / 1e9:.1f} GFLOP and {elements / 1e6:.1f} M activations "
            f"per {SIZE}x{SIZE} image"
        )
        if precisions is None:
            precisions = ("fp16", "bf16", "tf32", "fp32") if on_gpu else ("bf16", "fp32")
            if not native_bf16(device):
                precisions = tuple(p for p in precisions if p != "bf16")
                print("  bf16 skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX)")
        for precision in precisions:
            dfd.precision = precision
            ceiling = ceilings[f"{precision if precision in ('fp32', 'tf32') else 'bf16'}_tflops"]

            def encoder(dfd=dfd):
                with torch.inference_mode():
                    dfd._encode(both)
                synchronize(device)

            def distance(dfd=dfd):
                dfd.pair_distances_tensor(x, y)
                synchronize(device)

            seconds = timed(encoder, repeat)
            tflops = 2 * batch * flops / seconds / 1e12
            element_bytes = 4 if precision == "fp32" else 2
            traffic = 2 * batch * 2 * elements * element_bytes / seconds / 1e9
            row = report(f"{name} encoder only ({precision})", batch, seconds)
            row.update(
                tflops=round(tflops, 1),
                of_measured_matrix_rate=round(tflops / ceiling, 3),
                least_activation_gb_per_s=round(traffic),
                of_measured_copy_bandwidth=round(traffic / ceilings["copy_gb_per_s"], 3),
            )
            print(
                f"  {'':<58} {tflops:10.1f} TFLOP/s = {tflops / ceiling:.0%} of measured; "
                f">= {traffic:.0f} GB/s = {traffic / ceilings['copy_gb_per_s']:.0%} of copy"
            )
            rows.append(row)
            rows.append(
                report(f"{name} encoder + distance ({precision})", batch, timed(distance, repeat))
            )
            seconds = timed(target_step(dfd), repeat)
            row = report(f"{label} ({precision}, batch {batch})", batch, seconds)
            row["target_h100"] = GPU_TARGETS[label]
            rows.append(row)
        if compiled:
            fused = DeepFeatureDistance(
                dfd.spec,
                dfd.network,
                dfd.calibration,
                device,
                batch_size=batch,
                precision="fp16" if on_gpu else "bf16",
                compiled=True,
            )
            started = time.perf_counter()
            target_step(fused, fused_pixel)()  # compiles
            print(f"  {'':<58} compiled in {time.perf_counter() - started:.0f} s")
            label_compiled = f"{label} ({fused.precision}, torch.compile, batch {batch})"
            row = report(label_compiled, batch, timed(target_step(fused, fused_pixel), repeat))
            rows.append({**row, "target_h100": GPU_TARGETS[label]})


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
    rows: list[dict] = []
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
    dfd_pairs = sum(len(r) for _, r in dfd_cases)
    # Images encoded per pair: each case's reference once, then each reconstruction.
    images_per_pair = (dfd_pairs + len(dfd_cases)) / dfd_pairs
    ceilings = device_ceilings(device, size=8192 if device.startswith("cuda") else 2048)
    fp32_rate = ceilings["fp32_tflops"] * 1e12
    print(f"measured fp32 matrix rate: {fp32_rate / 1e9:.0f} GFLOP/s")
    rows.append(ceilings_row(ceilings))
    for name in available_metrics(default_weights_dir()):
        if name not in ENCODERS:
            continue
        print(name)
        plain = plain_dfd(name, device)
        one = timed(lambda plain=plain: dfd_per_pair(plain, dfd_cases), repeat=2)
        label = "plain: the network as built, per pair, NCHW fp32, reference every time"
        rows.append(report(label, dfd_pairs, one))
        values = {}
        reduced = "bf16" if device == "cpu" else "fp16"
        # (precision, torch.compile, batch size); None is the device's default batch size,
        # and the engine at 2 and 16 slices per pass shows why the CPU default is smaller.
        variants = [("fp32", False, None)]
        if native_bf16(device) or reduced != "bf16":
            variants.append((reduced, False, None))
        else:
            print("  bf16 skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX)")
        variants += [
            ("fp32", False, size) for size in (2, 16) if default_batch_size(device) < size
        ]
        variants += [("fp32", True, None)] if args.compile else []
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
            seconds = timed(lambda dfd=dfd: dfd_batched(dfd, dfd_cases), repeat=2)
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
