"""YOLOv4's SPP block on the stride-32 map (darknet yolov4.cfg layers 105-116)."""

from __future__ import annotations

import torch
from torch import nn

from yolovis.model.blocks import ConvBNAct


class SPPBlock(nn.Module):
    """1x1 c, 3x3 2c, 1x1 c, max-pools 13/9/5 (stride 1, same padding) concatenated with their input in darknet's
    order [pool13, pool9, pool5, input], then 1x1 c, 3x3 2c, 1x1 c; leaky 0.1 throughout."""

    def __init__(self, c_in: int, c: int, pool_sizes: tuple[int, ...] = (13, 9, 5)) -> None:
        super().__init__()
        self.pre = nn.Sequential(
            ConvBNAct(c_in, c, 1, act="leaky"),
            ConvBNAct(c, 2 * c, 3, act="leaky"),
            ConvBNAct(2 * c, c, 1, act="leaky"),
        )
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in pool_sizes)
        self.post = nn.Sequential(
            ConvBNAct((len(pool_sizes) + 1) * c, c, 1, act="leaky"),
            ConvBNAct(c, 2 * c, 3, act="leaky"),
            ConvBNAct(2 * c, c, 1, act="leaky"),
        )
        self.out_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)  # (B, c, H, W)
        x = torch.cat([pool(x) for pool in self.pools] + [x], dim=1)  # (B, 4c, H, W)
        return self.post(x)
