"""The association head: one appearance embedding per RoI, for the tracker to tell objects apart and find them
again after an occlusion (beyond the report, `model.assoc_dim`; 0 leaves it out).

It pools every RoI from all four embedding maps, as the mask head does (RoIAlign, a conv per level, element-wise
max across levels: PANet's adaptive feature pooling), then two convs and a linear layer to D dimensions,
L2-normalised: the cosine of two embeddings is their similarity. Trained with a contrastive loss on RoIs of the
same instance in other frames of the batch (`loss/association.py`), as MaskTrack R-CNN's tracking head or QDTrack
learn theirs.

With `colour` (`model.assoc_colour`, the default for new models) it also sees the frame itself: the image
averaged to stride 4 (`DenseOutput.colours`), RoIAligned, each pixel's colour mapped by two 1x1 convs (a learned,
soft colour histogram), and both paths are averaged under the RoI's predicted mask rather than over its box.
Why: the embedding maps are trained for masks and keep little colour, and the box's background is not the
object. Trained on the embedding maps alone the contrastive loss stayed at chance on the hard synthetic set, while
a colour histogram under the mask re-identified instances 95-99 % of the time (docs/tracking.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from yolovis.model.mask_head import conv_gn_relu

ASSOC_ROI_SIZE = 7
COLOUR_STRIDE = 4  # the stride of `DenseOutput.colours`: the image averaged over 4x4 pixels
COLOUR_ROI_SIZE = 14
COLOUR_CHANNELS = 32


def colour_map(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> (B, 3, H/4, W/4): what the colour path pools from."""
    return F.avg_pool2d(images, COLOUR_STRIDE)


def masked_mean(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, C, S, S) features, (N, S', S') mask probabilities -> (N, C): the mean under the mask (over the box
    where the mask is empty)."""
    w = F.adaptive_avg_pool2d(weights[:, None], x.shape[-2:])  # (N, 1, S, S)
    w = w + 1e-3  # an empty mask falls back to the box's mean
    return (x * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))


class AssociationHead(nn.Module):
    """forward(embeddings [B, E, H_k, W_k] x L, rois list of (N_b, 4) xyxy input-pixel boxes, colours [B, 3,
    H/4, W/4] x 1 and mask_logits (sum N_b, M, M) of the same RoIs (both read with `colour` only)) -> (sum N_b, D)."""

    def __init__(
        self, embed_dim: int, strides: tuple[int, ...], dim: int = 64, channels: int = 64, colour: bool = False
    ) -> None:
        super().__init__()
        self.strides = strides
        self.dim = dim
        self.colour = colour
        self.level_convs = nn.ModuleList(conv_gn_relu(embed_dim, channels) for _ in strides)
        self.fused = nn.Sequential(conv_gn_relu(channels, channels), conv_gn_relu(channels, channels))
        if colour:
            # 1x1 convs without normalisation: a norm over the RoI would take away the absolute colour.
            self.colour_convs = nn.Sequential(
                nn.Conv2d(3, COLOUR_CHANNELS, 1), nn.ReLU(inplace=True),
                nn.Conv2d(COLOUR_CHANNELS, COLOUR_CHANNELS, 1), nn.ReLU(inplace=True),
            )  # fmt: skip
        self.project = nn.Linear(channels + (COLOUR_CHANNELS if colour else 0), dim)

    def forward(
        self,
        embeddings: list[torch.Tensor],
        rois: list[torch.Tensor],
        colours: list[torch.Tensor] | None = None,
        mask_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        boxes = [r.to(embeddings[0].dtype) for r in rois]
        if sum(int(b.shape[0]) for b in boxes) == 0:
            return embeddings[0].sum()[None, None].expand(0, self.dim) * 0  # empty, still in the graph
        fused = None
        for emb, stride, conv in zip(embeddings, self.strides, self.level_convs, strict=True):
            pooled = roi_align(emb, boxes, ASSOC_ROI_SIZE, spatial_scale=1.0 / stride, sampling_ratio=2, aligned=True)
            level = conv(pooled)  # (N, C, 7, 7)
            fused = level if fused is None else torch.maximum(fused, level)
        if not self.colour:
            x = self.fused(fused).mean(dim=(2, 3))  # (N, C)
            return F.normalize(self.project(x), dim=1)  # (N, D), unit length
        if not colours or mask_logits is None:
            raise ValueError("an association head with colour needs the colour map and the RoIs' mask logits")
        # The mask only says where to look: the association loss must not reshape the masks.
        weights = torch.sigmoid(mask_logits.detach().float()).to(fused.dtype)  # (N, M, M)
        x = masked_mean(self.fused(fused), weights)  # (N, C)
        pixels = roi_align(colours[0].to(fused.dtype), boxes, COLOUR_ROI_SIZE, spatial_scale=1.0 / COLOUR_STRIDE,
                           sampling_ratio=2, aligned=True)  # fmt: skip
        c = masked_mean(self.colour_convs(pixels), weights)  # (N, 32)
        return F.normalize(self.project(torch.cat((x, c), dim=1)), dim=1)  # (N, D), unit length
