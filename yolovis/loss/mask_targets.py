"""The 28x28 targets of the mask head's training RoIs, cut from the instance masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou, roi_align

from yolovis.model.mask_head import MASK_SIZE, expand_boxes

MASK_MATCH_IOU = 0.5


@dataclass
class MaskTargets:
    targets: torch.Tensor  # (sum R_b, 28, 28) float in [0, 1]
    matched: torch.Tensor  # (sum R_b,) bool: RoI matched a ground truth at IoU >= 0.5 (others get no loss)
    gt_index: torch.Tensor  # (sum R_b,) int64: index of the matched ground truth in its image (-1: unmatched)


def build_mask_targets(
    rois: list[torch.Tensor], gt_boxes: list[torch.Tensor], gt_masks: list[torch.Tensor], roi_scale: float = 1.0
) -> MaskTargets:
    """rois: per image (R_b, 4) the boxes the mask head ran on (the forward puts the ground-truth boxes first,
    the original trained on its own proposals only, so early training saw few positives); gt_boxes (G_b, 4);
    gt_masks (G_b, H, W) uint8. A RoI matches its best ground truth by box IoU; its target is that instance's
    mask cropped by RoIAlign to the RoI enlarged `roi_scale` times (what the mask head saw, `expand_boxes`)."""
    targets, matched, index = [], [], []
    for r, boxes, masks in zip(rois, gt_boxes, gt_masks, strict=True):
        if len(r) == 0:
            continue
        if len(boxes) == 0:  # nothing to match: zero targets, no loss
            targets.append(r.new_zeros((len(r), MASK_SIZE, MASK_SIZE)))
            matched.append(torch.zeros(len(r), dtype=torch.bool, device=r.device))
            index.append(torch.full((len(r),), -1, dtype=torch.long, device=r.device))
            continue
        iou, gt = box_iou(r, boxes.to(r)).max(1)
        cut = roi_align(
            masks[:, None].float(),
            torch.cat((gt[:, None].to(r), expand_boxes(r, roi_scale)), 1),  # (R, 5): batch index = its instance
            MASK_SIZE,
            spatial_scale=1.0,
            sampling_ratio=2,
            aligned=True,
        )[:, 0]
        targets.append(cut.clamp(0, 1))
        matched.append(iou >= MASK_MATCH_IOU)
        index.append(torch.where(matched[-1], gt, -1))
    device = rois[0].device if rois else torch.device("cpu")
    return MaskTargets(
        targets=torch.cat(targets) if targets else torch.zeros((0, MASK_SIZE, MASK_SIZE), device=device),
        matched=torch.cat(matched) if matched else torch.zeros((0,), dtype=torch.bool, device=device),
        gt_index=torch.cat(index) if index else torch.zeros((0,), dtype=torch.long, device=device),
    )
