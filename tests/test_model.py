from dataclasses import replace

import pytest
import torch
from darknet_reference import YOLOV4_CFG, conv_shapes, parse_cfg
from targets import frame_targets, without_proposals

from yolovis.config import ModelConfig
from yolovis.errors import UserError
from yolovis.model import SCALES, CSPDarknet53, build_model

SIZES = [(64, 64), (96, 160)]  # square and non-square (H, W), multiples of 32


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("size", SIZES)
def test_output_shapes_and_strides(scale, size):
    k = 5
    model = without_proposals(build_model(ModelConfig(scale=scale, num_classes=k)).eval())
    h, w = size
    rois = [torch.tensor([[4.0, 4.0, 40.0, 30.0], [0.0, 0.0, w, h]]), torch.zeros((0, 4))]
    with torch.no_grad():
        out = model(torch.rand(2, 3, h, w), [frame_targets(r, size=(h, w)) for r in rois])
    assert out.strides == (4, 8, 16, 32)
    e = model.embedding.embed_dim
    for pred, emb, s in zip(out.predictions, out.embeddings, out.strides, strict=True):
        assert pred.shape == (2, 6, h // s, w // s, 5 + k)
        assert emb.shape == (2, e, h // s, w // s)
    assert out.anchors.shape == (4, 6, 2)
    assert out.mask_logits.shape == (2, 28, 28) and out.mask_logits.dtype == torch.float32


@pytest.mark.parametrize("scale", list(SCALES))
def test_backbone_stage_widths(scale):
    backbone = build_model(ModelConfig(scale=scale, num_classes=3)).backbone
    with torch.no_grad():
        outs = backbone(torch.rand(1, 3, 64, 96))
    assert [o.shape[1] for o in outs] == list(backbone.out_channels)
    assert [(o.shape[2], o.shape[3]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_full_backbone_widths_are_darknets():
    assert CSPDarknet53().out_channels == (128, 256, 512, 1024)


@pytest.mark.skipif(not YOLOV4_CFG.exists(), reason="darknet cfg absent")
def test_backbone_parameter_count_equals_darknet_layers_0_to_104():
    # Each darknet BN conv: the kernel plus BN gamma and beta (the running statistics are buffers).
    expected = sum(o * i * k * k + 2 * o for i, o, k, _ in conv_shapes(parse_cfg(YOLOV4_CFG), last=104))
    assert sum(p.numel() for p in CSPDarknet53().parameters()) == expected


def test_parameter_counts_per_scale():
    counts = {s: sum(p.numel() for p in build_model(ModelConfig(scale=s, num_classes=40)).parameters()) for s in SCALES}
    # Golden values (a change of architecture must be deliberate); the README's table states them too.
    assert counts == {"full": 70_612_569, "small": 16_161_577, "tiny": 3_682_609}
    # The PANet fully-connected branch is one 128*14*14 -> 28*28 layer at full scale: 19.7 M parameters.
    with_fc = build_model(ModelConfig(scale="full", num_classes=40, mask_fc=True))
    fc = with_fc.mask_head.fc_branch[2]
    assert fc.weight.numel() == 128 * 14 * 14 * 28 * 28


def test_head_parameter_count_by_hand():
    model = build_model(ModelConfig(scale="full", num_classes=40))
    out = 6 * (5 + 40)
    expected = sum((c * 2 * c * 9 + 2 * 2 * c) + (2 * c * out + out) for c in (64, 128, 256, 512))
    assert sum(p.numel() for p in model.head.parameters()) == expected


def test_head_initialisation():
    torch.manual_seed(0)
    model = build_model(ModelConfig(scale="tiny", num_classes=40))
    for pred in model.head.preds:
        fan_in = pred.weight.shape[1]
        weight = pred.weight.detach().view(6, 5 + 40, fan_in)
        bias = pred.bias.detach().view(6, 5 + 40)
        # Class rows at unit gain; box and objectness rows keep PyTorch's default (uniform, 1/sqrt(3) of it).
        assert weight[:, 5:].std().item() == pytest.approx(fan_in**-0.5, rel=0.05)
        assert weight[:, :5].abs().max().item() <= fan_in**-0.5 and weight[:, :5].std().item() < 0.7 * fan_in**-0.5
        torch.testing.assert_close(torch.sigmoid(bias[:, 4]), torch.full((6,), 0.01))
        assert not bias[:, :4].any() and not bias[:, 5:].any()


def test_backward_reaches_every_parameter():
    model = without_proposals(build_model(ModelConfig(scale="tiny", num_classes=3, mask_fc=True)).train())
    rois = [torch.tensor([[8.0, 8.0, 40.0, 50.0]]), torch.tensor([[0.0, 0, 64, 64]])]
    out = model(torch.rand(2, 3, 64, 64), [frame_targets(r) for r in rois])
    loss = sum(p.square().mean() for p in out.predictions) + out.mask_logits.square().mean()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero


def test_mask_head_without_rois_still_carries_gradient():
    model = build_model(ModelConfig(scale="tiny", num_classes=3)).eval()
    model.selection = without_proposals(model).train_selection  # no detection at all
    out = model(torch.rand(1, 3, 64, 64))
    assert out.mask_logits.shape == (0, 28, 28)
    out.mask_logits.sum().backward()  # no error: the empty result is part of the graph
    # With targets but no box anywhere, one RoI still keeps the mask head in the graph (DDP needs it).
    out = model(torch.rand(1, 3, 64, 64), [frame_targets(torch.zeros((0, 4)))])
    assert out.mask_logits.shape == (1, 28, 28)
    out.mask_logits.sum().backward()


def test_forward_puts_the_ground_truth_first_among_the_rois():
    model = build_model(ModelConfig(scale="tiny", num_classes=3)).eval()
    model.train_selection = replace(model.train_selection, score_threshold=0.0)  # predicted boxes get in too
    gt = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), [frame_targets(gt)])
    assert len(out.rois[0]) == 1 + len(out.proposals[0]) and len(out.proposals[0]) == 8  # train_proposals
    torch.testing.assert_close(out.rois[0][:1], gt)
    assert out.mask_logits.shape == (len(out.rois[0]), 28, 28)
    with torch.no_grad():  # without targets the RoIs are the detections
        out = model(torch.rand(1, 3, 64, 64))
    torch.testing.assert_close(out.rois[0], out.proposals[0].boxes)


def test_the_mask_head_sees_the_rois_enlarged_by_mask_roi_scale():
    model = build_model(ModelConfig(scale="tiny", num_classes=3, mask_roi_scale=1.25)).eval()
    seen = []
    model.mask_head.register_forward_hook(lambda module, args, output: seen.append(args[1]))
    gt = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64), [frame_targets(gt)])
    torch.testing.assert_close(out.rois[0][:1], gt)  # matching and the association head use the box itself
    torch.testing.assert_close(seen[0][0][:1], torch.tensor([[12.0, 12.0, 52.0, 52.0]]))
    assert out.mask_roi_scale == 1.25  # what the loss and the postprocess read
    with pytest.raises(UserError, match="mask_roi_scale must be positive"):
        build_model(ModelConfig(scale="tiny", num_classes=3, mask_roi_scale=0.0))


