"""From raw network outputs to `Detections` at the original frame size (SPEC §2).

decode (anchors) -> score = objectness x max class probability -> NMS per level (<= 200) -> NMS across levels
(<= 50) -> mask head on the kept boxes -> masks pasted back into the original frame (letterbox undone).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, nms, remove_small_boxes

from yolovis.config import PostprocessConfig
from yolovis.data.letterbox import LetterboxInfo
from yolovis.model.anchors import decode_boxes
from yolovis.model.detections import Detections
from yolovis.model.detector import ModelOutput

# Candidates kept per level before NMS: NMS is quadratic, and a 416 input has ~100k anchor-cells at stride 4.
PRE_NMS_TOP_K = 1000


class Postprocess:
    def __init__(self, cfg: PostprocessConfig) -> None:
        self.cfg = cfg

    def _nms(self, boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, limit: int) -> torch.Tensor:
        if self.cfg.class_aware_nms:
            keep = batched_nms(boxes, scores, labels, self.cfg.nms_iou)
        else:
            keep = nms(boxes, scores, self.cfg.nms_iou)
        return keep[:limit]

    @torch.no_grad()
    def select_boxes(self, output: ModelOutput) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per image: (boxes (N, 4) xyxy input pixels, scores (N,), labels (N,)) after both NMS rounds."""
        batch = output.predictions[0].shape[0]
        input_h = output.predictions[0].shape[2] * output.strides[0]
        input_w = output.predictions[0].shape[3] * output.strides[0]
        per_image: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in range(batch)]
        for pred, anchors, stride in zip(output.predictions, output.anchors, output.strides, strict=True):
            pred = pred.float()
            boxes = decode_boxes(pred[..., :4], anchors, stride).flatten(1, 3)  # (B, nA*H*W, 4)
            objectness = pred[..., 4].sigmoid().flatten(1)  # (B, nA*H*W)
            class_prob, labels = pred[..., 5:].softmax(-1).flatten(1, 3).max(-1)  # (B, nA*H*W) each
            scores = objectness * class_prob
            for b in range(batch):
                candidates = (scores[b] > self.cfg.score_threshold).nonzero().squeeze(1)
                if candidates.numel() > PRE_NMS_TOP_K:
                    candidates = candidates[scores[b, candidates].topk(PRE_NMS_TOP_K).indices]
                bx = boxes[b, candidates]
                bx[:, 0::2] = bx[:, 0::2].clamp(0, input_w)
                bx[:, 1::2] = bx[:, 1::2].clamp(0, input_h)
                valid = remove_small_boxes(bx, 1.0)
                bx, sc, lb = bx[valid], scores[b, candidates[valid]], labels[b, candidates[valid]]
                keep = self._nms(bx, sc, lb, self.cfg.max_per_level)
                per_image[b].append((bx[keep], sc[keep], lb[keep]))
        results = []
        for levels in per_image:
            boxes = torch.cat([lv[0] for lv in levels])
            scores = torch.cat([lv[1] for lv in levels])
            labels = torch.cat([lv[2] for lv in levels])
            keep = self._nms(boxes, scores, labels, self.cfg.max_per_image)
            results.append((boxes[keep], scores[keep], labels[keep]))
        return results

    @torch.no_grad()
    def __call__(
        self,
        output: ModelOutput,
        mask_head: Callable[[list[torch.Tensor], list[torch.Tensor]], torch.Tensor],
        letterboxes: list[LetterboxInfo],
    ) -> list[Detections]:
        selected = self.select_boxes(output)
        if len(letterboxes) != len(selected):
            raise ValueError(f"postprocess: {len(selected)} images but {len(letterboxes)} letterbox records")
        mask_logits = mask_head(output.embeddings, [boxes for boxes, _, _ in selected])  # (sum N, 28, 28)
        detections, start = [], 0
        for (boxes, scores, labels), lb in zip(selected, letterboxes, strict=True):
            logits = mask_logits[start : start + len(boxes)].float()
            start += len(boxes)
            frame_boxes = lb.boxes_to_original(boxes)
            # The mask covers the box predicted in input pixels; map that box (unclipped) to the frame.
            offset = boxes.new_tensor([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y])
            mask_boxes = (boxes - offset) / lb.scale
            masks = paste_masks(logits.sigmoid(), mask_boxes, lb.orig_h, lb.orig_w, self.cfg.mask_threshold)
            detections.append(Detections(frame_boxes.float(), scores.float(), labels.long(), masks))
        return detections


def paste_masks(
    probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5
) -> torch.Tensor:
    """Paste (N, M, M) mask probabilities into (N, height, width) bool masks, each stretched over its xyxy box.

    Only the pixels of each box's own bounding rectangle are sampled (bilinear, at pixel centres), so the cost
    is the boxes' area, not N x the frame's.
    """
    out = torch.zeros((len(boxes), height, width), dtype=torch.bool, device=probs.device)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        c0, r0 = max(0, int(x0)), max(0, int(y0))
        c1, r1 = min(width, int(-(-x1 // 1))), min(height, int(-(-y1 // 1)))
        if c1 <= c0 or r1 <= r0:
            continue
        xs = (torch.arange(c0, c1, device=probs.device, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
        ys = (torch.arange(r0, r1, device=probs.device, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy), dim=-1)[None]  # (1, h, w, 2)
        sampled = F.grid_sample(probs[i][None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[i, r0:r1, c0:c1] = sampled[0, 0] >= threshold
    return out
