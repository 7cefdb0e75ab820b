"""What a device can do, measured in the same run: dense matrix rates, copy bandwidth, and a
network's operations and activations per image, so that achieved rates are read against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from metrics.bench.timing import synchronize, timed
from metrics.dfd.distances import DeepFeatureDistance

SIZE = 320


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

            def product(a: torch.Tensor = a, b: torch.Tensor = b) -> None:
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

    def copy() -> None:
        target.copy_(source)
        synchronize(device)

    ceilings["copy_gb_per_s"] = 2 * source.numel() * 4 / timed(copy, repeat=5) / 1e9
    return ceilings


def ceilings_row(ceilings: dict[str, float]) -> dict[str, Any]:
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

    def count(module: torch.nn.Module, inputs: object, output: object) -> None:
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


def compute_bound(
    dfd: DeepFeatureDistance, images_per_s: float, matrix_rate: float
) -> dict[str, Any]:
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
