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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fixtures.simulation import RECONSTRUCTORS
from metrics.dfd.distances import preprocess_zscore
from metrics.dfd.networks import SSFDEncoder, SSFDInpainter
from metrics.image import pixel_metrics_for_case
from metrics.stats.bootstrap import cluster_counts, percentile_interval, resampled_spearman

TAP = "block4_relu1"  # the authors' corrected tap (deep-feature-mr-recon commit b3ce5d8)


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
    evaluation: dict[str, Any] = field(default_factory=dict)


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
    rng = np.random.default_rng(config.seed)
    model = untrained_model(config.seed)
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


def untrained_model(seed: int) -> SSFDInpainter:
    """The inpainting UNet as training starts from it with this seed (eval mode)."""
    torch.manual_seed(seed)
    return SSFDInpainter().eval()


ACCELERATIONS = (2, 3, 4, 6, 8, 12)
MASKS = ("random", "equispaced")


@torch.inference_mode()
def ssfd_distances(
    encoder: SSFDEncoder, reference: np.ndarray, reconstructions: list[np.ndarray]
) -> np.ndarray:
    """The dfd-ssfd distance of each reconstruction to the reference (features MSE)."""
    x = torch.as_tensor(np.stack([reference, *reconstructions]), dtype=torch.float32)
    features = encoder(preprocess_zscore(x.unsqueeze(1)))[TAP]
    return ((features[1:] - features[:1]) ** 2).mean(dim=(1, 2, 3)).numpy().astype(np.float64)


def format_interval(interval: tuple[float, float] | None) -> str:
    return f"{interval[0]:+.3f} to {interval[1]:+.3f}" if interval else "n/a"


