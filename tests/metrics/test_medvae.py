"""dfd-medvae: MedVAE's 2-D encoder loaded from a checkpoint in the published layout.

The published weights live on the Hugging Face Hub, which this machine cannot reach; the tests
make checkpoints in the layout MedVAE saves (latent-diffusion parameter names under
"state_dict", decoder and loss tensors beside the encoder's) from seeded weights. The
independent reference is diffusers' AutoencoderKL, whose own converter maps those names to
its modules: the posterior mean it computes must equal ours.
"""

import diffusers
import numpy as np
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from metrics.dfd.distances import DeepFeatureDistance
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.kl_autoencoder import KLEncoder, KLEncoderConfig
from metrics.dfd.weights import MEDVAE_FILE, WeightsUnavailableError, availability, weights_version

TOLERANCE = 1e-5  # float32 on both sides
SPEC = ENCODERS["dfd-medvae"]


def medvae_layout(multipliers=(1, 2, 4), width=32, seed=0) -> tuple[dict, KLEncoderConfig]:
    """A whole-autoencoder checkpoint as MedVAE's AutoencoderKL saves it, seeded."""
    config = KLEncoderConfig(
        in_channels=1,
        width=width,
        multipliers=multipliers,
        blocks_per_level=2,
        attention_levels=frozenset(),
        mid_attention=True,
        z_channels=1,
        embed_dim=1,
    )
    torch.manual_seed(seed)
    state = KLEncoder(config).state_dict()
    generator = torch.Generator().manual_seed(seed + 1)
    for key, value in state.items():
        # Non-trivial GroupNorm affines and biases, so that a skipped one shows.
        if key.endswith(".bias") or ".norm" in key:
            state[key] = value + 0.1 * torch.randn(value.shape, generator=generator)
    # What a published file also holds and the encoder must ignore.
    state["decoder.conv_in.weight"] = torch.randn(width * multipliers[-1], 1, 3, 3)
    state["post_quant_conv.weight"] = torch.randn(1, 1, 1, 1)
    state["channel_ds.0.weight"] = torch.randn(64, 1, 1, 1)
    state["loss.discriminator.main.0.weight"] = torch.randn(64, 1, 4, 4)
    return {"state_dict": state}, config


def diffusers_posterior_mean(checkpoint: dict, config: KLEncoderConfig, x: torch.Tensor):
    levels = len(config.multipliers)
    vae = diffusers.AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.width * m for m in config.multipliers),
        layers_per_block=config.blocks_per_level,
        latent_channels=config.z_channels,
        norm_num_groups=32,
    ).eval()
    converted = convert_ldm_vae_checkpoint(checkpoint["state_dict"], vae.config)
    missing, unexpected = vae.load_state_dict(converted, strict=False)
    # Everything the encoder side needs came across by diffusers' own mapping.
    assert not unexpected
    assert missing and all(k.startswith(("decoder.", "post_quant_conv.")) for k in missing)
    with torch.no_grad():
        return vae.encode(x).latent_dist.mean


def scaled(images: np.ndarray) -> torch.Tensor:
    """MedVAE's load_2d: ScaleIntensity to [0, 1], then Normalize(0.5, 0.5)."""
    x = torch.as_tensor(images).unsqueeze(1)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x - lo) / (hi - lo) - 0.5) / 0.5


def pairs(n=3, size=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    refs = np.stack([np.sin(x / (3 + i)) + np.cos(y / (4 + i)) + 2 for i in range(n)])
    recs = refs + 0.3 * rng.standard_normal(refs.shape)
    return refs.astype(np.float32), recs.astype(np.float32)


@pytest.mark.parametrize("multipliers", [(1, 2, 4), (1, 2, 4, 4)], ids=["4x", "8x"])
def test_distance_is_the_mse_of_diffusers_posterior_means(multipliers, tmp_path, device):
    checkpoint, config = medvae_layout(multipliers)
    torch.save(checkpoint, tmp_path / MEDVAE_FILE.filename)
    refs, recs = pairs()
    ours = DeepFeatureDistance.load(SPEC, weights_dir=tmp_path, device=device).pair_distances(
        refs, recs
    )
    mean_ref = diffusers_posterior_mean(checkpoint, config, scaled(refs))
    mean_rec = diffusers_posterior_mean(checkpoint, config, scaled(recs))
    assert mean_ref.shape[-1] == refs.shape[-1] // config.downsampling
    expected = ((mean_ref - mean_rec) ** 2).mean(dim=(1, 2, 3)).double().numpy()
    assert np.allclose(ours, expected, rtol=TOLERANCE, atol=1e-9)
    assert (ours > 0).all()


def test_architecture_is_read_off_the_checkpoint():
    checkpoint, config = medvae_layout((1, 2, 4, 4), width=64)
    assert KLEncoderConfig.from_state_dict(checkpoint["state_dict"]) == config


def test_found_in_the_hugging_face_cache_and_versioned_by_its_own_hash(tmp_path, monkeypatch):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    available, reason = availability(SPEC, weights_dir)
    assert not available
    assert "python -m metrics fetch-weights dfd-medvae" in reason
    snapshot = tmp_path / "hub/models--stanfordmimi--MedVAE/snapshots/0123abc/model_weights"
    snapshot.mkdir(parents=True)
    torch.save(medvae_layout()[0], snapshot / "vae_4x_1c_2D.ckpt")
    assert availability(SPEC, weights_dir) == (True, "")
    first = weights_version(SPEC, weights_dir)
    torch.save(medvae_layout(seed=5)[0], snapshot / "vae_4x_1c_2D.ckpt")
    second = weights_version(SPEC, weights_dir)
    assert first.startswith("medvae-4x1c-2d+") and second.startswith("medvae-4x1c-2d+")
    assert first != second


def test_a_checkpoint_that_is_not_a_one_channel_kl_autoencoder_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 1, 3, 3)}}, tmp_path / "a.ckpt")
    with pytest.raises(WeightsUnavailableError, match="no encoder.conv_in.weight"):
        DeepFeatureDistance.load(SPEC, weights_dir=tmp_path, override=tmp_path / "a.ckpt")

    checkpoint, _ = medvae_layout()
    state = checkpoint["state_dict"]
    state["encoder.conv_in.weight"] = state["encoder.conv_in.weight"].repeat(1, 3, 1, 1)
    torch.save(checkpoint, tmp_path / "rgb.ckpt")
    with pytest.raises(WeightsUnavailableError, match="3-channel"):
        DeepFeatureDistance.load(SPEC, weights_dir=tmp_path, override=tmp_path / "rgb.ckpt")

    checkpoint, _ = medvae_layout()
    del checkpoint["state_dict"]["encoder.mid.block_2.conv2.bias"]
    torch.save(checkpoint, tmp_path / "cut.ckpt")
    with pytest.raises(WeightsUnavailableError, match="does not fit KLEncoder"):
        DeepFeatureDistance.load(SPEC, weights_dir=tmp_path, override=tmp_path / "cut.ckpt")
