"""The association head: one appearance embedding per RoI, for the tracker to tell objects apart and find them
again after an occlusion (beyond the report, `model.assoc_dim`; 0 leaves it out).

It pools every RoI from all four embedding maps, as the mask head does (RoIAlign, a conv per level, element-wise
max across levels: PANet's adaptive feature pooling), then two convs, global average pooling and a linear layer
to D dimensions, L2-normalised: the cosine of two embeddings is their similarity. Trained with a contrastive loss
on RoIs of the same instance in other frames of the batch (`loss/association.py`), as MaskTrack R-CNN's tracking
head or QDTrack learn theirs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from yolovis.model.mask_head import conv_gn_relu

ASSOC_ROI_SIZE = 7


class AssociationHead(nn.Module):
    """forward(embeddings [B, E, H_k, W_k] x L, rois list of (N_b, 4) xyxy input-pixel boxes) -> (sum N_b, D)."""

    def __init__(self, embed_dim: int, strides: tuple[int, ...], dim: int = 64, channels: int = 64) -> None:
        super().__init__()
        self.strides = strides
        self.dim = dim
        self.level_convs = nn.ModuleList(conv_gn_relu(embed_dim, channels) for _ in strides)
        self.fused = nn.Sequential(conv_gn_relu(channels, channels), conv_gn_relu(channels, channels))
        self.project = nn.Linear(channels, dim)

    def forward(self, embeddings: list[torch.Tensor], rois: list[torch.Tensor]) -> torch.Tensor:
        boxes = [r.to(embeddings[0].dtype) for r in rois]
        if sum(int(b.shape[0]) for b in boxes) == 0:
            return embeddings[0].sum()[None, None].expand(0, self.dim) * 0  # empty, still in the graph
        fused = None
        for emb, stride, conv in zip(embeddings, self.strides, self.level_convs, strict=True):
            pooled = roi_align(emb, boxes, ASSOC_ROI_SIZE, spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
            level = conv(pooled)  # (N, C, 7, 7)
            fused = level if fused is None else torch.maximum(fused, level)
        x = self.fused(fused).mean(dim=(2, 3))  # (N, C)
        return F.normalize(self.project(x), dim=1)  # (N, D), unit length
