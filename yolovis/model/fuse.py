"""Inference-time folding of BatchNorm into the preceding convolution (torch.nn.utils.fusion does the maths)."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from yolovis.model.blocks import ConvBNAct


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every ConvBNAct's BN into its conv, in place; the model must be in eval mode and is for inference
    only from then on (it has no BN statistics left to update). Returns the model."""
    if model.training:
        raise ValueError("fuse_conv_bn: put the model in eval mode first (BN must use its running statistics)")
    for module in model.modules():
        if isinstance(module, ConvBNAct) and isinstance(module[1], nn.BatchNorm2d):
            module[0] = fuse_conv_bn_eval(module[0], module[1])
            module[1] = nn.Identity()
    return model
