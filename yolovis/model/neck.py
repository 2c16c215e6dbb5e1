"""The extended YOLOv4 neck: top-down and bottom-up paths over four levels (strides 4-32), joined by
concatenation, each join followed by a 1-3-1-3-1 block (SPEC §1, the report's Figure 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolovis.model.blocks import ConvBNAct, FiveConv


class TopDownStep(nn.Module):
    """p_k = FiveConv(concat[lateral(b_k), upsample(reduce(p_{k+1}))])."""

    def __init__(self, c_coarse: int, c_lateral_in: int, c: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(c_coarse, c, 1, act="leaky")
        self.lateral = ConvBNAct(c_lateral_in, c, 1, act="leaky")
        self.block = FiveConv(2 * c, c)

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.reduce(coarse), scale_factor=2.0, mode="nearest")  # (B, c, 2h, 2w)
        return self.block(torch.cat((self.lateral(lateral), up), dim=1))  # darknet `route -1, -3`


class BottomUpStep(nn.Module):
    """n_k = FiveConv(concat[down(n_{k-1}), p_k])."""

    def __init__(self, c_fine: int, c: int) -> None:
        super().__init__()
        self.down = ConvBNAct(c_fine, c, 3, stride=2, act="leaky")
        self.block = FiveConv(2 * c, c)

    def forward(self, fine: torch.Tensor, same_level: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat((self.down(fine), same_level), dim=1))  # (B, c, h, w)


class Neck(nn.Module):
    """in_channels: (b2, b3, b4, b5) widths, b5 after SPP. widths: (c2, c3, c4, c5) of p/n (64, 128, 256, 512 full).

    forward([b2, b3, b4, b5]) -> [n2, n3, n4, n5] at strides 4, 8, 16, 32.
    """

    def __init__(self, in_channels: tuple[int, int, int, int], widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        if widths[3] != in_channels[3]:
            raise ValueError("p5 is b5 itself: the top width must equal the SPP output width")
        # Top-down: from p5 to p2; each step halves the width (p4 256, p3 128, p2 64 at full scale).
        self.top_down = nn.ModuleList(TopDownStep(widths[k + 1], in_channels[k], widths[k]) for k in (2, 1, 0))
        self.bottom_up = nn.ModuleList(BottomUpStep(widths[k - 1], widths[k]) for k in (1, 2, 3))
        self.out_channels = tuple(widths)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        b2, b3, b4, b5 = features
        p = [None, None, None, b5]
        for step, k, lateral in zip(self.top_down, (2, 1, 0), (b4, b3, b2), strict=True):
            p[k] = step(p[k + 1], lateral)  # (B, c_k, H/2^(k+2), W/2^(k+2))
        n = [p[0]]
        for step, k in zip(self.bottom_up, (1, 2, 3), strict=True):
            n.append(step(n[-1], p[k]))
        return n
