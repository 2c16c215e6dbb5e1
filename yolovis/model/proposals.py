"""Box selection (SPEC §2): raw head outputs -> per image the boxes that go on to the mask head.

decode (anchors) -> score = objectness x max class probability -> NMS per level (<= max_per_level) -> NMS across
levels (<= max_per_image). No gradient flows through the selection: it only decides where the RoIs are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, nms, remove_small_boxes

from yolovis.model.anchors import decode_selected

# Candidates kept per level before NMS: NMS is quadratic, and a 416 input has ~100k anchor-cells at stride 4.
PRE_NMS_TOP_K = 1000


@dataclass(frozen=True)
class SelectionConfig:
    """What `select_boxes` keeps (the inference values come from `PostprocessConfig`, the training values from
    `ModelConfig.train_proposal_*`)."""

    score_threshold: float
    nms_iou: float
    max_per_level: int
    max_per_image: int
    class_aware_nms: bool = False


@dataclass
class Proposals:
    """The selected boxes of one image, in network-input pixels."""

    boxes: torch.Tensor  # (N, 4) float xyxy
    scores: torch.Tensor  # (N,) objectness x class probability
    labels: torch.Tensor  # (N,) int64 contiguous labels

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def _nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, cfg: SelectionConfig, limit: int):
    keep = batched_nms(boxes, scores, labels, cfg.nms_iou) if cfg.class_aware_nms else nms(boxes, scores, cfg.nms_iou)
    return keep[:limit]


@torch.no_grad()
def select_boxes(
    predictions: list[torch.Tensor], anchors: torch.Tensor, strides: tuple[int, ...], cfg: SelectionConfig
) -> list[Proposals]:
    """predictions: per level (B, nA, H_k, W_k, 5 + K); anchors (L, nA, 2) pixels -> per image `Proposals`."""
    batch = predictions[0].shape[0]
    input_h = predictions[0].shape[2] * strides[0]
    input_w = predictions[0].shape[3] * strides[0]
    per_image: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(batch)]
    for pred, level_anchors, stride in zip(predictions, anchors, strides, strict=True):
        pred = pred.float()
        _, _, h, w, k = pred.shape
        objectness = pred[..., 4].sigmoid().flatten(1)  # (B, nA*H*W)
        class_logits = pred[..., 5:].reshape(batch, -1, k - 5)  # (B, nA*H*W, K)
        deltas = pred[..., :4].flatten(1, 3)  # (B, nA*H*W, 4)
        for b in range(batch):
            # score = objectness x class probability <= objectness (also in float32: the product of a number
            # by a factor <= 1 rounds to at most that number), so only anchor-cells whose objectness passes
            # the threshold can pass it: the class softmax runs on those alone, which at a trained model's
            # sparse objectness saves most of the selection's time (softmax is row by row: the same values).
            cells = (objectness[b] > cfg.score_threshold).nonzero().squeeze(1)
            class_prob, cell_labels = class_logits[b, cells].softmax(-1).max(-1)
            cell_scores = objectness[b, cells] * class_prob
            passing = cell_scores > cfg.score_threshold
            candidates, cell_scores, cell_labels = cells[passing], cell_scores[passing], cell_labels[passing]
            if candidates.numel() > PRE_NMS_TOP_K:
                top = cell_scores.topk(PRE_NMS_TOP_K).indices
                candidates, cell_scores, cell_labels = candidates[top], cell_scores[top], cell_labels[top]
            # Only the candidates are decoded (a 416 input has ~100k anchor-cells at stride 4, NMS sees <= 1000).
            anchor, cell = candidates // (h * w), candidates % (h * w)
            cell_xy = torch.stack((cell % w, cell // w), dim=1)
            bx = decode_selected(deltas[b, candidates], level_anchors[anchor], cell_xy, stride)
            bx[:, 0::2] = bx[:, 0::2].clamp(0, input_w)
            bx[:, 1::2] = bx[:, 1::2].clamp(0, input_h)
            valid = remove_small_boxes(bx, 1.0)
            bx, sc, lb = bx[valid], cell_scores[valid], cell_labels[valid]
            keep = _nms(bx, sc, lb, cfg, cfg.max_per_level)
            per_image[b].append((bx[keep], sc[keep], lb[keep]))
    results = []
    for levels in per_image:
        boxes = torch.cat([lv[0] for lv in levels])
        scores = torch.cat([lv[1] for lv in levels])
        labels = torch.cat([lv[2] for lv in levels])
        keep = _nms(boxes, scores, labels, cfg, cfg.max_per_image)
        results.append(Proposals(boxes[keep], scores[keep], labels[keep]))
    return results
