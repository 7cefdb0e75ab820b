"""Deep feature distances: slice preprocessing, feature comparison, and a batched engine.

Conventions (docs/metrics.md): each 2-D slice is scaled on its own and enters the
network at its own size (no resizing); a volume's distance is the mean of its slices'.
Lower is better.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from metrics.dfd.encoders import PRECISIONS, EncoderSpec
from metrics.dfd.networks import inference_graph
from metrics.dfd.weights import resolve_weights
from metrics.image import MetricInputError, check_pair

LPIPS_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
LPIPS_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
EPS = 1e-10
# The autocast type of each precision (metrics.dfd.encoders.PRECISIONS says what they mean).
AUTOCAST = dict(zip(PRECISIONS, (None, None, torch.bfloat16, torch.float16), strict=True))
CUDA_ONLY_PRECISIONS = ("tf32", "fp16")


@contextlib.contextmanager
def _cudnn_tf32(allowed: bool) -> Iterator[None]:
    """cuDNN rounds float32 convolutions to TF32 by default; the recipe's fp32 must not, so
    that a GPU worker stores the values a CPU worker would under the same version."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def _per_image_minmax(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Scale each (1, H, W) image of an (N, 1, H, W) batch to [low, high]."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return low + (high - low) * (x - lo) / (hi - lo).clamp_min(EPS)


def preprocess_lpips(x: torch.Tensor) -> torch.Tensor:
    """Min-max to [-1, 1], three channels, then LPIPS' ImageNet shift and scale."""
    rgb = _per_image_minmax(x, -1.0, 1.0).expand(-1, 3, -1, -1)
    return (rgb - LPIPS_SHIFT.to(x)) / LPIPS_SCALE.to(x)


def preprocess_dists(x: torch.Tensor) -> torch.Tensor:
    """Min-max to [0, 1], three channels (DISTS normalises with ImageNet statistics itself)."""
    return _per_image_minmax(x, 0.0, 1.0).expand(-1, 3, -1, -1).contiguous()


def preprocess_minmax_pm1(x: torch.Tensor) -> torch.Tensor:
    """Min-max to [-1, 1], three channels, no mean/std (the study's ResNet50 recipe)."""
    return _per_image_minmax(x, -1.0, 1.0).expand(-1, 3, -1, -1).contiguous()


def preprocess_minmax_pm1_gray(x: torch.Tensor) -> torch.Tensor:
    """Min-max to [-1, 1], one channel (MedVAE's `load_2d`: ScaleIntensity to [0, 1], then
    Normalize(0.5, 0.5))."""
    return _per_image_minmax(x, -1.0, 1.0)


