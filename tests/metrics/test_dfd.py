"""Deep feature distances: each registry entry's recipe, on weights these tests make.

Independent references: the `lpips` package (LPIPS-VGG, LPIPS-Alex, VGG16 without learned
weights), `DISTS_pytorch` (DISTS), torchvision forward hooks (ResNet50, EfficientNet-Lite0) and
the published SSFD computation written out by hand. Backbones are random but seeded; the
registered calibration files (lpips, DISTS) are the real ones from their packages.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from fixtures.images import load_slice
from fixtures.simulation import zero_filled_series
from metrics.dfd.distances import PREPROCESSING, DeepFeatureDistance, preprocess_zscore
from metrics.dfd.encoders import ENCODERS
from metrics.dfd.networks import SSFDEncoder, WeightStandardizedConv2d, inference_graph
from metrics.dfd.weights import (
    WeightsChecksumError,
    WeightsFile,
    WeightsUnavailableError,
    availability,
    resolve_weights,
    verify,
)
from metrics.image import MetricInputError

TOLERANCE = 1e-5  # float32 features; the references run in float32 too


def seeded(model_fn, seed=0):
    torch.manual_seed(seed)
    return model_fn().eval()


def save_state(tmp_path, name, state):
    path = tmp_path / name
    torch.save(state, path)
    return path


def pairs(n=3, size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    refs = np.stack([np.sin(x / (3 + i)) + np.cos(y / (4 + i)) + 2 for i in range(n)]).astype(
        np.float32
    )
    recs = (refs + 0.3 * rng.standard_normal(refs.shape)).astype(np.float32)
    return refs, recs


def load(name, tmp_path, device, override=None):
    return DeepFeatureDistance.load(
        ENCODERS[name], weights_dir=tmp_path, device=device, override=override
    )


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    model = seeded(torchvision.models.vgg16)
    return save_state(tmp_path_factory.mktemp("w"), "vgg16.pth", model.state_dict()), model


def minmax_pm1_rgb(x):
    x = torch.as_tensor(x).unsqueeze(1)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (2 * (x - lo) / (hi - lo) - 1).expand(-1, 3, -1, -1)


def lpips_reference(net, backbone_features, lpips_flag):
    import lpips

    model = lpips.LPIPS(net=net, pnet_rand=True, lpips=lpips_flag, verbose=False).eval()
    for stage in (
        model.net.slice1,
        model.net.slice2,
        model.net.slice3,
        model.net.slice4,
        model.net.slice5,
    ):
        for index, module in stage.named_children():
            module.load_state_dict(backbone_features[int(index)].state_dict())
    return model


@pytest.mark.parametrize(("name", "lpips_flag"), [("dfd-lpips-vgg", True), ("dfd-vgg16", False)])
def test_vgg_distances_match_the_lpips_package(name, lpips_flag, vgg16_file, tmp_path, device):
    path, model = vgg16_file
    refs, recs = pairs()
    ours = load(name, tmp_path, device, override=path).pair_distances(refs, recs)
    reference = lpips_reference("vgg", model.features, lpips_flag)
    with torch.no_grad():
        expected = reference(minmax_pm1_rgb(refs), minmax_pm1_rgb(recs)).flatten().numpy()
    assert np.allclose(ours, expected, rtol=TOLERANCE, atol=1e-7), (ours, expected)


def test_lpips_alex_matches_the_lpips_package(tmp_path, device):
    model = seeded(torchvision.models.alexnet)
    path = save_state(tmp_path, "alex.pth", model.state_dict())
    refs, recs = pairs()
    ours = load("dfd-lpips-alex", tmp_path, device, override=path).pair_distances(refs, recs)
    reference = lpips_reference("alex", model.features, True)
    with torch.no_grad():
        expected = reference(minmax_pm1_rgb(refs), minmax_pm1_rgb(recs)).flatten().numpy()
    assert np.allclose(ours, expected, rtol=TOLERANCE, atol=1e-7)


def test_dists_matches_dists_pytorch(vgg16_file, tmp_path, device, monkeypatch):
    import DISTS_pytorch.DISTS_pt as dists_module

    from metrics.dfd.weights import DISTS_FILE, locate

    path, model = vgg16_file
    # dists_module.models is torchvision.models, which our loader calls too: hand each caller its
    # own copy, so that the reference never shares (or follows to the GPU) our network's layers.
    monkeypatch.setattr(dists_module.models, "vgg16", lambda **kwargs: copy.deepcopy(model))
    reference = dists_module.DISTS(load_weights=False).eval()
    calibration = torch.load(locate(DISTS_FILE, tmp_path), weights_only=True)
    reference.alpha.data, reference.beta.data = calibration["alpha"], calibration["beta"]
    refs, recs = pairs()
    ours = load("dfd-dists", tmp_path, device, override=path).pair_distances(refs, recs)

    def rgb01(x):
        return (minmax_pm1_rgb(x) + 1) / 2

    with torch.no_grad():
        expected = reference(rgb01(refs), rgb01(recs), batch_average=False).numpy()
    assert np.allclose(ours, expected, rtol=1e-4, atol=1e-6), (ours, expected)


def resnet_layer3_mse(model, refs, recs):
    captured = []
    hook = model.layer3[3].conv3.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        model(minmax_pm1_rgb(refs).contiguous())
        model(minmax_pm1_rgb(recs).contiguous())
    hook.remove()
    return ((captured[0] - captured[1]) ** 2).mean(dim=(1, 2, 3)).numpy()


def test_resnet50_recipe_is_layer3_conv3_mse(tmp_path, device):
    model = seeded(torchvision.models.resnet50)
    path = save_state(tmp_path, "r50.pth", model.state_dict())
    refs, recs = pairs()
    ours = load("dfd-resnet50", tmp_path, device, override=path).pair_distances(refs, recs)
    assert np.allclose(ours, resnet_layer3_mse(model, refs, recs), rtol=TOLERANCE)


@pytest.mark.parametrize("layout", ["torchvision", "sequential", "prefixed"])
def test_radimagenet_accepts_the_published_layouts(layout, tmp_path, device):
    model = seeded(torchvision.models.resnet50, seed=3)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    if layout == "sequential":  # nn.Sequential(*list(resnet50.children())[:-1]).state_dict()
        trunk = torch.nn.Sequential(*list(model.children())[:-1])
        state = trunk.state_dict()
    elif layout == "prefixed":
        state = {"state_dict": {f"module.backbone.{k}": v for k, v in state.items()}}
    path = save_state(tmp_path, "radimagenet.pt", state)
    refs, recs = pairs()
    ours = load("dfd-radimagenet-resnet50", tmp_path, device, override=path).pair_distances(
        refs, recs
    )
    assert np.allclose(ours, resnet_layer3_mse(model, refs, recs), rtol=TOLERANCE)


def published_ssfd_block4_relu1(state: dict, x: torch.Tensor) -> torch.Tensor:
    """SSFD's `block4_relu1` written out from the published description, not from our class.

    StanfordMIMI/deep-feature-mr-recon, dfd_mr_recon/metrics/ssfd.py at commit 98212cd (the
    authors' correction b3ce5d8, "correct SSFD layer"): DoubleConv = conv1 3x3 -> ReLU (the
    tap) -> conv2 3x3 with weight standardisation (filter minus its mean over input channel and
    kernel, over its unbiased std + 1e-5) -> ReLU -> GroupNorm(10); blocks 2-5 start with a
    2x2 max pool. block4_relu1 is the first ReLU of `encoder3`.
    """
    import torch.nn.functional as F  # noqa: N812

    def double_conv(prefix, h):
        tap = F.relu(
            F.conv2d(h, state[f"{prefix}.conv1.weight"], state[f"{prefix}.conv1.bias"], padding=1)
        )
        w = state[f"{prefix}.conv2.weight"]
        w = w - w.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        w = w / (w.view(w.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5)
        h = F.relu(F.conv2d(tap, w, state[f"{prefix}.conv2.bias"], padding=1))
        h = F.group_norm(h, 10, state[f"{prefix}.GN.weight"], state[f"{prefix}.GN.bias"])
        return h, tap

    h, _ = double_conv("firstblock", x)
    for block in ("encoder1", "encoder2"):
        h, _ = double_conv(f"{block}.conv_block", F.max_pool2d(h, 2))
    _, tap = double_conv("encoder3.conv_block", F.max_pool2d(h, 2))
    return tap


def seeded_ssfd_state(seed: int) -> dict:
    """A seeded SSFD state dict in the published parameter layout; the GroupNorm affine
    parameters are drawn too (not left at 1 and 0), so a block that skipped them would show."""
    encoder = seeded(SSFDEncoder, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    state = encoder.state_dict()
    for key, value in state.items():
        if ".GN." in key:
            state[key] = value + 0.1 * torch.randn(value.shape, generator=generator)
    return state


def test_ssfd_encoder_matches_the_published_corrected_architecture():
    state = seeded_ssfd_state(seed=11)
    encoder = SSFDEncoder().eval()
    encoder.load_state_dict(state)
    x = torch.randn(2, 1, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = encoder(x)["block4_relu1"]
        expected = published_ssfd_block4_relu1(state, x)
    assert ours.shape == (2, 160, 8, 6), "block4_relu1: 160 channels at 1/8 resolution"
    assert torch.allclose(ours, expected, rtol=TOLERANCE, atol=TOLERANCE)


def test_ssfd_loads_the_published_layout_and_follows_its_recipe(tmp_path, device):
    state = seeded_ssfd_state(seed=5)
    path = save_state(tmp_path, "ssfd.ckpt", {"model_state_dict": state, "epoch": 3})
    refs, recs = pairs(size=48)
    ours = load("dfd-ssfd", tmp_path, device, override=path).pair_distances(refs, recs)
    with torch.no_grad():  # the published computation: z-score (unbiased std), block4_relu1, MSE

        def z(x):
            x = torch.as_tensor(x).unsqueeze(1)
            return (x - x.mean(dim=(2, 3), keepdim=True)) / x.std(dim=(2, 3), keepdim=True)

        f0 = published_ssfd_block4_relu1(state, z(refs))
        f1 = published_ssfd_block4_relu1(state, z(recs))
    expected = ((f0 - f1) ** 2).mean(dim=(2, 3)).mean(dim=1).numpy()
    assert np.allclose(ours, expected, rtol=TOLERANCE)


def test_ssfd_parameter_names_are_the_published_ones():
    names = set(SSFDEncoder().state_dict())
    assert {
        "firstblock.conv1.weight",
        "firstblock.GN.weight",
        "encoder3.conv_block.conv2.bias",
        "encoder4.conv_block.GN.bias",
    } <= names
    assert len(names) == 30, "5 blocks x (2 convs + GroupNorm) x (weight, bias)"


def test_wrong_checkpoint_is_a_clear_error(tmp_path):
    path = save_state(tmp_path, "wrong.pt", {"model_state_dict": {"nonsense": torch.zeros(1)}})
    with pytest.raises(WeightsUnavailableError, match="does not fit SSFDEncoder"):
        load("dfd-ssfd", tmp_path, "cpu", override=path)
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="not a readable PyTorch checkpoint"):
        load("dfd-ssfd", tmp_path, "cpu", override=tmp_path / "garbage.pt")


def test_efficientnet_lite0_is_available_offline_with_verified_weights(tmp_path, device):
    spec = ENCODERS["dfd-efficientnet-lite0"]
    assert availability(spec, tmp_path) == (True, "")
    dfd = load("dfd-efficientnet-lite0", tmp_path, device)
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0").eval()
    model.load_state_dict(torch.load(resolve_weights(spec, tmp_path)[spec.weights[0].filename]))
    captured = []
    model._blocks[10].register_forward_hook(lambda m, i, o: captured.append(o))
    refs, recs = pairs(size=64)
    with torch.no_grad():
        model.extract_features(minmax_pm1_rgb(refs).contiguous())
        model.extract_features(minmax_pm1_rgb(recs).contiguous())
    expected = ((captured[0] - captured[1]) ** 2).mean(dim=(1, 2, 3)).numpy()
    assert np.allclose(dfd.pair_distances(refs, recs), expected, rtol=TOLERANCE)


def graph_modules(network, kind):
    return [name for name, module in network.named_modules() if isinstance(module, kind)]


@pytest.mark.parametrize(
    ("name", "untapped"),
    [
        ("dfd-resnet50-random", "layer3.4"),
        ("dfd-efficientnet-lite0", "blocks.11"),
        ("dfd-ssfd-local", "encoder4"),
    ],
)
def test_inference_graph_folds_batch_norms_and_computes_only_the_taps(name, untapped, tmp_path):
    spec = ENCODERS[name]
    network, _ = spec.builder(resolve_weights(spec, tmp_path))
    network.eval()
    graph = inference_graph(network, spec.layers)
    assert graph_modules(graph, torch.nn.BatchNorm2d) == [], "every batch norm is folded"
    assert graph_modules(graph, WeightStandardizedConv2d) == [], (
        "standardised once, as plain convs"
    )
    assert not [n for n, _ in graph.named_modules() if n.startswith(untapped)], (
        "nothing past the deepest tap is kept"
    )
    x = PREPROCESSING[spec.preprocessing](torch.as_tensor(pairs(n=2, size=96)[1]).unsqueeze(1))
    with torch.inference_mode():
        expected, folded = network(x), graph(x)
    assert list(folded) == list(spec.layers)
    for layer in spec.layers:
        scale = expected[layer].abs().max()
        assert torch.allclose(folded[layer], expected[layer], atol=TOLERANCE * scale)
    with pytest.raises(ValueError, match="eval mode"):
        inference_graph(network.train(), spec.layers)


def test_inference_graph_leaves_a_shared_convolution_unfolded():
    class Shared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return {"a": self.norm(self.conv(x)), "b": self.conv(x)}

    torch.manual_seed(0)
    network = Shared().eval()
    network.norm.running_mean.uniform_(-1, 1)
    network.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 1, 16, 16)
    with torch.inference_mode():
        expected, out = network(x), inference_graph(network, ("a", "b"))(x)
    assert all(torch.allclose(out[k], expected[k], atol=1e-6) for k in ("a", "b"))


OFFLINE = ["dfd-resnet50-random", "dfd-efficientnet-lite0"]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_dfds_order_reconstructions_by_undersampling(name, tmp_path, device):
    reference = load_slice("s1-axial").astype(np.float64)
    recs = zero_filled_series(reference, (2, 4, 8), rng=np.random.default_rng(1))
    distances = load(name, tmp_path, device).case_distances(reference, [reference, *recs])
    assert distances[0] == pytest.approx(0.0, abs=1e-6), "identity gives zero"
    assert distances[1] < distances[2] < distances[3], (
        f"more undersampling, larger distance: {distances}"
    )


@pytest.mark.parametrize("name", OFFLINE)
def test_batching_and_volumes_do_not_change_values(name, tmp_path, device):
    refs, recs = pairs(n=5)
    one_by_one = DeepFeatureDistance.load(
        ENCODERS[name], weights_dir=tmp_path, device=device, batch_size=1
    )
    batched = DeepFeatureDistance.load(
        ENCODERS[name], weights_dir=tmp_path, device=device, batch_size=4
    )
    a, b = one_by_one.pair_distances(refs, recs), batched.pair_distances(refs, recs)
    assert np.allclose(a, b, rtol=1e-4)
    volume = batched.case_distances(refs, [recs])[0]
    assert volume == pytest.approx(float(np.mean(a)), rel=1e-4), (
        "a volume's distance is the slice mean"
    )


def test_batch_size_defaults_to_the_device_and_a_setting_wins(tmp_path):
    assert load("dfd-resnet50-random", tmp_path, "cpu").batch_size == 1, (
        "one slice per pass on a CPU, where larger batches spill out of cache"
    )
    explicit = DeepFeatureDistance.load(
        ENCODERS["dfd-resnet50-random"], weights_dir=tmp_path, batch_size=16
    )
    assert explicit.batch_size == 16


def test_case_distances_report_a_bad_reconstruction_and_go_on(tmp_path):
    dfd = load("dfd-resnet50-random", tmp_path, "cpu")
    refs, recs = pairs(n=1)
    results = dfd.case_distances(refs[0], [recs[0], np.zeros((10, 10)), recs[0]])
    assert isinstance(results[1], MetricInputError) and "shape mismatch" in str(results[1])
    assert results[0] == pytest.approx(results[2])


def test_random_resnet50_is_the_same_on_every_load_and_leaves_the_global_rng(tmp_path):
    refs, recs = pairs(n=2)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = load("dfd-resnet50-random", tmp_path, "cpu").pair_distances(refs, recs)
    assert torch.rand(1) == before, "building the control does not consume the caller's RNG"
    second = load("dfd-resnet50-random", tmp_path, "cpu").pair_distances(refs, recs)
    assert np.array_equal(first, second)


def test_preprocess_zscore_uses_the_sample_std():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z = preprocess_zscore(x)
    assert z.mean().abs() < 1e-6 and z.flatten().std() == pytest.approx(1.0, abs=1e-6)


def test_checksums_are_enforced(tmp_path):
    path = tmp_path / "file.pth"
    path.write_bytes(b"weights")
    with pytest.raises(WeightsChecksumError, match="does not match"):
        verify(path, WeightsFile("file.pth", sha256="0" * 64))
    with pytest.raises(WeightsChecksumError):
        verify(path, WeightsFile("file.pth", sha256_prefix="deadbeef"))
    import hashlib

    verify(path, WeightsFile("file.pth", sha256=hashlib.sha256(b"weights").hexdigest()))


def test_unavailable_encoders_say_what_to_do(tmp_path):
    available, reason = availability(ENCODERS["dfd-vgg16"], tmp_path)
    assert not available and "fetch-weights dfd-vgg16" in reason and "vgg16-397923af.pth" in reason
    available, reason = availability(ENCODERS["dfd-radimagenet-resnet50"], tmp_path)
    assert not available and "RadImageNet-ResNet50.pt" in reason
    with pytest.raises(WeightsUnavailableError, match="fetch-weights dfd-ssfd"):
        resolve_weights(ENCODERS["dfd-ssfd"], tmp_path)


def test_every_registry_entry_is_complete():
    domains = {"out-of-domain", "domain-adjacent", "in-domain"}
    for name, spec in ENCODERS.items():
        assert name.startswith("dfd-") and spec.domain in domains, name
        assert spec.layers and spec.reference and spec.weights_version, name
        assert all(w.licence for w in spec.weights), name
    assert {s.domain for s in ENCODERS.values()} == domains


def test_bf16_is_close_to_fp32_and_stored_under_its_own_version(tmp_path):
    from metrics.engine import metric_version

    refs, recs = pairs(n=4)
    exact = load("dfd-efficientnet-lite0", tmp_path, "cpu").pair_distances(refs, recs)
    reduced = DeepFeatureDistance.load(
        ENCODERS["dfd-efficientnet-lite0"], weights_dir=tmp_path, precision="bf16"
    )
    conv_output_dtypes = set()
    first_conv = next(m for m in reduced.network.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, out: conv_output_dtypes.add(out.dtype))
    fast = reduced.pair_distances(refs, recs)
    assert conv_output_dtypes == {torch.bfloat16}, "bf16 must really run the network in bf16"
    assert not np.array_equal(fast, exact), "Sanity: reduced precision changes the last digits"
    assert np.allclose(fast, exact, rtol=0.05), "bf16 changes values by a few per cent at most"
    assert metric_version("dfd-efficientnet-lite0", "bf16") != metric_version(
        "dfd-efficientnet-lite0"
    )
    assert metric_version("psnr", "bf16") == metric_version("psnr"), "pixel metrics stay float64"
    for cuda_only in ("fp16", "tf32"):
        with pytest.raises(ValueError, match=f"{cuda_only} needs a CUDA device"):
            DeepFeatureDistance.load(
                ENCODERS["dfd-resnet50-random"], weights_dir=tmp_path, precision=cuda_only
            )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")
def test_fp32_on_a_gpu_stores_what_a_cpu_worker_stores(tmp_path):
    """cuDNN would round float32 convolutions to TF32 unless told not to; fp32 values are stored
    under one version whichever worker computed them, so they must agree."""
    refs, recs = pairs(n=4, size=96)
    on_cpu = load("dfd-resnet50-random", tmp_path, "cpu").pair_distances(refs, recs)
    on_gpu = load("dfd-resnet50-random", tmp_path, "cuda").pair_distances(refs, recs)
    tf32 = DeepFeatureDistance.load(
        ENCODERS["dfd-resnet50-random"], weights_dir=tmp_path, device="cuda", precision="tf32"
    ).pair_distances(refs, recs)
    assert np.allclose(on_gpu, on_cpu, rtol=TOLERANCE), "fp32 is float32 on every device"
    assert np.allclose(tf32, on_cpu, rtol=0.05), "TF32 rounding changes values a little"


def test_metric_engine_passes_its_precision_to_every_encoder(tmp_path):
    from metrics.engine import MetricEngine

    own = save_state(tmp_path, "own.pt", {"model_state_dict": SSFDEncoder().state_dict()})
    engine = MetricEngine(
        ["psnr", "dfd-resnet50-random", "dfd-ssfd"],
        weights_dir=tmp_path,
        overrides={"dfd-ssfd": own},
        precision="bf16",
        compiled=True,
    )
    assert {dfd.precision for dfd in engine.dfds.values()} == {"bf16"}, (
        "values stored as +bf16 must have been computed in bf16"
    )
    assert {dfd.compiled for dfd in engine.dfds.values()} == {True}


def test_compiled_encoder_matches_eager(tmp_path, device):
    """torch.compile fuses kernels and reorders float32 sums; the distance must not move beyond
    that rounding (values are stored under the same version either way)."""
    refs, recs = pairs(n=3, size=64)
    eager = load("dfd-ssfd-local", tmp_path, device).pair_distances(refs, recs)
    fused = DeepFeatureDistance.load(
        ENCODERS["dfd-ssfd-local"], weights_dir=tmp_path, device=device, compiled=True
    )
    assert hasattr(fused.network, "_orig_mod"), "Sanity: the network really is compiled"
    assert np.allclose(fused.pair_distances(refs, recs), eager, rtol=1e-3)


def test_registered_torchvision_urls_are_torchvisions_own():
    """The registry writes the URLs out (so it loads without torchvision): they must stay
    the ones torchvision's weight enums name."""
    from metrics.dfd.weights import ALEXNET_FILE, RESNET50_FILE, VGG16_FILE

    assert VGG16_FILE.url == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert ALEXNET_FILE.url == torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    assert RESNET50_FILE.url == torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url


def test_registry_layer_names_are_the_networks_taps():
    """The registry names layers without importing torch; they must be the taps' names."""
    from metrics.dfd import encoders, networks, weights

    assert tuple(networks.VGG16_TAPS.values()) == encoders.VGG16_LAYERS
    assert tuple(networks.ALEXNET_TAPS.values()) == encoders.ALEXNET_LAYERS
    assert tuple(networks.RESNET50_TAPS.values()) == encoders.RESNET50_LAYERS
    assert torch.__version__.split("+")[0] == encoders.TORCH_VERSION
    assert weights.torch_hub_checkpoints() == Path(torch.hub.get_dir()) / "checkpoints"
