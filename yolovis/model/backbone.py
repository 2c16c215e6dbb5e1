"""CSPDarknet53: darknet's yolov4.cfg layers 0-104, returning the four stage outputs b2..b5.

Each CSP stage is, in darknet's layer order (which is also the order of the weights in a .weights file):
  down   3x3 stride-2 conv                 (e.g. layer 1)
  split  1x1 conv of `down` (bypass part)  (layer 2)
  main   1x1 conv of `down`                (layer 4, after `route -2`)
  blocks n x [1x1, 3x3, shortcut]          (layers 5-7)
  post   1x1 conv of the main branch       (layer 8)
  fuse   1x1 conv of concat[post, split]   (layers 9-10)
"""

from __future__ import annotations

import torch
from torch import nn

from yolovis.model.blocks import ConvBNAct, scaled_depth, scaled_width


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(channels, mid, 1)
        self.expand = ConvBNAct(mid, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.reduce(x))  # darknet `[shortcut] activation=linear`


class CSPStage(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_blocks: int, hidden: int, block_mid: int) -> None:
        super().__init__()
        self.down = ConvBNAct(c_in, c_out, 3, stride=2)
        self.split = ConvBNAct(c_out, hidden, 1)
        self.main = ConvBNAct(c_out, hidden, 1)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden, block_mid) for _ in range(num_blocks)))
        self.post = ConvBNAct(hidden, hidden, 1)
        self.fuse = ConvBNAct(2 * hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)  # (B, c_out, H/2, W/2)
        bypass = self.split(x)
        x = self.post(self.blocks(self.main(x)))
        return self.fuse(torch.cat((x, bypass), dim=1))  # darknet `route -1,-k`: main branch first


class CSPDarknet53(nn.Module):
    """Stem 32 ch, five CSP stages of 1, 2, 8, 8, 4 residual blocks with outputs 64, 128, 256, 512, 1024 ch.

    forward(x: (B, 3, H, W)) -> [b2, b3, b4, b5] at strides 4, 8, 16, 32 (darknet layers 23, 54, 85, 104).
    `width` and `depth` multiply channels and block counts for the smaller scales; (1, 1) is darknet's network.
    """

    STAGE_BLOCKS = (1, 2, 8, 8, 4)
    STAGE_CHANNELS = (64, 128, 256, 512, 1024)

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        stem = scaled_width(32, width)
        self.stem = ConvBNAct(3, stem, 3)
        stages = []
        c_in = stem
        for i, (blocks, c_full) in enumerate(zip(self.STAGE_BLOCKS, self.STAGE_CHANNELS, strict=True)):
            c_out = scaled_width(c_full, width)
            n = scaled_depth(blocks, depth)
            # Stage 1 is darknet's exception: its branches keep the full 64 channels, its blocks squeeze to 32.
            hidden, mid = (c_out, c_out // 2) if i == 0 else (c_out // 2, c_out // 2)
            stages.append(CSPStage(c_in, c_out, n, hidden, mid))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(scaled_width(c, width) for c in self.STAGE_CHANNELS[1:])
        self.strides = (4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, 32, H, W)
        x = self.stages[0](x)  # (B, 64, H/2, W/2)
        outputs = []
        for stage in self.stages[1:]:
            x = stage(x)  # (B, C_k, H/2^k, W/2^k)
            outputs.append(x)
        return outputs  # b2 (H/4), b3 (H/8), b4 (H/16), b5 (H/32)
