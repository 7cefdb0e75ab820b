"""The SSFD encoder this project trains and ships (dfd-ssfd-local) and its training command."""

import json
import shutil
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
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.networks import SSFDEncoder
from metrics.dfd.weights import LOCAL_WEIGHTS_DIR, SSFD_LOCAL_FILE, availability, sha256_of
from metrics.research.ssfd_model_card import LATER_CHECKS, record_later_checks
from metrics.research.ssfd_training import (
    ACCELERATIONS,
    TrainingConfig,
    acceleration_checks,
    acceleration_series,
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


def test_train_ssfd_needs_out_and_leaves_the_shipped_weights_alone():
    result = subprocess.run(
        [sys.executable, "-m", "metrics", "train-ssfd", "--steps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--out" in result.stderr
    assert sha256_of(LOCAL_WEIGHTS_DIR / SSFD_LOCAL_FILE.filename) == SSFD_LOCAL_FILE.sha256


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
    all_line = next(line for line in result.stdout.splitlines() if "all (10 slices)" in line)
    assert "NMSE 0." in all_line and "untrained seeds 0." in all_line
    card = out.with_suffix(".md").read_text()
    assert sha256_of(out) in card and "untrained" in card
    assert "| NMSE | untrained, 5 seeds |" in card and "n/a" not in card


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
    rng = np.random.default_rng(9)
    nmse = accelerations * rng.uniform(0.5, 1.5, len(accelerations))
    others = [accelerations + rng.normal(0, s, len(accelerations)) for s in (1, 3)]
    checks = compare_orderings(
        slice_ids,
        accelerations,
        trained,
        untrained,
        groups,
        nmse=nmse,
        other_untrained=others,
        resamples=300,
        seed=4,
    )
    for check, members in zip(checks, groups.values(), strict=True):
        rows_of = {m: np.flatnonzero(slice_ids == m) for m in members}
        in_group = np.isin(slice_ids, members)
        assert check.slices == len(members)

        def scipy_spearman(values, in_group=in_group):
            return spearmanr(accelerations[in_group], values[in_group]).statistic

        assert check.trained == pytest.approx(scipy_spearman(trained), abs=1e-12)
        assert check.nmse == pytest.approx(scipy_spearman(nmse), abs=1e-12)
        assert check.untrained_seeds == pytest.approx([scipy_spearman(o) for o in others])
        values = [scipy_spearman(v) for v in (untrained, *others)]
        assert check.untrained_range == pytest.approx((min(values), max(values)))
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
    torch.manual_seed(1)
    other = SSFDEncoder().eval()
    checks = acceleration_checks(
        encoder, encoder, slices, anatomy_groups(slices, slice_sources()), other_untrained=[other]
    )
    assert [c.group for c in checks] == ["all", "brain (the training anatomy)", "other anatomy"]
    assert [c.slices for c in checks] == [2, 1, 1]
    assert all(c.difference == 0 and c.verdict == "no clear difference" for c in checks)
    assert checks[0].trained > 0.8, "zero-filled series are ordered by acceleration"
    # the yardsticks are measured on the same reconstructions: within one slice, NMSE and any
    # encoder order a zero-filled series by acceleration almost perfectly
    for check in checks[1:]:
        assert check.nmse > 0.9 and check.untrained_seeds[0] > 0.9
    assert checks[0].untrained_seeds[0] != checks[0].untrained, "another seed, other weights"


def test_cs_series_are_the_demo_studys_reconstructions_at_each_acceleration():
    """cs-tv reconstructions are simulated as the demo's are: the same function and settings
    give the same images, and more acceleration costs more error."""
    from fixtures.demo import TV
    from fixtures.simulation import Protocol, simulate_case

    image = load_slice("s1-axial")
    ((slice_id, reference, accelerations, recs),) = acceleration_series(
        {"s1-axial": image}, "cs-tv", seed=5
    )
    assert slice_id == "s1-axial" and accelerations == ACCELERATIONS and len(recs) == 6
    case = simulate_case(image, [Protocol("cs-tv", 2, center_fraction=0.16, options=TV)], seed=5)
    assert reference == pytest.approx(case.reference, abs=1e-12)
    assert recs[0] == pytest.approx(case.reconstructions[0][1], abs=1e-12)
    nmse = [np.sum((r - reference) ** 2) / np.sum(reference**2) for r in recs]
    assert spearmanr(accelerations, nmse).statistic > 0.9
    with pytest.raises(ValueError, match="unknown reconstruction method"):
        next(acceleration_series({"s1-axial": image}, "zero-filed"))


def _evaluate_ssfd(*args):
    return subprocess.run(
        [sys.executable, "-m", "metrics", "evaluate-ssfd", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_evaluate_ssfd_command_checks_the_shipped_encoder(tmp_path):
    shipped = LOCAL_WEIGHTS_DIR / SSFD_LOCAL_FILE.filename
    weights = tmp_path / shipped.name
    shutil.copy(shipped, weights)
    shutil.copy(shipped.with_suffix(".md"), weights.with_suffix(".md"))
    args = ("--weights", str(weights), "--json", str(tmp_path / "checks.json"), "--record")
    result = _evaluate_ssfd(*args)
    assert result.returncode == 0, result.stderr
    assert SSFD_LOCAL_FILE.sha256 in result.stdout and "untrained seed 0" in result.stdout
    card = weights.with_suffix(".md").read_text()
    assert card.startswith(shipped.with_suffix(".md").read_text().split(LATER_CHECKS)[0])
    assert card.count(LATER_CHECKS) == 1 and "zero-filled reconstructions of the held-out" in card
    recorded = torch.load(shipped, weights_only=True)
    (checks,) = json.loads((tmp_path / "checks.json").read_text()).values()
    # the same check as at training time, on the same reconstructions: the same numbers
    for now, then in zip(checks, recorded["evaluation"]["ordering_checks"], strict=True):
        assert now["trained"] == pytest.approx(then["trained"], abs=1e-6)
        assert now["untrained"] == pytest.approx(then["untrained"], abs=1e-6)
        assert now["nmse"] > 0.8 and len(now["untrained_seeds"]) == 4


def test_evaluate_ssfd_command_rejects_a_file_that_is_not_an_ssfd_checkpoint(tmp_path):
    missing = _evaluate_ssfd("--weights", str(tmp_path / "absent.pt"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no such file" in missing.stderr
    other = tmp_path / "other.pt"
    torch.save({"model_state_dict": {"conv.weight": torch.zeros(1)}}, other)
    wrong = _evaluate_ssfd("--weights", str(other))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "not an SSFD checkpoint" in wrong.stderr and "Traceback" not in wrong.stderr


def test_later_checks_replace_the_earlier_record_and_keep_the_card(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"weights")
    weights.with_suffix(".md").write_text("# Model card\n\nTrained on two subjects.\n")
    check = {
        "group": "all",
        "slices": 10,
        "trained": 0.8,
        "untrained": 0.9,
        "difference": -0.1,
        "difference_interval": (-0.2, -0.01),
        "verdict": "worse",
        "nmse": 0.86,
        "untrained_range": (0.82, 0.9),
    }
    record_later_checks(weights, {"cs-tv": [check]}, seed=0, when="2026-12-01")
    record_later_checks(weights, {"zero-filled": [check]}, seed=0, when="2026-12-02")
    card = weights.with_suffix(".md").read_text()
    assert card.startswith("# Model card\n\nTrained on two subjects.\n")
    assert (
        card.count(LATER_CHECKS) == 1
        and "2026-12-02" in card
        and "cs-tv reconstructions" not in card
    )
    assert "| all | 10 | 0.800 | 0.900 | -0.100 | -0.200 to -0.010 | worse | 0.860 |" in card
    assert sha256_of(weights) in card
