"""YoloV4+1 (the report's Figure 1): CSPDarknet53 + SPP, the four-level neck, the anchor head, the embeddings,
the box selection and the mask head, in one forward that training, validation, inference and export all run."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from yolovis.config import ModelConfig, PostprocessConfig
from yolovis.data.letterbox import check_input_size
from yolovis.data.sample import FrameSample
from yolovis.errors import UserError
from yolovis.model.anchors import anchor_tensors
from yolovis.model.assoc_head import AssociationHead, colour_map
from yolovis.model.backbone import CSPDarknet53
from yolovis.model.blocks import scaled_width
from yolovis.model.head import DetectionHead, EmbeddingHead
from yolovis.model.mask_head import MaskHead, expand_boxes
from yolovis.model.neck import Neck
from yolovis.model.proposals import Proposals, SelectionConfig, select_boxes
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
class DenseOutput:
    """The fully convolutional part's output (see `ModelOutput` for the shapes)."""

    predictions: list[torch.Tensor]
    embeddings: list[torch.Tensor]
    input_size: tuple[int, int]  # (H, W)
    features: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    # [(B, 3, H/4, W/4)] for a colour association head, and the images (B, 3, H, W) for its histogram
    colours: list[torch.Tensor] = field(default_factory=list)


@dataclass
class ModelOutput:
    """What the network computes for a batch of B images of size (H, W).

    predictions: per level (B, nA, H_k, W_k, 5 + K) raw outputs: box deltas, objectness logit, class logits
    embeddings:  per level (B, E, H_k, W_k), what the mask head pools from
    anchors:     (L, nA, 2) anchor widths and heights in input pixels, for this input size
    strides:     the levels' strides, (4, 8, 16, 32)
    proposals:   per image the selected boxes (`Proposals`, input pixels, no gradient)
    rois:        per image (R_b, 4) xyxy boxes the mask head ran on: the ground-truth boxes first when the
                 forward was given targets, then the proposals (without targets: exactly the proposals' boxes)
    mask_logits: (sum R_b, 28, 28) one class-agnostic mask per RoI, in RoI order, covering the RoI enlarged
                 `mask_roi_scale` times about its centre (`expand_boxes`)
    assoc:       (sum R_b, D) unit-length appearance embeddings per RoI, or None without an association head
    features:    the backbone's b2..b5 (b5 after SPP) and the neck's n2..n5, for figures (Figure 2)
    """

    predictions: list[torch.Tensor]
    embeddings: list[torch.Tensor]
    anchors: torch.Tensor
    strides: tuple[int, ...]
    proposals: list[Proposals]
    rois: list[torch.Tensor]
    mask_logits: torch.Tensor
    assoc: torch.Tensor | None = None
    features: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    mask_roi_scale: float = 1.0


def selection_for_inference(cfg: PostprocessConfig) -> SelectionConfig:
    return SelectionConfig(cfg.score_threshold, cfg.nms_iou, cfg.max_per_level, cfg.max_per_image, cfg.class_aware_nms)


def selection_for_training(cfg: ModelConfig) -> SelectionConfig:
    return SelectionConfig(cfg.train_proposal_score, cfg.train_proposal_nms, cfg.train_proposals, cfg.train_proposals)


