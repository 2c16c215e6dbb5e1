"""Building blocks shared by the backbone, the SPP block, the neck and the heads."""

from __future__ import annotations

import math

from torch import nn


def scaled_width(channels: int, multiplier: float, divisor: int = 8) -> int:
    """Channels times the scale's width multiplier, rounded up to a multiple of `divisor` (as Scaled-YOLOv4)."""
    return max(divisor, int(math.ceil(channels * multiplier / divisor) * divisor))


def scaled_depth(blocks: int, multiplier: float) -> int:
    return max(1, round(blocks * multiplier))


class ConvBNAct(nn.Sequential):
    """Darknet's `[convolutional] batch_normalize=1`: conv without bias, BN, then mish, leaky(0.1) or linear.

    Darknet pads size // 2 for `pad=1`, so a stride-2 3x3 conv halves any even input exactly.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, act: str = "mish") -> None:
        if act == "mish":
            activation: nn.Module = nn.Mish(inplace=True)
        elif act == "leaky":
            activation = nn.LeakyReLU(0.1, inplace=True)
        elif act == "linear":
            activation = nn.Identity()
        else:
            raise ValueError(f"unknown activation {act!r}")
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            # Darknet's epsilon (cudnn path); matters only for channels with near-zero variance.
            nn.BatchNorm2d(c_out, eps=1e-5),
            activation,
        )
        self.c_out = c_out


class FiveConv(nn.Sequential):
    """YOLOv4's neck block after a concatenation: 1x1 c, 3x3 2c, 1x1 c, 3x3 2c, 1x1 c (expand, contract)."""

    def __init__(self, c_in: int, c: int, act: str = "leaky") -> None:
        super().__init__(
            ConvBNAct(c_in, c, 1, act=act),
            ConvBNAct(c, 2 * c, 3, act=act),
            ConvBNAct(2 * c, c, 1, act=act),
            ConvBNAct(c, 2 * c, 3, act=act),
            ConvBNAct(2 * c, c, 1, act=act),
        )
