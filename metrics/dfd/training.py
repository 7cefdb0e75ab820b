"""Train this project's own SSFD encoder (`dfd-ssfd-local`) on real MR slices.

Recipe after Adamson et al. (SSFD, NeurIPS 2021 workshop): a UNet learns to inpaint images of
which about half is hidden in 16x16 patches; its contracting path is the feature encoder.
Each slice is z-scored as a whole, as the distance scales the images it compares, and random
96x96 crops of those slices are the training images (crops z-scored on their own would teach
the encoder a scaling it never meets when measuring). L2 loss on the whole crop, Adam with step
decay. The slices are fixtures/data/training_slices.npz (the demo study's slices are held out
of that file, see fixtures/extract.py); seeded throughout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from metrics.dfd.distances import preprocess_zscore
from metrics.dfd.networks import SSFDEncoder, SSFDInpainter

TAP = "block4_relu2"


@dataclass
class TrainingConfig:
    steps: int = 800
    batch_size: int = 8
    crop: int = 96
    patch: int = 16
    hidden_fraction: float = 0.5
    learning_rate: float = 1e-3
    decay_every: int = 300
    decay_factor: float = 0.5
    seed: int = 0


@dataclass
class TrainingResult:
    config: TrainingConfig
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    evaluation: dict[str, float] = field(default_factory=dict)


def zscored_slices(images: np.ndarray) -> np.ndarray:
    """Each (H, W) slice of an (N, H, W) stack scaled as the SSFD distance scales an image."""
    slices = torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)
    return preprocess_zscore(slices)[:, 0].numpy()


def random_crops(
    images: np.ndarray, size: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` random size x size crops, each from a random slice that holds some signal."""
    picks = rng.integers(0, len(images), size=count)
    tops = rng.integers(0, images.shape[1] - size + 1, size=count)
    lefts = rng.integers(0, images.shape[2] - size + 1, size=count)
    return np.stack(
        [images[p, t : t + size, c : c + size] for p, t, c in zip(picks, tops, lefts, strict=True)]
    )


def patch_mask(
    count: int, size: int, patch: int, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """1 where visible, 0 in the hidden 16x16 patches (about `fraction` of them)."""
    grid = size // patch
    hidden = rng.random((count, grid, grid)) < fraction
    return np.repeat(np.repeat(~hidden, patch, axis=1), patch, axis=2).astype(np.float32)


def train_ssfd(
    images: np.ndarray,
    config: TrainingConfig,
    *,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[SSFDInpainter, TrainingResult]:
    """Train the inpainting UNet; return it (its `.encoder` is the feature encoder) and the
    loss curve."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = SSFDInpainter()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, config.decay_every, config.decay_factor)
    slices = zscored_slices(images)
    result = TrainingResult(config)
    start = time.perf_counter()
    model.train()
    for step in range(config.steps):
        target = torch.from_numpy(
            random_crops(slices, config.crop, config.batch_size, rng)
        ).unsqueeze(1)
        visible = torch.from_numpy(
            patch_mask(config.batch_size, config.crop, config.patch, config.hidden_fraction, rng)
        ).unsqueeze(1)
        loss = torch.nn.functional.mse_loss(model(target * visible), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        result.losses.append(loss.item())
        if progress:
            progress(step, result.losses[-1])
    result.seconds = time.perf_counter() - start
    return model.eval(), result


@torch.inference_mode()
def ssfd_distance(
    encoder: SSFDEncoder, reference: np.ndarray, reconstruction: np.ndarray
) -> float:
    x = torch.as_tensor(np.stack([reference, reconstruction]), dtype=torch.float32).unsqueeze(1)
    features = encoder(preprocess_zscore(x))[TAP]
    return float(((features[0] - features[1]) ** 2).mean())


def acceleration_spearman(encoder: SSFDEncoder, slices: list[np.ndarray], seed: int = 0) -> float:
    """Spearman of the distance with the acceleration, pooled over slices and mask types.

    Zero-filled reconstructions of every slice at 2, 3, 4, 6, 8 and 12x, with random and
    equispaced masks. Pooled, so the distance must be comparable between images (within one
    slice, any distance orders zero-filled reconstructions by acceleration).
    """
    from fixtures.simulation import zero_filled_series

    rng = np.random.default_rng(seed)
    series = (2, 3, 4, 6, 8, 12)
    accelerations, distances = [], []
    for image in slices:
        image = image.astype(np.float64) / image.max()
        for mask in ("random", "equispaced"):
            for acceleration, rec in zip(
                series, zero_filled_series(image, series, rng=rng, mask=mask), strict=True
            ):
                accelerations.append(acceleration)
                distances.append(ssfd_distance(encoder, image, rec))
    return float(spearmanr(accelerations, distances).statistic)


@torch.inference_mode()
def inpainting_loss(
    model: SSFDInpainter, slices: list[np.ndarray], config: TrainingConfig
) -> float:
    """The pretext task's L2 loss on held-out slices (what training optimises), seeded masks."""
    rng = np.random.default_rng(config.seed + 1)
    x = preprocess_zscore(torch.as_tensor(np.stack(slices), dtype=torch.float32).unsqueeze(1))
    visible = torch.from_numpy(
        patch_mask(len(slices), x.shape[-1], config.patch, config.hidden_fraction, rng)
    ).unsqueeze(1)
    return float(torch.nn.functional.mse_loss(model.eval()(x * visible), x))


def save_encoder(encoder: SSFDEncoder, result: TrainingResult, path: Path) -> None:
    """Save in the published SSFD checkpoint layout ({"model_state_dict": ...}) plus metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model_state_dict": encoder.state_dict(),
            "training": json.loads(json.dumps(asdict(result.config))),
            "losses": result.losses,
            "evaluation": result.evaluation,
        },
        path,
    )
