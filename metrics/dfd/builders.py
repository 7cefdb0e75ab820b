"""Encoder builders: a checkpoint's paths in, (feature network, calibration tensors) out.

torch, torchvision and the networks are imported inside each builder, when an encoder loads,
so that the registry stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metrics.dfd.weights import (
    ALEXNET_FILE,
    DISTS_FILE,
    EFFICIENTNET_LITE0_FILE,
    LPIPS_ALEX_FILE,
    LPIPS_VGG_FILE,
    MEDVAE_FILE,
    RADIMAGENET_FILE,
    RESNET50_FILE,
    VGG16_FILE,
    WeightsUnavailableError,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

RANDOM_RESNET50_SEED = 0

WeightPaths = dict[str, Path]
# A feature network and the calibration tensors its distance needs (LPIPS, DISTS weights).
Built = tuple["nn.Module", dict[str, "torch.Tensor"]]


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt or foreign file
        raise WeightsUnavailableError(
            f"{path}: not a readable PyTorch checkpoint ({error})"
        ) from error


def _state_dict(checkpoint: dict[str, Any], *nested_keys: str) -> dict[str, torch.Tensor]:
    for key in nested_keys:
        if (
            isinstance(checkpoint, dict)
            and key in checkpoint
            and isinstance(checkpoint[key], dict)
        ):
            return checkpoint[key]
    return checkpoint


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise WeightsUnavailableError(
            f"{path}: does not fit {type(model).__name__} ({first_line})"
        ) from error


# RadImageNet's PyTorch release saves nn.Sequential(*list(resnet50.children())[:-1]):
# its children are numbered; map them back to torchvision's names.
_SEQUENTIAL_RESNET = {
    "0": "conv1",
    "1": "bn1",
    "4": "layer1",
    "5": "layer2",
    "6": "layer3",
    "7": "layer4",
}


def _torchvision_resnet_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone.", "encoder.", "model."):
            key = key.removeprefix(prefix)
        head, _, rest = key.partition(".")
        if head in _SEQUENTIAL_RESNET:
            key = f"{_SEQUENTIAL_RESNET[head]}.{rest}"
        if not key.startswith("fc."):
            renamed[key] = value
    return renamed


# --- builders: weight paths -> (feature network, calibration tensors) ----------------------


def _vgg16(paths: dict[str, Path], filename: str) -> Any:  # torchvision's VGG (untyped)
    import torchvision

    model = torchvision.models.vgg16()
    _load_strict(model, load_checkpoint(paths[filename]), paths[filename])
    return model


def build_vgg16(paths: WeightPaths) -> Built:
    from metrics.dfd.networks import VGG16_TAPS, tapped

    return tapped(_vgg16(paths, VGG16_FILE.filename), VGG16_TAPS), {}


def _lpips_calibration(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {f"lin{i}": state[f"lin{i}.model.1.weight"] for i in range(5)}


def build_lpips_vgg(paths: WeightPaths) -> Built:
    from metrics.dfd.networks import VGG16_TAPS, tapped

    calibration = _lpips_calibration(paths[LPIPS_VGG_FILE.filename])
    return tapped(_vgg16(paths, VGG16_FILE.filename), VGG16_TAPS), calibration


def build_lpips_alex(paths: WeightPaths) -> Built:
    import torchvision

    from metrics.dfd.networks import ALEXNET_TAPS, tapped

    model = torchvision.models.alexnet()
    path = paths[ALEXNET_FILE.filename]
    _load_strict(model, load_checkpoint(path), path)
    return tapped(model, ALEXNET_TAPS), _lpips_calibration(paths[LPIPS_ALEX_FILE.filename])


def build_dists(paths: WeightPaths) -> Built:
    from metrics.dfd.networks import DistsVGG

    network = DistsVGG(_vgg16(paths, VGG16_FILE.filename).features)
    state = load_checkpoint(paths[DISTS_FILE.filename])
    return network, {"alpha": state["alpha"], "beta": state["beta"]}


def _resnet50_trunk(state: dict[str, torch.Tensor] | None, path: Path | None) -> nn.Module:
    import torchvision
    from torch import nn

    from metrics.dfd.networks import RESNET50_TAPS, tapped

    model = torchvision.models.resnet50()
    if state is not None and path is not None:
        model.fc = nn.Identity()
        _load_strict(model, _torchvision_resnet_keys(state), path)
    return tapped(model, RESNET50_TAPS)


def build_resnet50(paths: WeightPaths) -> Built:
    path = paths[RESNET50_FILE.filename]
    return _resnet50_trunk(load_checkpoint(path), path), {}


def build_resnet50_random(paths: WeightPaths) -> Built:
    # The reference study's lower bound: the same architecture, untrained. torch's default
    # initialisation draws from its global generator, so seed a private fork of it.
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_RESNET50_SEED)
        return _resnet50_trunk(None, None), {}


def build_radimagenet(paths: WeightPaths) -> Built:
    path = paths[RADIMAGENET_FILE.filename]
    state = _state_dict(load_checkpoint(path), "state_dict", "model_state_dict", "model")
    return _resnet50_trunk(state, path), {}


def build_efficientnet_lite0(paths: WeightPaths) -> Built:
    from efficientnet_lite_pytorch import EfficientNet

    from metrics.dfd.networks import EfficientNetLiteTrunk

    model = EfficientNet.from_name("efficientnet-lite0")
    path = paths[EFFICIENTNET_LITE0_FILE.filename]
    _load_strict(model, load_checkpoint(path), path)
    return EfficientNetLiteTrunk(model), {}


def build_ssfd(filename: str) -> Callable[[WeightPaths], Built]:
    def build(paths: WeightPaths) -> Built:
        from metrics.dfd.networks import SSFDEncoder

        path = paths[filename]
        encoder = SSFDEncoder()
        _load_strict(encoder, _state_dict(load_checkpoint(path), "model_state_dict"), path)
        return encoder, {}

    return build


def build_medvae(paths: WeightPaths) -> Built:
    from metrics.dfd.kl_autoencoder import KLEncoder, KLEncoderConfig, encoder_state

    path = paths[MEDVAE_FILE.filename]
    state = encoder_state(_state_dict(load_checkpoint(path), "state_dict"))
    try:
        config = KLEncoderConfig.from_state_dict(state)
    except KeyError as error:
        raise WeightsUnavailableError(f"{path}: {error.args[0]}") from None
    if config.in_channels != 1:
        raise WeightsUnavailableError(
            f"{path}: a {config.in_channels}-channel autoencoder; dfd-medvae takes the "
            "one-channel 2-D MedVAE models (medvae_4_1_2d, medvae_8_1_2d)"
        )
    encoder = KLEncoder(config)
    _load_strict(encoder, state, path)
    return encoder, {}
