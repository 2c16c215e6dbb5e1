"""The mask branch: RoIAlign on all four embedding maps, PANet adaptive feature pooling, a small FCN to 28x28."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

ROI_SIZE = 14
MASK_SIZE = 2 * ROI_SIZE


def conv_gn_relu(c_in: int, c_out: int) -> nn.Sequential:
    groups = 32 if c_out % 32 == 0 and c_out >= 64 else max(1, c_out // 8)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True)
    )


def expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """(N, 4) xyxy boxes enlarged `scale` times about their centres (the mask head's view of a box)."""
    if scale == 1.0:
        return boxes
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (scale / 2)
    return torch.cat((centres - half, centres + half), 1)


class MaskHead(nn.Module):
    """forward(embeddings [B, E, H_k, W_k] x 4, rois list of (N_b, 4) xyxy input-pixel boxes) -> (sum N_b, 28, 28)
    mask logits, one class-agnostic mask per RoI (the class comes from the detection head).

    Adaptive feature pooling (PANet): every RoI is pooled from every level, each level gets its own
    conv + GN + ReLU, and the levels are fused by an element-wise max. `fc=True` adds PANet's fully-connected
    branch (conv to c/2, fc to 28x28), which the original had.
    """

    def __init__(self, embed_dim: int, strides: tuple[int, ...], channels: int = 256, fc: bool = False) -> None:
        super().__init__()
        self.strides = strides
        self.level_convs = nn.ModuleList(conv_gn_relu(embed_dim, channels) for _ in strides)
        self.fused = nn.Sequential(conv_gn_relu(channels, channels), conv_gn_relu(channels, channels))
        self.upsample = nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2), nn.ReLU(inplace=True))
        self.logit = nn.Conv2d(channels, 1, 1)
        self.fc_branch = None
        if fc:
            self.fc_branch = nn.Sequential(
                conv_gn_relu(channels, channels // 2),
                nn.Flatten(),
                nn.Linear(channels // 2 * ROI_SIZE * ROI_SIZE, MASK_SIZE * MASK_SIZE),
            )

    def forward(self, embeddings: list[torch.Tensor], rois: list[torch.Tensor]) -> torch.Tensor:
        boxes = [r.to(embeddings[0].dtype) for r in rois]
        num = sum(int(b.shape[0]) for b in boxes)
        if num == 0:
            # Keep the graph connected so that a batch without RoIs still backpropagates a zero.
            return embeddings[0].sum()[None, None, None].expand(0, MASK_SIZE, MASK_SIZE) * 0
        fused = None
        for emb, stride, conv in zip(embeddings, self.strides, self.level_convs, strict=True):
            pooled = roi_align(emb, boxes, ROI_SIZE, spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
            level = conv(pooled)  # (N, C, 14, 14)
            fused = level if fused is None else torch.maximum(fused, level)
        x = self.fused(fused)  # (N, C, 14, 14)
        logits = self.logit(self.upsample(x))[:, 0]  # (N, 28, 28)
        if self.fc_branch is not None:
            logits = logits + self.fc_branch(x).view(-1, MASK_SIZE, MASK_SIZE)
        return logits
