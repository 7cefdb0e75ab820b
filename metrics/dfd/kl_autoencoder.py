"""The encoder half of a KL-regularised autoencoder, as MedVAE publishes its 2-D models.

MedVAE (Varma et al. 2025, stanfordmimi/MedVAE, MIT) trains the latent-diffusion autoencoder
of Rombach et al. (CVPR 2022; CompVis `ldm/modules/diffusionmodules/model.py`) on over a
million medical images. Its checkpoints keep that code's parameter names (`encoder.down.0.
block.1.conv2.weight`, `quant_conv.weight`, ...), so this module uses them too and a published
file loads unchanged. Read from stanfordmimi/MedVAE at 27f165f (`medvae/models/
autoencoder_kl.py`, `medvae/utils/vae/diffusionmodels.py`).

The architecture (width, levels, blocks per level, attention, latent channels) is read off the
checkpoint's tensor shapes rather than a config file: any 2-D model of the family (4x or 8x,
one latent channel) loads through the same path, and a file that does not fit fails with the
name of the tensor that does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

# Only these parts of a checkpoint feed the latent; the decoder, stage-2 projection and the
# training loss's discriminator are ignored.
ENCODER_PREFIXES = ("encoder.", "quant_conv.")


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class _ResnetBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, twice, plus a (1x1-projected) skip; no time embedding."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class _AttentionBlock(nn.Module):
    """Single-head self-attention over all positions, with a residual connection.

    The reference materialises the (HW x HW) weights with bmm; scaled_dot_product_attention
    computes the same softmax(q k^T / sqrt(C)) v without them (a 320x320 slice has 6,400
    positions at 1/4 resolution: 164 MB of weights per image otherwise).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        # (N, 1, HW, C): one head whose sequence is the positions.
        q, k, v = (
            conv(h).flatten(2).transpose(1, 2).unsqueeze(1) for conv in (self.q, self.k, self.v)
        )
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.squeeze(1).transpose(1, 2).reshape(x.shape)
        return x + self.proj_out(attended)


class _Downsample(nn.Module):
    """Strided conv3x3 after padding one row and column at the bottom and right only."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


@dataclass(frozen=True)
class KLEncoderConfig:
    in_channels: int
    width: int  # channels after conv_in ("ch")
    multipliers: tuple[int, ...]  # "ch_mult": channels of level i are width * multipliers[i]
    blocks_per_level: int  # "num_res_blocks"
    attention_levels: frozenset[int]  # levels whose blocks are each followed by attention
    mid_attention: bool
    z_channels: int
    embed_dim: int  # latent channels after quant_conv

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.multipliers) - 1)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> KLEncoderConfig:
        """The architecture a checkpoint was saved from, read off its tensor names and shapes.

        Raises:
            KeyError: the checkpoint lacks a tensor every KL encoder has (named in the message).
        """

        def tensor(name: str) -> torch.Tensor:
            if name not in state:
                raise KeyError(f"no {name} in the checkpoint: not a KL autoencoder")
            return state[name]

        conv_in = tensor("encoder.conv_in.weight")
        width, in_channels = conv_in.shape[:2]
        levels = _indices(state, r"encoder\.down\.(\d+)\.")
        blocks = _indices(state, r"encoder\.down\.0\.block\.(\d+)\.")
        if not levels or not blocks:
            raise KeyError("no encoder.down.<level>.block.<n> tensors: not a KL autoencoder")
        multipliers = tuple(
            tensor(f"encoder.down.{level}.block.0.conv1.weight").shape[0] // width
            for level in range(max(levels) + 1)
        )
        attention = frozenset(
            level
            for level in range(len(multipliers))
            if f"encoder.down.{level}.attn.0.q.weight" in state
        )
        z_double = tensor("encoder.conv_out.weight").shape[0]
        embed_double = tensor("quant_conv.weight").shape[0]
        return cls(
            in_channels=int(in_channels),
            width=int(width),
            multipliers=multipliers,
            blocks_per_level=max(blocks) + 1,
            attention_levels=attention,
            mid_attention="encoder.mid.attn_1.q.weight" in state,
            z_channels=int(z_double) // 2,
            embed_dim=int(embed_double) // 2,
        )


def _indices(state: dict[str, torch.Tensor], pattern: str) -> set[int]:
    expression = re.compile(pattern)
    return {int(m.group(1)) for key in state if (m := expression.match(key))}


class _Level(nn.Module):
    """One resolution level: residual blocks, each followed by attention where the level has
    it, then a downsampling except at the last level (names as in the checkpoints)."""

    def __init__(
        self, blocks: list[nn.Module], attention: list[nn.Module], downsample_channels: int | None
    ):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attention)
        if downsample_channels is not None:
            self.downsample = _Downsample(downsample_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[index](h)
        return self.downsample(h) if hasattr(self, "downsample") else h


class _Middle(nn.Module):
    def __init__(self, channels: int, attention: bool):
        super().__init__()
        self.block_1 = _ResnetBlock(channels, channels)
        self.attn_1: nn.Module = _AttentionBlock(channels) if attention else nn.Identity()
        self.block_2 = _ResnetBlock(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class _EncoderTrunk(nn.Module):
    """conv_in; per level, residual blocks (and attention), then a downsampling except at the
    last level; a middle block with attention; GroupNorm, SiLU and conv_out to 2 x z_channels."""

    def __init__(self, config: KLEncoderConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(config.in_channels, config.width, kernel_size=3, padding=1)
        levels = []
        channels = config.width
        for level, multiplier in enumerate(config.multipliers):
            blocks: list[nn.Module] = []
            attention: list[nn.Module] = []
            for _ in range(config.blocks_per_level):
                blocks.append(_ResnetBlock(channels, config.width * multiplier))
                channels = config.width * multiplier
                if level in config.attention_levels:
                    attention.append(_AttentionBlock(channels))
            last = level == len(config.multipliers) - 1
            levels.append(_Level(blocks, attention, None if last else channels))
        self.down = nn.ModuleList(levels)
        self.mid = _Middle(channels, config.mid_attention)
        self.norm_out = _group_norm(channels)
        self.conv_out = nn.Conv2d(channels, 2 * config.z_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class KLEncoder(nn.Module):
    """Image -> the mean of the diagonal Gaussian posterior over the latent.

    Returns {"latent_mean": (N, embed_dim, H / f, W / f)}. The mean, not a sample: a distance
    must not be random, and MedVAE's own `encode` draws one.
    """

    def __init__(self, config: KLEncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = _EncoderTrunk(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        moments = self.quant_conv(self.encoder(x))
        return {"latent_mean": moments[:, : self.config.embed_dim]}


def encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a whole-autoencoder checkpoint that the encoder and latent need."""
    return {key: value for key, value in state.items() if key.startswith(ENCODER_PREFIXES)}
