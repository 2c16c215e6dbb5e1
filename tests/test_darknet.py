import numpy as np
import pytest
import torch
from darknet_reference import YOLOV4_CFG, conv_shapes, parse_cfg, random_weights, run_cfg, write_weights

from yolovis.config import ModelConfig
from yolovis.errors import UserError
from yolovis.model import CSPDarknet53, build_model
from yolovis.model.blocks import ConvBNAct
from yolovis.model.darknet import load_darknet_weights

needs_cfg = pytest.mark.skipif(not YOLOV4_CFG.exists(), reason="shared/reference/darknet_yolov4.cfg is absent")


def own_layout(module: torch.nn.Module) -> np.ndarray:
    """Serialise a module's convs in darknet's per-layer layout, written independently of the loader."""
    parts = []
    for m in module.modules():
        if isinstance(m, ConvBNAct):
            conv, bn = m[0], m[1]
            parts += [bn.bias, bn.weight, bn.running_mean, bn.running_var, conv.weight]
    return torch.cat([p.detach().flatten() for p in parts]).numpy().astype("<f4")


def randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            for t in (m.weight, m.bias, m.running_mean):
                t.data.copy_(torch.randn(t.shape, generator=g) * 0.1)
            m.running_var.data.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def test_round_trip_restores_every_conv(tmp_path):
    src = CSPDarknet53()
    randomise(src, 1)
    path = tmp_path / "backbone.weights"
    write_weights(path, own_layout(src))
    dst = CSPDarknet53()
    assert load_darknet_weights(dst, path) == 72  # 1 stem + 5 stages x (5 + 2 x blocks)
    for (name, a), b in zip(src.state_dict().items(), dst.state_dict().values(), strict=True):
        if "num_batches_tracked" not in name:
            assert torch.equal(a, b), name


def test_old_header_with_32_bit_seen(tmp_path):
    src = CSPDarknet53()
    path = tmp_path / "old.weights"
    write_weights(path, own_layout(src), major=0, minor=1, seen=7)
    assert load_darknet_weights(CSPDarknet53(), path) == 72


def test_whole_model_takes_backbone_and_spp(tmp_path):
    model = build_model(ModelConfig(scale="full", num_classes=3))
    randomise(model, 2)
    path = tmp_path / "conv.weights"
    write_weights(path, np.concatenate([own_layout(model.backbone), own_layout(model.spp)]))
    fresh = build_model(ModelConfig(scale="full", num_classes=3))
    assert load_darknet_weights(fresh, path) == 78
    assert torch.equal(fresh.spp.post[2][0].weight, model.spp.post[2][0].weight)
    # The same file into the backbone alone: the SPP layers are a known tail, not an error.
    assert load_darknet_weights(CSPDarknet53(), path) == 72


def test_bad_files_get_clear_errors(tmp_path):
    backbone = CSPDarknet53()
    params = own_layout(backbone)
    cases = {
        "short.weights": params[:-10],
        "long.weights": np.concatenate([params, np.zeros(123, "<f4")]),
    }
    for name, data in cases.items():
        write_weights(tmp_path / name, data)
    with pytest.raises(UserError, match="too short"):
        load_darknet_weights(backbone, tmp_path / "short.weights")
    with pytest.raises(UserError, match="too long"):
        load_darknet_weights(backbone, tmp_path / "long.weights")
    (tmp_path / "text.weights").write_text("hello, I am not a weights file at all")
    with pytest.raises(UserError, match="not a darknet"):
        load_darknet_weights(backbone, tmp_path / "text.weights")
    torch.save({"a": 1}, tmp_path / "ckpt.weights")
    with pytest.raises(UserError, match="PyTorch checkpoint"):
        load_darknet_weights(backbone, tmp_path / "ckpt.weights")
    with pytest.raises(UserError, match="cannot read"):
        load_darknet_weights(backbone, tmp_path / "missing.weights")
    with pytest.raises(UserError, match="full scale"):
        load_darknet_weights(CSPDarknet53(width=0.25, depth=0.33), tmp_path / "short.weights")


@needs_cfg
def test_shapes_match_darknet_cfg():
    layers = parse_cfg(YOLOV4_CFG)
    ours = [(m[0].in_channels, m[0].out_channels, m[0].kernel_size[0], True) for m in CSPDarknet53().modules()
            if isinstance(m, ConvBNAct)]  # fmt: skip
    assert ours == conv_shapes(layers, last=104)


@needs_cfg
def test_stage_outputs_equal_darknet_definition(tmp_path):
    """Darknet's own layer list (layers 0-116) and our modules, loaded from the same file, agree to 1e-3."""
    layers = parse_cfg(YOLOV4_CFG)
    params = random_weights(conv_shapes(layers, last=116), seed=0)
    path = tmp_path / "yolov4-like.weights"
    write_weights(path, params)
    model = build_model(ModelConfig(scale="full", num_classes=3)).eval()
    assert load_darknet_weights(model, path) == 78
    x = torch.rand(1, 3, 96, 64, generator=torch.Generator().manual_seed(0))  # non-square on purpose
    reference = run_cfg(layers, params, x, last=116)
    with torch.no_grad():
        stages = model.backbone(x)
        spp = model.spp(stages[-1])
    for ours, layer in zip(stages + [spp], (23, 54, 85, 104, 116), strict=True):
        ref = reference[layer].float()
        assert ours.shape == ref.shape, layer
        assert (ours - ref).abs().max().item() < 1e-3, layer
        assert ref.abs().mean().item() > 0.05  # unit-scale activations, not a trivially small comparison