@dataclass
class OrderingCheck:
    """How well two encoders' distances order one group of held-out slices' reconstructions
    by acceleration: Spearman pooled over the group, and a 95 % interval of the difference
    from resampling whole slices (one slice's reconstructions are not independent).

    Two yardsticks say how much the check can tell: `nmse`, a pixel metric's Spearman on the
    same reconstructions (pooled over slices, no metric reaches 1: the same acceleration costs
    one image more than another), and `untrained_seeds`, the Spearman of untrained encoders of
    other seeds (how far the initial weights alone move it).
    """

    group: str
    slices: int
    trained: float
    untrained: float
    difference_interval: tuple[float, float] | None
    nmse: float | None = None
    untrained_seeds: tuple[float, ...] = ()

    @property
    def difference(self) -> float:
        return self.trained - self.untrained

    @property
    def verdict(self) -> str:
        if self.difference_interval is None:
            return "undetermined"
        low, high = self.difference_interval
        return "better" if low > 0 else "worse" if high < 0 else "no clear difference"

    @property
    def untrained_range(self) -> tuple[float, float] | None:
        """Lowest and highest Spearman of the untrained encoders, this seed's included."""
        if not self.untrained_seeds:
            return None
        values = (self.untrained, *self.untrained_seeds)
        return min(values), max(values)

    def describe(self) -> str:
        context = []
        if self.nmse is not None:
            context.append(f"NMSE {self.nmse:.3f}")
        if self.untrained_range:
            low, high = self.untrained_range
            context.append(f"untrained seeds {low:.3f} to {high:.3f}")
        return (
            f"{self.group} ({self.slices} slices): trained {self.trained:.3f}, untrained "
            f"{self.untrained:.3f}, difference {self.difference:+.3f} "
            f"({format_interval(self.difference_interval)}): {self.verdict}"
            + (f" [{'; '.join(context)}]" if context else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "difference": self.difference,
            "verdict": self.verdict,
            "untrained_range": self.untrained_range,
        }


def anatomy_groups(
    slices: dict[str, np.ndarray], sources: dict[str, dict[str, Any]], trained_on: str = "brain"
) -> dict[str, list[str]]:
    """All held-out slices, those of the anatomy the encoder was trained on, and the rest."""
    same = [s for s in slices if sources[s]["anatomy"] == trained_on]
    groups = {
        "all": list(slices),
        f"{trained_on} (the training anatomy)": same,
        "other anatomy": [s for s in slices if s not in same],
    }
    return {name: members for name, members in groups.items() if members}


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr  # scipy.stats: a second of the command line's start-up

    return float(spearmanr(x, y).statistic)


def compare_orderings(
    slice_ids: np.ndarray,
    accelerations: np.ndarray,
    trained: np.ndarray,
    untrained: np.ndarray,
    groups: dict[str, list[str]],
    *,
    nmse: np.ndarray | None = None,
    other_untrained: Sequence[np.ndarray] = (),
    resamples: int = 2000,
    seed: int = 0,
) -> list[OrderingCheck]:
    """One OrderingCheck per group of slice ids (a cluster bootstrap over slices), with the
    NMSE's and the other untrained encoders' Spearman on the same rows where given."""
    checks = []
    for name, members in groups.items():
        rows = np.flatnonzero(np.isin(slice_ids, members))
        if not len(rows):
            continue
        found = set(slice_ids[rows])
        present = [m for m in members if m in found]  # units numbered in the group's order
        unit = np.array([present.index(s) for s in slice_ids[rows]])
        counts = cluster_counts(unit, resamples, np.random.default_rng(seed))
        x = accelerations[rows]
        differences = resampled_spearman(x, trained[rows], counts) - resampled_spearman(
            x, untrained[rows], counts
        )
        checks.append(
            OrderingCheck(
                group=name,
                slices=len(present),
                trained=_spearman(x, trained[rows]),
                untrained=_spearman(x, untrained[rows]),
                difference_interval=percentile_interval(differences),
                nmse=None if nmse is None else _spearman(x, nmse[rows]),
                untrained_seeds=tuple(_spearman(x, other[rows]) for other in other_untrained),
            )
        )
    return checks


RECONSTRUCTION_METHODS = tuple(RECONSTRUCTORS)


def acceleration_series(
    slices: dict[str, np.ndarray], method: str = "zero-filled", *, seed: int = 0
) -> Iterator[tuple[str, np.ndarray, tuple[float, ...], list[np.ndarray]]]:
    """(slice id, reference, accelerations, reconstructions) for each slice, seeded.

    zero-filled: 2, 3, 4, 6, 8 and 12x, with random and then equispaced masks (no phase: a
    quick, graded set). cs-tv and cs-l1-wavelet: the same accelerations with random masks,
    simulated and reconstructed as the demo study's are (smooth phase, its SigPy settings), so
    the check also meets the blur and staircasing that the demo's readers grade.
    """
    from fixtures.demo import TV, WAVELET
    from fixtures.simulation import (
        Protocol,
        fastmri_center_fraction,
        simulate_case,
        zero_filled_series,
    )

    if method not in RECONSTRUCTION_METHODS:
        raise ValueError(
            f"unknown reconstruction method {method!r}; one of {RECONSTRUCTION_METHODS}"
        )
    rng = np.random.default_rng(seed)
    options = {"cs-tv": TV, "cs-l1-wavelet": WAVELET}
    for index, (slice_id, image) in enumerate(slices.items()):
        image = image.astype(np.float64) / image.max()
        if method == "zero-filled":
            for mask in MASKS:
                yield (
                    slice_id,
                    image,
                    ACCELERATIONS,
                    zero_filled_series(image, ACCELERATIONS, rng=rng, mask=mask),
                )
            continue
        protocols = [
            Protocol(
                method, a, center_fraction=fastmri_center_fraction(a), options=options[method]
            )
            for a in ACCELERATIONS
        ]
        case = simulate_case(image, protocols, seed=seed + index)
        yield slice_id, case.reference, ACCELERATIONS, [rec for _, rec in case.reconstructions]


def acceleration_checks(
    trained: SSFDEncoder,
    untrained: SSFDEncoder,
    slices: dict[str, np.ndarray],
    groups: dict[str, list[str]],
    *,
    other_untrained: Sequence[SSFDEncoder] = (),
    method: str = "zero-filled",
    seed: int = 0,
) -> list[OrderingCheck]:
    """Do the trained encoder's distances order reconstructions by acceleration better than
    the untrained encoder's? Pooled over slices, per group of slices; NMSE and the untrained
    encoders of `other_untrained` measured on the same reconstructions, as yardsticks.

    Reconstructions from `acceleration_series(slices, method)`. Pooled, so the distance must
    be comparable between images (within one slice, any distance orders zero-filled
    reconstructions by acceleration).
    """
    slice_ids: list[str] = []
    accelerations: list[float] = []
    by_trained: list[np.ndarray] = []
    by_untrained: list[np.ndarray] = []
    nmse: list[float] = []
    by_other: list[list[np.ndarray]] = [[] for _ in other_untrained]
    for slice_id, reference, series_accelerations, reconstructions in acceleration_series(
        slices, method, seed=seed
    ):
        slice_ids += [slice_id] * len(series_accelerations)
        accelerations += series_accelerations
        by_trained.append(ssfd_distances(trained, reference, reconstructions))
        by_untrained.append(ssfd_distances(untrained, reference, reconstructions))
        for distances, encoder in zip(by_other, other_untrained, strict=True):
            distances.append(ssfd_distances(encoder, reference, reconstructions))
        nmse += [row["nmse"] for row in pixel_metrics_for_case(reference, reconstructions)]
    return compare_orderings(
        np.array(slice_ids),
        np.array(accelerations, dtype=np.float64),
        np.concatenate(by_trained),
        np.concatenate(by_untrained),
        groups,
        nmse=np.array(nmse),
        other_untrained=[np.concatenate(distances) for distances in by_other],
        seed=seed,
    )


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