def preprocess_zscore(x: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit (sample) standard deviation per image, one channel (SSFD)."""
    flat = x.flatten(1)
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    std = flat.std(dim=1).view(-1, 1, 1, 1)
    return (x - mean) / std.clamp_min(EPS)


PREPROCESSING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "lpips": preprocess_lpips,
    "dists": preprocess_dists,
    "minmax_pm1": preprocess_minmax_pm1,
    "minmax_pm1_gray": preprocess_minmax_pm1_gray,
    "zscore": preprocess_zscore,
}

Features = dict[str, torch.Tensor]


def _unit_normalise(f: torch.Tensor) -> torch.Tensor:
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + EPS)


def _sum(terms: Iterable[torch.Tensor]) -> torch.Tensor:
    """Left-to-right sum of per-layer terms (as `0 + a + b + ...`, to the last bit)."""
    return functools.reduce(torch.add, terms)


def _unit_normalised_distance(
    ref: Features, rec: Features, weights: list[Any] | None
) -> torch.Tensor:
    # Few passes over the features (the largest tensors of a VGG DFD): norms without a squared
    # copy, the squared difference in place, and the channel-weighted sum as one contraction.
    terms = []
    for index, layer in enumerate(ref):
        squared = (_unit_normalise(ref[layer]) - _unit_normalise(rec[layer])).square_()
        if weights is None:
            per_position = squared.sum(dim=1)
        else:
            per_position = torch.einsum(
                "nchw,c->nhw", squared, weights[index].to(squared).flatten()
            )
        terms.append(per_position.mean(dim=(1, 2)))
    return _sum(terms)


def lpips_distance(
    ref: Features, rec: Features, calibration: dict[str, torch.Tensor]
) -> torch.Tensor:
    """LPIPS: per layer, squared difference of unit-normalised features weighted by the learned
    1x1 layer (summed over channels), spatial mean; summed over layers."""
    return _unit_normalised_distance(ref, rec, [calibration[f"lin{i}"] for i in range(len(ref))])


def vgg_distance(
    ref: Features, rec: Features, calibration: dict[str, torch.Tensor]
) -> torch.Tensor:
    """As LPIPS without learned weights: channel sum, spatial mean, sum over layers."""
    return _unit_normalised_distance(ref, rec, None)


def mse_distance(
    ref: Features, rec: Features, calibration: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Mean squared feature difference: spatial mean, then channel mean; summed over layers."""
    return _sum(((ref[layer] - rec[layer]) ** 2).mean(dim=(1, 2, 3)) for layer in ref)


def dists_distance(
    ref: Features, rec: Features, calibration: dict[str, torch.Tensor]
) -> torch.Tensor:
    """DISTS: 1 - sum of alpha-weighted structure and beta-weighted texture similarities."""
    c1 = c2 = 1e-6
    alpha, beta = calibration["alpha"].to(next(iter(ref.values()))), calibration["beta"]
    beta = beta.to(alpha)
    total_weight = alpha.sum() + beta.sum()
    channels = [f.shape[1] for f in ref.values()]
    alphas = torch.split(alpha / total_weight, channels, dim=1)
    betas = torch.split(beta / total_weight, channels, dim=1)
    structure, texture = [], []
    for f0, f1, a, b in zip(ref.values(), rec.values(), alphas, betas, strict=True):
        m0, m1 = f0.mean(dim=(2, 3), keepdim=True), f1.mean(dim=(2, 3), keepdim=True)
        v0 = ((f0 - m0) ** 2).mean(dim=(2, 3), keepdim=True)
        v1 = ((f1 - m1) ** 2).mean(dim=(2, 3), keepdim=True)
        cov = (f0 * f1).mean(dim=(2, 3), keepdim=True) - m0 * m1
        s1 = (2 * m0 * m1 + c1) / (m0**2 + m1**2 + c1)
        s2 = (2 * cov + c2) / (v0 + v1 + c2)
        structure.append((a * s1).sum(dim=(1, 2, 3)))
        texture.append((b * s2).sum(dim=(1, 2, 3)))
    return 1 - (_sum(structure) + _sum(texture))


DISTANCES = {
    "lpips": lpips_distance,
    "vgg": vgg_distance,
    "mse": mse_distance,
    "dists": dists_distance,
}


def default_batch_size(device: str) -> int:
    """Slices per encoder pass when none is set. A GPU needs many in flight to be busy; on a
    CPU a larger batch only pushes the activations out of cache. make bench-metrics, 320x320
    on 2 cores, pairs/s against batches of 1: EfficientNet-Lite0 0.6-1.0x with batches of 2
    and 0.45-0.6x with 16; ResNet50 and SSFD 0.83-1.05x with 2."""
    return 16 if device.startswith("cuda") else 1


def _as_slices(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, *image.shape[-2:])


def _batches(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


@dataclass
class DeepFeatureDistance:
    """One DFD, loaded once, evaluated on many reconstructions of each reference.

    The reference's features are computed once per case and reused for all of its
    reconstructions; reconstruction slices go through the network in batches of
    `batch_size`, so memory stays flat however many pairs a case has.
    """

    spec: EncoderSpec
    network: torch.nn.Module
    calibration: dict[str, torch.Tensor]
    device: str
    batch_size: int = 16
    dtype: torch.dtype = torch.float32
    # A key of AUTOCAST: fp32 is the recipe, the others trade last digits for speed.
    precision: str = "fp32"
    # torch.compile the network and the distance: fused kernels, about twice the pairs per second
    # on a GPU (make bench-metrics), at a compilation of some seconds per new image size.
    compiled: bool = False
    distance: Callable[[Features, Features, dict[str, Any]], torch.Tensor] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.distance = DISTANCES[self.spec.distance]
        if self.compiled:
            # torch.compile returns an OptimizedModule for a module: still an nn.Module.
            self.network = cast(nn.Module, torch.compile(self.network))
            self.distance = torch.compile(self.distance)

    @classmethod
    def load(
        cls,
        spec: EncoderSpec,
        *,
        weights_dir: Path,
        device: str = "cpu",
        batch_size: int | None = None,
        override: Path | None = None,
        precision: str = "fp32",
        compiled: bool = False,
    ) -> DeepFeatureDistance:
        """Build the encoder from its (checked) weights, frozen, in eval mode, on `device`.

        The network becomes an inference graph (batch norms folded, nothing computed past
        the deepest tapped layer), in channels-last memory, which lets oneDNN and cuDNN pick
        faster convolutions. Both keep the fp32 maths (equal to the plain network to 1e-5).
        """
        if precision not in AUTOCAST:
            raise ValueError(f"precision must be one of {', '.join(AUTOCAST)}, got {precision!r}")
        if precision in CUDA_ONLY_PRECISIONS and not device.startswith("cuda"):
            raise ValueError(f"{precision} needs a CUDA device; use bf16 on the CPU")
        if device.startswith("cuda"):
            # Autotune each image size once; a worker sees few sizes and many batches.
            torch.backends.cudnn.benchmark = True
        network, calibration = spec.builder(resolve_weights(spec, weights_dir, override))
        network = inference_graph(network.eval(), spec.layers)
        network = network.to(device).to(memory_format=torch.channels_last)
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        return cls(
            spec,
            network,
            calibration,
            device,
            batch_size or default_batch_size(device),
            precision=precision,
            compiled=compiled,
        )

    def _encode(self, x: torch.Tensor) -> Features:
        """Features (of the spec's layers) of an (N, H, W) tensor already on the device.

        Under bf16/fp16 only the network runs in reduced precision (autocast); scaling and
        the distance stay in float32, where channel sums of squared features cannot overflow.
        """
        scaled = PREPROCESSING[self.spec.preprocessing](x.to(self.dtype).unsqueeze(1))
        reduced = AUTOCAST[self.precision]
        with (
            _cudnn_tf32(self.precision == "tf32"),
            torch.autocast(
                torch.device(self.device).type, dtype=reduced, enabled=reduced is not None
            ),
        ):
            output = self.network(scaled)
        return {layer: output[layer].float() for layer in self.spec.layers}

    def check_size(self, shape: tuple[int, ...]) -> None:
        """Raise MetricInputError for an image too small for this encoder's deepest tap."""
        if min(shape[-2:]) < self.spec.min_side:
            raise MetricInputError(
                f"{self.spec.name}: images of {shape[-2]}x{shape[-1]} pixels are too small for "
                f"this encoder (at least {self.spec.min_side} a side)"
            )

    @torch.inference_mode()
    def features(self, slices: np.ndarray) -> Features:
        """Features of an (N, H, W) stack, computed in batches and concatenated."""
        parts = [
            self._encode(torch.as_tensor(slices[batch], device=self.device))
            for batch in _batches(len(slices), self.batch_size)
        ]
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    @torch.inference_mode()
    def case_distances(
        self, reference: np.ndarray, reconstructions: list[np.ndarray]
    ) -> list[float | MetricInputError]:
        """Distance of each reconstruction to `reference` (mean over slices for volumes).

        The reference is encoded once; the slices of all reconstructions then go through the
        encoder together, `batch_size` at a time (gathered lazily, so memory stays flat).
        A reconstruction that cannot be compared (shape, NaN) yields its error instead of a
        value; the others are still computed.
        """
        results: list[float | MetricInputError] = []
        valid: list[np.ndarray] = []
        for reconstruction in reconstructions:
            try:
                check_pair(reference, reconstruction)
                self.check_size(reference.shape)
                valid.append(_as_slices(reconstruction))
                results.append(0.0)
            except MetricInputError as error:
                results.append(error)
        if not valid:
            return results
        ref_features = self.features(_as_slices(reference))
        slices_per_item = len(valid[0])
        pairs = [(r, s) for r in range(len(valid)) for s in range(slices_per_item)]
        values = []
        for batch in _batches(len(pairs), self.batch_size):
            chunk = pairs[batch]
            stack = np.stack([valid[r][s] for r, s in chunk])
            ref_index = torch.as_tensor([s for _, s in chunk], device=self.device)
            ref_batch = {k: v.index_select(0, ref_index) for k, v in ref_features.items()}
            rec_features = self._encode(torch.as_tensor(stack, device=self.device))
            values.append(self.distance(ref_batch, rec_features, self.calibration))
        means = iter(
            torch.cat(values).double().view(len(valid), slices_per_item).mean(dim=1).tolist()
        )
        return [value if isinstance(value, Exception) else next(means) for value in results]

    @torch.inference_mode()
    def pair_distances_tensor(
        self, references: torch.Tensor, reconstructions: torch.Tensor
    ) -> torch.Tensor:
        """Distances of N independent 2-D pairs given as (N, H, W) tensors on the device.

        Both images of `batch_size` pairs go through the network in one pass (one launch per
        layer for twice the images keeps a GPU busier than two half-size passes).
        """
        self.check_size(tuple(references.shape))
        values = []
        for batch in _batches(len(references), self.batch_size):
            both = self._encode(torch.cat([references[batch], reconstructions[batch]]))
            count = batch.stop - batch.start
            ref = {name: f[:count] for name, f in both.items()}
            rec = {name: f[count:] for name, f in both.items()}
            values.append(self.distance(ref, rec, self.calibration))
        return torch.cat(values)

    def pair_distances(self, references: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
        """Distances of N independent 2-D pairs, batched: (N, H, W) x (N, H, W) -> (N,)."""

        def as_tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(array), device=self.device)

        distances = self.pair_distances_tensor(as_tensor(references), as_tensor(reconstructions))
        return distances.double().cpu().numpy()
