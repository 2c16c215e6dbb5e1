"""Per-level anchor head (boxes, objectness, classes) and the embedding maps used by the mask head."""

from __future__ import annotations

import math

import torch
from torch import nn

from yolovis.model.blocks import ConvBNAct

# Objectness starts at p = 0.01 so that the many negative cells do not swamp the first steps (as RetinaNet).
OBJECTNESS_PRIOR = 0.01


class DetectionHead(nn.Module):
    """Per level: 3x3 conv (BN, leaky) to 2c, then a 1x1 conv to nA x (4 + 1 + K).

    forward([n2..n5]) -> per level (B, nA, H, W, 5 + K): box deltas, objectness logit, class logits.
    """

    def __init__(self, in_channels: tuple[int, ...], num_anchors: int, num_classes: int) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.num_outputs = 5 + num_classes
        self.convs = nn.ModuleList(ConvBNAct(c, 2 * c, 3, act="leaky") for c in in_channels)
        self.preds = nn.ModuleList(nn.Conv2d(2 * c, num_anchors * self.num_outputs, 1) for c in in_channels)
        for pred in self.preds:
            bias = pred.bias.detach().view(num_anchors, self.num_outputs)
            bias.zero_()
            bias[:, 4] = math.log(OBJECTNESS_PRIOR / (1 - OBJECTNESS_PRIOR))
            # Class rows at unit gain (std 1/sqrt(fan_in), logits of about the features' scale; PyTorch's default
            # is 1/sqrt(3) of that): the class loss reaches the features it shares with boxes and objectness only
            # through these rows, and from smaller ones it sat at chance for 50-70 of the demo's 240 steps on
            # some seeds, ending with one class confused (docs/training.md).
            weight = pred.weight.detach().view(num_anchors, self.num_outputs, -1)
            weight[:, 5:].normal_(0.0, weight.shape[-1] ** -0.5)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for x, conv, pred in zip(features, self.convs, self.preds, strict=True):
            b, _, h, w = x.shape
            y = pred(conv(x))  # (B, nA * (5 + K), H, W)
            y = y.view(b, self.num_anchors, self.num_outputs, h, w).permute(0, 1, 3, 4, 2)  # (B, nA, H, W, 5+K)
            outputs.append(y.contiguous())
        return outputs


class EmbeddingHead(nn.Module):
    """Per level a linear 3x3 conv from n_k to E channels: the features the mask head pools from."""

    def __init__(self, in_channels: tuple[int, ...], embed_dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, embed_dim, 3, padding=1) for c in in_channels)
        self.embed_dim = embed_dim

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(x) for x, conv in zip(features, self.convs, strict=True)]  # (B, E, H_k, W_k) each