def test_batched_equals_single():
    model = build_model(ModelConfig(scale="tiny", num_classes=3)).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        both = model(x).predictions
        first = model(x[:1]).predictions
    for a, b in zip(both, first, strict=True):
        torch.testing.assert_close(a[:1], b, atol=1e-5, rtol=1e-4)


def test_rejects_bad_inputs():
    model = build_model(ModelConfig(scale="tiny", num_classes=3))
    with pytest.raises(UserError, match="multiples of 32"):
        model(torch.rand(1, 3, 70, 64))
    with pytest.raises(UserError, match="unknown"):
        build_model(ModelConfig(scale="huge"))
    with pytest.raises(UserError, match="anchors"):
        build_model(ModelConfig(anchors=[[[10, 10]]] * 3))


def test_anchors_follow_input_size():
    model = build_model(ModelConfig(scale="tiny", num_classes=3, anchor_img_size=416))
    torch.testing.assert_close(model.anchors_for(832, 640), model.anchors * 2)


def test_fused_model_computes_the_same_outputs():
    from yolovis.model.fuse import fuse_conv_bn

    torch.manual_seed(0)
    model = build_model(ModelConfig(scale="tiny", num_classes=3))
    for m in model.modules():  # non-trivial BN statistics, so that folding them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.rand(1, 3, 64, 96)
    targets = [frame_targets(torch.tensor([[4.0, 4.0, 60.0, 50.0]]), size=(64, 96))]
    without_proposals(model)
    with torch.no_grad():
        before = model(x, targets)
        fuse_conv_bn(model)
        after = model(x, targets)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(before.predictions + before.embeddings, after.predictions + after.embeddings, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(before.mask_logits, after.mask_logits, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn(build_model(ModelConfig(scale="tiny", num_classes=3)))
