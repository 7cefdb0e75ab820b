"""The GPU targets: PSNR+SSIM with a DFD, all on the device, in large batches (run by
`python -m metrics.bench.metrics` on a CUDA device; its code path is tested on the CPU)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from metrics.bench.roofline import (
    SIZE,
    activation_elements_per_image,
    ceilings_row,
    device_ceilings,
    flops_per_image,
    native_bf16,
)
from metrics.bench.timing import report, synchronize, timed
from metrics.dfd.distances import DeepFeatureDistance
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.weights import default_weights_dir
from metrics.pixel_torch import pixel_maths, pixel_values

GPU_TARGETS = {"PSNR+SSIM+dfd-vgg16": 2_000, "PSNR+SSIM+dfd-efficientnet-lite0": 10_000}


@dataclass
class _Pairs:
    """One batch of synthetic 320x320 pairs on the device, as the DFD and the engine's pixel
    maths (float64, each pair a one-slice volume with its own reference) take them."""

    device: str
    batch: int
    repeat: int

    def __post_init__(self) -> None:
        self.x = torch.rand(self.batch, SIZE, SIZE, device=self.device)
        self.y = (self.x + 0.05 * torch.randn_like(self.x)).clamp_min(0)
        self.both = torch.cat([self.x, self.y])
        self.x64, self.y64 = self.x.double()[:, None], self.y.double()[:, None]
        self.peak64 = self.x.amax(dim=(1, 2)).double()

    def target_step(
        self, dfd: DeepFeatureDistance | None, pixel: Callable[..., Any] = pixel_values
    ) -> Callable[[], None]:
        """The issue's target: the engine's PSNR, SSIM (and NMSE) in float64, then the DFD (if
        any) of each pair."""

        def step() -> None:
            pixel(self.x64, self.y64, self.peak64)
            if dfd is not None:
                dfd.pair_distances_tensor(self.x, self.y)
            synchronize(self.device)

        return step

    def time(self, step: Callable[[], None], label: str) -> dict[str, Any]:
        return report(label, self.batch, timed(step, self.repeat))


def gpu_targets(
    device: str,
    rows: list[Any],
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
    pairs = _Pairs(device, batch, repeat)
    rows.append(pairs.time(pairs.target_step(None), f"PSNR+SSIM float64 (batch {batch})"))
    # The pixel maths the engine runs where it compiles the encoders (fused on a GPU only).
    fused_pixel = pixel_maths(compiled=compiled, cuda=on_gpu)
    if fused_pixel is not pixel_values:
        label = f"PSNR+SSIM float64, torch.compile (batch {batch})"
        rows.append(pairs.time(pairs.target_step(None, fused_pixel), label))
    if precisions is None:
        precisions = ("fp16", "bf16", "tf32", "fp32") if on_gpu else ("bf16", "fp32")
        if not native_bf16(device):
            precisions = tuple(p for p in precisions if p != "bf16")
            print("  bf16 skipped: this CPU has no native bf16 (AVX-512 BF16 or AMX)")
    for label, dfd in _target_distances(device, batch):
        _describe(label, dfd, device)
        for precision in precisions:
            dfd.precision = precision
            rows += _precision_rows(label, dfd, pairs, ceilings)
        if compiled:
            rows.append(_compiled_row(label, dfd, pairs, fused_pixel))


def _target_distances(device: str, batch: int) -> list[tuple[str, DeepFeatureDistance]]:
    import torchvision

    from metrics.dfd.networks import VGG16_TAPS, tapped

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
    return [("PSNR+SSIM+dfd-vgg16", vgg), ("PSNR+SSIM+dfd-efficientnet-lite0", effnet)]


def _describe(label: str, dfd: DeepFeatureDistance, device: str) -> None:
    flops = flops_per_image(dfd.network, device)
    elements = activation_elements_per_image(dfd.network, device)
    print(
        f"  {label.removeprefix('PSNR+SSIM+')}: {flops / 1e9:.1f} GFLOP and "
        f"{elements / 1e6:.1f} M activations per {SIZE}x{SIZE} image"
    )


def _precision_rows(
    label: str, dfd: DeepFeatureDistance, pairs: _Pairs, ceilings: dict[str, float]
) -> list[dict[str, Any]]:
    """Encoder alone, encoder + distance, and the target, at the DFD's current precision."""
    device, batch, precision = pairs.device, pairs.batch, dfd.precision
    name = label.removeprefix("PSNR+SSIM+")
    flops = flops_per_image(dfd.network, device)
    elements = activation_elements_per_image(dfd.network, device)
    ceiling = ceilings[f"{precision if precision in ('fp32', 'tf32') else 'bf16'}_tflops"]

    def encoder() -> None:
        with torch.inference_mode():
            dfd._encode(pairs.both)
        synchronize(device)

    def distance() -> None:
        dfd.pair_distances_tensor(pairs.x, pairs.y)
        synchronize(device)

    seconds = timed(encoder, pairs.repeat)  # unrounded: the rates below are derived from it
    row = report(f"{name} encoder only ({precision})", batch, seconds)
    tflops = 2 * batch * flops / seconds / 1e12
    element_bytes = 4 if precision == "fp32" else 2
    traffic = 2 * batch * 2 * elements * element_bytes / seconds / 1e9
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
    target = pairs.time(pairs.target_step(dfd), f"{label} ({precision}, batch {batch})")
    return [
        row,
        pairs.time(distance, f"{name} encoder + distance ({precision})"),
        {**target, "target_h100": GPU_TARGETS[label]},
    ]


def _compiled_row(
    label: str, dfd: DeepFeatureDistance, pairs: _Pairs, fused_pixel: Callable[..., Any]
) -> dict[str, Any]:
    """The target with the network and distance under torch.compile, in half precision."""
    on_gpu = pairs.device.startswith("cuda")
    fused = DeepFeatureDistance(
        dfd.spec,
        dfd.network,
        dfd.calibration,
        pairs.device,
        batch_size=pairs.batch,
        precision="fp16" if on_gpu else "bf16",
        compiled=True,
    )
    started = time.perf_counter()
    pairs.target_step(fused, fused_pixel)()  # compiles
    print(f"  {'':<58} compiled in {time.perf_counter() - started:.0f} s")
    label_compiled = f"{label} ({fused.precision}, torch.compile, batch {pairs.batch})"
    row = pairs.time(pairs.target_step(fused, fused_pixel), label_compiled)
    return {**row, "target_h100": GPU_TARGETS[label]}
