"""The SSFD encoder this project trains and ships (dfd-ssfd-local) and its training command."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from fixtures.images import load_slice, load_slices, slice_sources
from fixtures.simulation import zero_filled_series
from metrics.dfd.distances import DeepFeatureDistance
from metrics.dfd.encoders import (
    ENCODERS,
    LOCAL_WEIGHTS_DIR,
    SSFD_LOCAL_FILE,
    availability,
    sha256_of,
)
from metrics.dfd.networks import SSFDEncoder
from metrics.dfd.training import (
    ACCELERATIONS,
    TrainingConfig,
    acceleration_checks,
    anatomy_groups,
    compare_orderings,
    patch_mask,
    random_crops,
    ssfd_distances,
    train_ssfd,
    zscored_slices,
)

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_weights_are_registered_with_their_checksum(tmp_path):
    path = LOCAL_WEIGHTS_DIR / SSFD_LOCAL_FILE.filename
    assert path.is_file(), "the trained weights ship in the repository"
    assert sha256_of(path) == SSFD_LOCAL_FILE.sha256, "the registry pins the shipped file"
    assert availability(ENCODERS["dfd-ssfd-local"], tmp_path) == (True, "")
    card = path.with_suffix(".md").read_text()
    assert SSFD_LOCAL_FILE.sha256 in card and "Held out" in card and "seed 0" in card


def test_shipped_encoder_loads_in_the_published_layout_and_measures(tmp_path, device):
    checkpoint = torch.load(LOCAL_WEIGHTS_DIR / SSFD_LOCAL_FILE.filename, weights_only=True)
    assert set(checkpoint) >= {"model_state_dict", "training", "losses", "evaluation"}
    dfd = DeepFeatureDistance.load(ENCODERS["dfd-ssfd-local"], weights_dir=tmp_path, device=device)
    reference = load_slice("colin27-axial").astype(np.float64)
    recs = zero_filled_series(reference, (2, 8), rng=np.random.default_rng(0))
    identity, mild, strong = dfd.case_distances(reference, [reference, *recs])
    assert identity == pytest.approx(0, abs=1e-6) and 0 < mild < strong


def test_training_is_seeded_and_lowers_the_loss():
    images = np.load(ROOT / "fixtures/data/training_slices.npz")["images"][:12]
    config = TrainingConfig(steps=12, batch_size=4, crop=48, seed=3)
    first, result = train_ssfd(images, config)
    second, again = train_ssfd(images, config)
    assert result.losses == again.losses, "same seed, same run"
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert np.mean(result.losses[-4:]) < np.mean(result.losses[:4]), "the pretext loss goes down"


def test_training_slices_are_zscored_whole_as_the_distance_scales_them():
    images = np.random.default_rng(0).integers(0, 255, size=(3, 32, 40)).astype(np.uint8)
    expected = [(s - s.mean()) / s.std(ddof=1) for s in images.astype(np.float64)]
    assert np.allclose(zscored_slices(images), expected, atol=1e-5)


def test_patch_mask_hides_about_half_in_16x16_patches():
    mask = patch_mask(64, 96, 16, 0.5, np.random.default_rng(0))
    assert mask.shape == (64, 96, 96) and set(np.unique(mask)) == {0.0, 1.0}
    assert 0.45 < 1 - mask.mean() < 0.55
    blocks = mask.reshape(64, 6, 16, 6, 16)
    assert (blocks.min(axis=(2, 4)) == blocks.max(axis=(2, 4))).all(), "whole patches only"


def test_random_crops_come_from_the_slices():
    images = np.arange(2 * 8 * 8).reshape(2, 8, 8)
    crops = random_crops(images, 4, 10, np.random.default_rng(0))
    assert crops.shape == (10, 4, 4)
    assert all(
        any(
            (crop == images[i, r : r + 4, c : c + 4]).all()
            for i in range(2)
            for r in range(5)
            for c in range(5)
        )
        for crop in crops
    )


def test_demo_slices_are_held_out_of_the_training_data():
    import json

    from fixtures.extract import HOLD_OUT_MARGIN, VOLUME_SLICES
    from fixtures.images import slice_sources

    index = json.loads((ROOT / "fixtures/data/training_slices.json").read_text())
    for slice_id, volume, orientation, _ in VOLUME_SLICES:
        demo_index = slice_sources()[slice_id]["index"]
        near = [
            e
            for e in index
            if e["volume"] == volume
            and e["orientation"] == orientation
            and abs(e["index"] - demo_index) <= HOLD_OUT_MARGIN
        ]
        assert not near, f"{slice_id} (index {demo_index}) leaks into training: {near}"


@pytest.mark.slow
def test_train_ssfd_command_writes_weights_and_a_model_card(tmp_path):
    out = tmp_path / "ssfd.pt"
    result = subprocess.run(
        [sys.executable, "-m", "metrics", "train-ssfd", "--steps", "4", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "pooled Spearman(distance, acceleration), trained against untrained" in result.stdout
    assert "all (10 slices): trained" in result.stdout
    assert "brain (the training anatomy) (7 slices)" in result.stdout
    card = out.with_suffix(".md").read_text()
    assert sha256_of(out) in card and "untrained" in card


def _ordering_data(seed=1):
    """Five slices x 12 reconstructions; 'trained' orders by acceleration up to a per-slice
    scale, 'untrained' is noisy."""
    rng = np.random.default_rng(seed)
    slice_ids = np.repeat(np.array(["a", "b", "c", "d", "e"]), 12)
    accelerations = np.tile(np.repeat(np.array(ACCELERATIONS, float), 2), 5)
    trained = accelerations * np.repeat(rng.uniform(0.8, 1.2, 5), 12)
    untrained = accelerations + rng.normal(0, 4, 60)
    return slice_ids, accelerations, trained, untrained


def test_ordering_interval_equals_a_scipy_loop_over_resampled_slices():
    slice_ids, accelerations, trained, untrained = _ordering_data()
    groups = {"all": list("abcde"), "three": ["c", "a", "e"], "reversed": list("edcba")}
    checks = compare_orderings(
        slice_ids, accelerations, trained, untrained, groups, resamples=300, seed=4
    )
    for check, members in zip(checks, groups.values(), strict=True):
        rows_of = {m: np.flatnonzero(slice_ids == m) for m in members}
        assert check.slices == len(members)
        assert check.trained == pytest.approx(
            spearmanr(
                accelerations[np.isin(slice_ids, members)], trained[np.isin(slice_ids, members)]
            ).statistic
        )
        draws = np.random.default_rng(4).integers(0, len(members), size=(300, len(members)))
        differences = []
        for draw in draws:  # the independent reference: rebuild each resample, ask scipy
            rows = np.concatenate([rows_of[members[i]] for i in draw])
            differences.append(
                spearmanr(accelerations[rows], trained[rows]).statistic
                - spearmanr(accelerations[rows], untrained[rows]).statistic
            )
        expected = np.percentile(differences, [2.5, 97.5])
        assert check.difference_interval == pytest.approx(tuple(expected), abs=1e-9)


def test_ordering_verdict_follows_the_interval():
    slice_ids, accelerations, trained, untrained = _ordering_data()
    groups = {"all": list("abcde")}
    better = compare_orderings(slice_ids, accelerations, trained, untrained, groups)[0]
    worse = compare_orderings(slice_ids, accelerations, untrained, trained, groups)[0]
    same = compare_orderings(slice_ids, accelerations, trained, trained, groups)[0]
    assert better.verdict == "better" and better.difference_interval[0] > 0
    assert worse.verdict == "worse" and worse.difference_interval[1] < 0
    assert same.verdict == "no clear difference" and same.difference_interval == (0.0, 0.0)
    assert "5 slices" in better.describe() and better.as_dict()["verdict"] == "better"


def test_anatomy_groups_split_the_training_anatomy_from_the_rest():
    slices = load_slices()
    groups = anatomy_groups(slices, slice_sources())
    assert groups["all"] == list(slices)
    brain = groups["brain (the training anatomy)"]
    assert {"s1-axial", "colin27-sagittal", "dipy-t1-coronal"} <= set(brain) and len(brain) == 7
    assert set(groups["other anatomy"]) == set(slices) - set(brain)


def test_the_check_measures_the_distance_the_registry_stores(tmp_path, device):
    encoder = SSFDEncoder()
    checkpoint = torch.load(LOCAL_WEIGHTS_DIR / SSFD_LOCAL_FILE.filename, weights_only=True)
    encoder.load_state_dict(checkpoint["model_state_dict"])
    dfd = DeepFeatureDistance.load(ENCODERS["dfd-ssfd-local"], weights_dir=tmp_path, device=device)
    reference = load_slice("s1-axial").astype(np.float64)
    reference /= reference.max()
    recs = zero_filled_series(reference, (2, 6), rng=np.random.default_rng(0))
    # rel 1e-3: the engine runs channels-last, where oneDNN sums in another order; float32
    # rounding grows through the eight convolutions to about 3e-4 of these small distances.
    assert ssfd_distances(encoder.eval(), reference, recs) == pytest.approx(
        dfd.case_distances(reference, recs), rel=1e-3
    )


def test_acceleration_checks_of_an_encoder_against_itself_find_no_difference():
    torch.manual_seed(0)
    encoder = SSFDEncoder().eval()
    slices = {k: v for k, v in load_slices().items() if k in ("s1-axial", "abdomen-fat")}
    checks = acceleration_checks(encoder, encoder, slices, anatomy_groups(slices, slice_sources()))
    assert [c.group for c in checks] == ["all", "brain (the training anatomy)", "other anatomy"]
    assert [c.slices for c in checks] == [2, 1, 1]
    assert all(c.difference == 0 and c.verdict == "no clear difference" for c in checks)
    assert checks[0].trained > 0.8, "zero-filled series are ordered by acceleration"
