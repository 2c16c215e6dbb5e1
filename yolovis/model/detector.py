"""YoloV4+1: CSPDarknet53 + SPP, the four-level neck, the anchor head, the embeddings and the mask head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolovis.config import ModelConfig
from yolovis.errors import UserError
from yolovis.model.anchors import anchor_tensors
from yolovis.model.backbone import CSPDarknet53
from yolovis.model.blocks import scaled_width
from yolovis.model.head import DetectionHead, EmbeddingHead
from yolovis.model.mask_head import MaskHead
from yolovis.model.neck import Neck
from yolovis.model.spp import SPPBlock


@dataclass(frozen=True)
class Scale:
    width: float  # channel multiplier
    depth: float  # residual-block multiplier
    embed_dim: int  # E
    mask_channels: int


# `full` is the paper's network (E = S/2 = 208 at 416, as the original); the others fit a 2-core CPU.
SCALES: dict[str, Scale] = {
    "full": Scale(width=1.0, depth=1.0, embed_dim=208, mask_channels=256),
    "small": Scale(width=0.5, depth=0.67, embed_dim=64, mask_channels=128),
    "tiny": Scale(width=0.25, depth=0.33, embed_dim=32, mask_channels=64),
}


@dataclass
class ModelOutput:
    """What the network computes for a batch of B images of size (H, W).

    predictions: per level (B, nA, H_k, W_k, 5 + K) raw outputs: box deltas, objectness logit, class logits
    embeddings:  per level (B, E, H_k, W_k)
    anchors:     (L, nA, 2) anchor widths and heights in input pixels, for this input size
    strides:     (4, 8, 16, 32)
    mask_logits: (sum N_b, 28, 28) when the forward was given RoIs, else None
    """

    predictions: list[torch.Tensor]
    embeddings: list[torch.Tensor]
    anchors: torch.Tensor
    strides: tuple[int, ...]
    mask_logits: torch.Tensor | None = None


class YoloV4Plus1(nn.Module):
    def __init__(
        self,
        backbone: CSPDarknet53,
        spp: SPPBlock,
        neck: Neck,
        head: DetectionHead,
        embedding: EmbeddingHead,
        mask_head: MaskHead,
        anchors: torch.Tensor,
        anchor_img_size: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.spp = spp
        self.neck = neck
        self.head = head
        self.embedding = embedding
        self.mask_head = mask_head
        self.register_buffer("anchors", anchors)  # (L, nA, 2) pixels of an anchor_img_size input
        self.anchor_img_size = anchor_img_size
        self.strides = backbone.strides
        self.num_classes = head.num_outputs - 5

    def anchors_for(self, height: int, width: int) -> torch.Tensor:
        """Anchors follow the letterbox: a frame letterboxed into a larger input shows larger objects, and the
        longer side sets the scale for frames of the anchors' own aspect ratio."""
        return self.anchors * (max(height, width) / self.anchor_img_size)

    def forward(self, images: torch.Tensor, rois: list[torch.Tensor] | None = None) -> ModelOutput:
        """images: (B, 3, H, W) float in [0, 1], H and W multiples of 32; rois: optional per-image (N_b, 4) xyxy
        boxes in input pixels for the mask head (training passes proposals + ground truth)."""
        h, w = images.shape[-2:]
        if h % 32 or w % 32:
            raise UserError(f"network input {w}x{h}: width and height must be multiples of 32")
        b2, b3, b4, b5 = self.backbone(images)  # strides 4, 8, 16, 32
        b5 = self.spp(b5)  # (B, 512, H/32, W/32)
        features = self.neck([b2, b3, b4, b5])  # n2..n5: (B, 64|128|256|512, H/4 .. H/32, ...)
        predictions = self.head(features)  # per level (B, nA, H_k, W_k, 5 + K)
        embeddings = self.embedding(features)  # per level (B, E, H_k, W_k)
        mask_logits = self.mask_head(embeddings, rois) if rois is not None else None  # (N, 28, 28)
        return ModelOutput(predictions, embeddings, self.anchors_for(h, w), self.strides, mask_logits)


def build_model(cfg: ModelConfig) -> YoloV4Plus1:
    if cfg.scale not in SCALES:
        raise UserError(f"model scale {cfg.scale!r} is unknown; choose from {', '.join(SCALES)}")
    if cfg.num_classes < 1:
        raise UserError(f"num_classes must be at least 1, got {cfg.num_classes}")
    scale = SCALES[cfg.scale]
    try:
        anchors = torch.stack(anchor_tensors(cfg.anchors))  # (L, nA, 2)
    except ValueError as e:
        raise UserError(f"model.anchors: {e}") from None
    if anchors.shape[0] != 4:
        raise UserError(f"model.anchors: expected 4 levels (strides 4-32), got {anchors.shape[0]}")
    backbone = CSPDarknet53(scale.width, scale.depth)
    b2, b3, b4, b5 = backbone.out_channels
    spp = SPPBlock(b5, b5 // 2)
    widths = tuple(scaled_width(c, scale.width) for c in (64, 128, 256, 512))
    neck = Neck((b2, b3, b4, spp.out_channels), widths)
    head = DetectionHead(neck.out_channels, anchors.shape[1], cfg.num_classes)
    embed_dim = cfg.embed_dim or scale.embed_dim
    embedding = EmbeddingHead(neck.out_channels, embed_dim)
    mask_head = MaskHead(embed_dim, backbone.strides, cfg.mask_channels or scale.mask_channels, fc=cfg.mask_fc)
    return YoloV4Plus1(backbone, spp, neck, head, embedding, mask_head, anchors, cfg.anchor_img_size)
