"""Encoder networks whose intermediate features the deep feature distances compare.

Every network here maps an (N, C, H, W) batch to an ordered dict {layer name: features}.
Parameter names follow each publisher's checkpoints, so their files load unchanged.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# torchvision node -> the layer name used in the LPIPS and DISTS papers.
VGG16_TAPS = {
    "features.3": "relu1_2",
    "features.8": "relu2_2",
    "features.15": "relu3_3",
    "features.22": "relu4_3",
    "features.29": "relu5_3",
}
ALEXNET_TAPS = {
    "features.1": "relu1",
    "features.4": "relu2",
    "features.7": "relu3",
    "features.9": "relu4",
    "features.11": "relu5",
}
RESNET50_TAPS = {"layer3.3.conv3": "layer3.3.conv3"}


def tapped(model: nn.Module, taps: dict[str, str]) -> nn.Module:
    """A module returning the outputs of `taps` (torchvision node -> name), via torch.fx."""
    from torchvision.models.feature_extraction import create_feature_extractor

    return create_feature_extractor(model, return_nodes=taps)


class L2Pooling(nn.Module):
    """DISTS' L2 pooling: sqrt of a Hanning-weighted 3x3 average of squares, stride 2."""

    def __init__(self, channels: int, filter_size: int = 5):
        super().__init__()
        window = np.hanning(filter_size)[1:-1]
        kernel = torch.tensor(window[:, None] * window[None, :], dtype=torch.float32)
        kernel = kernel / kernel.sum()
        self.padding = (filter_size - 2) // 2
        self.filter: torch.Tensor
        self.register_buffer("filter", kernel[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=2, padding=self.padding, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DistsVGG(nn.Module):
    """VGG16 features with L2 pooling in place of max pooling (Ding et al. 2020, DISTS).

    Returns the input itself and the five stage outputs (relu1_2 ... relu5_3).
    """

    STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
    POOL_CHANNELS = (64, 128, 256, 512)

    def __init__(self, vgg_features: nn.Sequential):
        super().__init__()
        stages = []
        for index, (start, stop) in enumerate(self.STAGES):
            layers: list[nn.Module] = []
            if index:
                layers.append(L2Pooling(self.POOL_CHANNELS[index - 1]))
                start += 1  # skip VGG's max pool
            layers += [vgg_features[i] for i in range(start, stop)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {"input": x}
        h = (x - self.mean) / self.std
        for stage, name in zip(self.stages, VGG16_TAPS.values(), strict=True):
            h = stage(h)
            features[name] = h
        return features


class WeightStandardizedConv2d(nn.Conv2d):
    """A convolution whose filters are standardised before use (Qiao et al. 2019): each output
    filter's weights minus their mean over input channels and kernel, divided by their
    unbiased standard deviation plus 1e-5. SSFD's second convolution in every block."""

    def standardized_weight(self) -> torch.Tensor:
        weight = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        std = weight.flatten(1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        return weight / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)


class _DoubleConv(nn.Module):
    """SSFD block: conv3x3 -> ReLU (tapped) -> weight-standardised conv3x3 -> ReLU -> GroupNorm(10).

    As the authors corrected it (StanfordMIMI/deep-feature-mr-recon commit b3ce5d8, "correct
    SSFD layer", 2024-02-04; `dfd_mr_recon/metrics/ssfd.py` unchanged at 98212cd): the second
    convolution is weight-standardised and the feature tap is the first ReLU. Attribute names
    (`GN`, `ReLu`, `droupout`) are those of the published checkpoint.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = WeightStandardizedConv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.GN = nn.GroupNorm(num_groups=10, num_channels=out_channels)  # noqa: N815
        self.ReLu = nn.ReLU()  # noqa: N815
        self.droupout = nn.Dropout(p=0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tapped_output = self.ReLu(self.conv1(x))
        return self.GN(self.ReLu(self.conv2(tapped_output))), tapped_output


class _EncoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.MP = nn.MaxPool2d(2)  # noqa: N815
        self.conv_block = _DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv_block(self.MP(x))


class SSFDEncoder(nn.Module):
    """The contracting path of the SSFD UNet (Adamson et al. 2021): 20-40-80-160-320 channels.

    Module names match the published checkpoint (StanfordMIMI/deep-feature-mr-recon,
    `dfd_mr_recon/metrics/ssfd.py`), whose `model_state_dict` loads with strict=True.
    """

    CHANNELS = (20, 40, 80, 160, 320)

    def __init__(self) -> None:
        super().__init__()
        c = self.CHANNELS
        self.firstblock = _DoubleConv(1, c[0])
        self.encoder1 = _EncoderBlock(c[0], c[1])
        self.encoder2 = _EncoderBlock(c[1], c[2])
        self.encoder3 = _EncoderBlock(c[2], c[3])
        self.encoder4 = _EncoderBlock(c[3], c[4])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        x, features["block1_relu1"] = self.firstblock(x)
        x, features["block2_relu1"] = self.encoder1(x)
        x, features["block3_relu1"] = self.encoder2(x)
        x, features["block4_relu1"] = self.encoder3(x)
        _, features["block5_relu1"] = self.encoder4(x)
        return features


class SSFDInpainter(nn.Module):
    """SSFD's pretext network: the encoder above and a symmetric UNet decoder (training only)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = SSFDEncoder()
        c = SSFDEncoder.CHANNELS
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(c[i + 1], c[i], kernel_size=2, stride=2) for i in range(4)
        )
        self.decode = nn.ModuleList(_DoubleConv(2 * c[i], c[i]) for i in range(4))
        self.head = nn.Conv2d(c[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        skips = []
        h, _ = enc.firstblock(x)
        skips.append(h)
        for block in (enc.encoder1, enc.encoder2, enc.encoder3):
            h, _ = block(h)
            skips.append(h)
        h, _ = enc.encoder4(h)
        for level in reversed(range(4)):
            h = self.up[level](h)
            h, _ = self.decode[level](torch.cat([h, skips[level]], dim=1))
        return self.head(h)


class EfficientNetLiteTrunk(nn.Module):
    """EfficientNet-Lite0 up to the end of its 1/16-resolution stage (112 channels).

    The analogue of ResNet50's layer3 tap: mid-level features at 1/16 resolution.
    """

    LAST_BLOCK = 10  # blocks 8-10 form stage 5 (112 channels, stride 16)

    def __init__(self, model: Any):  # an efficientnet_lite_pytorch EfficientNet (untyped)
        super().__init__()
        self.stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
        self.blocks = nn.ModuleList(model._blocks[: self.LAST_BLOCK + 1])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return {f"blocks.{self.LAST_BLOCK}": h}


class _ConvLeafTracer(torch.fx.Tracer):
    """Keeps every convolution a module call, subclasses included (EfficientNet's padded
    convolutions), so that the batch norm after it can be found and folded."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, qualified_name)


def inference_graph(network: nn.Module, layers: tuple[str, ...]) -> torch.fx.GraphModule:
    """The eval-mode `network` as an fx graph that computes only what `layers` need, with every
    batch norm folded into the convolution before it and weight standardisation done once.

    Same function up to float32 rounding (tested to 1e-5), fewer passes over the activations:
    a folded batch norm is one full read and write less per convolution, and layers after the
    deepest tap (SSFD's fifth block, for instance) are not computed at all.
    """
    if network.training:
        raise ValueError("inference_graph needs a network in eval mode")
    graph = _ConvLeafTracer().trace(network)
    module = torch.fx.GraphModule(network, graph)
    output = next(node for node in graph.nodes if node.op == "output")
    features = output.args[0]
    output.args = ({name: features[name] for name in layers},)
    # A convolution module called in two places cannot take one call's batch norm.
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        norm = module.get_submodule(node.target)
        conv = node.args[0]
        if not (
            isinstance(norm, nn.BatchNorm2d)
            and norm.track_running_stats
            and isinstance(conv, torch.fx.Node)
            and conv.op == "call_module"
            and isinstance(conv_module := module.get_submodule(str(conv.target)), nn.Conv2d)
            and len(conv.users) == 1
            and calls[conv.target] == 1
        ):
            continue
        folded = fuse_conv_bn_eval(conv_module, norm)
        parent, _, name = str(conv.target).rpartition(".")
        setattr(module.get_submodule(parent), name, folded)
        node.replace_all_uses_with(conv)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    graph.lint()
    module.recompile()
    module.delete_all_unused_submodules()
    _fold_weight_standardization(module)
    return module.eval()


def _fold_weight_standardization(module: nn.Module) -> None:
    """Frozen weights standardise to the same filters every call: do it once, as a plain conv."""
    for name, conv in list(module.named_modules()):
        if not isinstance(conv, WeightStandardizedConv2d):
            continue
        # A 2-D convolution's sizes are pairs; torch types them as tuples of any length.
        plain = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            cast(tuple[int, int], conv.kernel_size),
            stride=cast(tuple[int, int], conv.stride),
            padding=cast("str | tuple[int, int]", conv.padding),
            dilation=cast(tuple[int, int], conv.dilation),
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        with torch.no_grad():
            plain.weight.copy_(conv.standardized_weight())
            if conv.bias is not None and plain.bias is not None:
                plain.bias.copy_(conv.bias)
        parent, _, attribute = name.rpartition(".")
        setattr(module.get_submodule(parent), attribute, plain.to(conv.weight))