class YoloV4Plus1(nn.Module):
    def __init__(
        self,
        backbone: CSPDarknet53,
        spp: SPPBlock,
        neck: Neck,
        head: DetectionHead,
        embedding: EmbeddingHead,
        mask_head: MaskHead,
        assoc_head: AssociationHead | None,
        anchors: torch.Tensor,
        anchor_img_size: int,
        selection: SelectionConfig,
        train_selection: SelectionConfig,
        mask_roi_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.spp = spp
        self.neck = neck
        self.head = head
        self.embedding = embedding
        self.mask_head = mask_head
        self.assoc_head = assoc_head
        # (L, nA, 2) pixels of an anchor_img_size input. Not saved in the state dict: the config holds the
        # anchors, so a checkpoint has them in one place (and --init cannot bring another model's anchors).
        self.register_buffer("anchors", anchors, persistent=False)
        self.anchor_img_size = anchor_img_size
        self.strides = backbone.strides
        self.num_classes = head.num_outputs - 5
        self.selection = selection  # the detections at inference
        self.train_selection = train_selection  # the network's own boxes added to the training RoIs
        self.mask_roi_scale = mask_roi_scale

    def anchors_for(self, height: int, width: int) -> torch.Tensor:
        """Anchors follow the letterbox: a frame letterboxed into a larger input shows larger objects, and the
        longer side sets the scale for frames of the anchors' own aspect ratio."""
        return self.anchors * (max(height, width) / self.anchor_img_size)

    def forward(self, images: torch.Tensor, targets: list[FrameSample] | None = None) -> ModelOutput:
        """images: (B, 3, H, W) float in [0, 1], H and W multiples of 32. targets (training and validation loss):
        per image its ground truth (`FrameSample`: boxes in input pixels); their boxes join the mask head's RoIs.
        Without targets, the proposals are the detections and the mask head runs on exactly them."""
        dense = self.forward_dense(images)  # backbone, SPP, neck, head, embeddings
        return self.forward_instances(dense, targets)  # box selection, RoIs, mask head

    def forward_dense(self, images: torch.Tensor) -> DenseOutput:
        """The fully convolutional part (what `yolovis export` exports): one pass over the whole image."""
        check_input_size(*images.shape[-2:])
        b2, b3, b4, b5 = self.backbone(images)  # strides 4, 8, 16, 32
        b5 = self.spp(b5)  # (B, 512, H/32, W/32)
        neck = self.neck([b2, b3, b4, b5])  # n2..n5: (B, 64|128|256|512, H/4 .. H/32, ...)
        predictions = self.head(neck)  # per level (B, nA, H_k, W_k, 5 + K)
        embeddings = self.embedding(neck)  # per level (B, E, H_k, W_k)
        colours = []
        if self.assoc_head is not None and self.assoc_head.colour:
            colours = [colour_map(images)]  # (B, 3, H/4, W/4)
            if self.assoc_head.histogram > 0:
                colours.append(images)  # the histogram counts the frame's own pixels: (B, 3, H, W)
        return DenseOutput(predictions, embeddings, tuple(images.shape[-2:]),
                           {"backbone": [b2, b3, b4, b5], "neck": neck}, colours)  # fmt: skip

    def forward_instances(self, dense: DenseOutput, targets: list[FrameSample] | None = None) -> ModelOutput:
        """Per image: the selected boxes (no gradient), the RoIs (ground truth first when given), their masks."""
        h, w = dense.input_size
        anchors = self.anchors_for(h, w)  # (L, nA, 2)
        selection = self.selection if targets is None else self.train_selection
        proposals = select_boxes(dense.predictions, anchors, self.strides, selection)
        rois = [p.boxes for p in proposals]
        if targets is not None:
            rois = [torch.cat((t.boxes.to(r), r)) for t, r in zip(targets, rois, strict=True)]
            if not any(len(r) for r in rois):
                # A batch without objects: one RoI keeps the mask head in the graph (DDP needs every parameter
                # to take part); it matches no ground truth, so it carries no loss.
                rois[0] = dense.predictions[0].new_tensor([[0.0, 0.0, float(w), float(h)]])
        mask_rois = [expand_boxes(r, self.mask_roi_scale) for r in rois]
        mask_logits = self.mask_head(dense.embeddings, mask_rois)  # (sum R_b, 28, 28)
        assoc = None
        if self.assoc_head is not None:  # the colour head pools under the masks, so on the masks' RoIs
            assoc_rois = mask_rois if self.assoc_head.colour else rois
            # The loss trains the learned part; the histogram (inference only) has nothing to learn.
            assoc = self.assoc_head(dense.embeddings, assoc_rois, dense.colours, mask_logits,
                                    with_histogram=targets is None)  # (sum R_b, D [+ 256])  # fmt: skip
        return ModelOutput(dense.predictions, dense.embeddings, anchors, self.strides, proposals, rois, mask_logits,
                           assoc, dense.features, self.mask_roi_scale)  # fmt: skip


def build_model(cfg: ModelConfig, postprocess: PostprocessConfig | None = None) -> YoloV4Plus1:
    """The network of `cfg`; `postprocess` sets what the forward selects without targets (default settings
    when not given)."""
    if cfg.scale not in SCALES:
        raise UserError(f"model scale {cfg.scale!r} is unknown; choose from {', '.join(SCALES)}")
    if cfg.num_classes < 1:
        raise UserError(f"num_classes must be at least 1, got {cfg.num_classes}")
    if cfg.mask_roi_scale <= 0:
        raise UserError(f"model.mask_roi_scale must be positive (1: the box itself), got {cfg.mask_roi_scale}")
    scale = SCALES[cfg.scale]
    backbone = CSPDarknet53(scale.width, scale.depth)
    try:
        anchors = torch.stack(anchor_tensors(cfg.anchors))  # (L, nA, 2)
    except ValueError as e:
        raise UserError(f"model.anchors: {e}") from None
    if anchors.shape[0] != len(backbone.strides):
        raise UserError(f"model.anchors: expected {len(backbone.strides)} levels (strides "
                        f"{backbone.strides[0]}-{backbone.strides[-1]}), got {anchors.shape[0]}")  # fmt: skip
    b2, b3, b4, b5 = backbone.out_channels
    spp = SPPBlock(b5, b5 // 2)
    widths = tuple(scaled_width(c, scale.width) for c in (64, 128, 256, 512))
    neck = Neck((b2, b3, b4, spp.out_channels), widths)
    head = DetectionHead(neck.out_channels, anchors.shape[1], cfg.num_classes)
    embed_dim = cfg.embed_dim or scale.embed_dim
    embedding = EmbeddingHead(neck.out_channels, embed_dim)
    mask_head = MaskHead(embed_dim, backbone.strides, cfg.mask_channels or scale.mask_channels, fc=cfg.mask_fc)
    assoc_head = None
    if cfg.assoc_dim > 0:
        histogram = cfg.assoc_histogram if cfg.assoc_colour else 0.0  # it pools under the colour path's masks
        try:
            assoc_head = AssociationHead(embed_dim, backbone.strides, cfg.assoc_dim, colour=cfg.assoc_colour,
                                         histogram=histogram)  # fmt: skip
        except ValueError as e:
            raise UserError(str(e)) from None
    selection = selection_for_inference(postprocess or PostprocessConfig())
    return YoloV4Plus1(backbone, spp, neck, head, embedding, mask_head, assoc_head, anchors, cfg.anchor_img_size,
                       selection, selection_for_training(cfg), cfg.mask_roi_scale)  # fmt: skip
