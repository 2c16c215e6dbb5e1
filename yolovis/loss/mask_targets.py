"""RoIs for the mask head during training, and their 28x28 targets cut from the instance masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou, roi_align

from yolovis.model.mask_head import MASK_SIZE

MASK_MATCH_IOU = 0.5


@dataclass
class MaskRois:
    rois: list[torch.Tensor]  # per image (R_b, 4) xyxy input pixels: ground truth first, then proposals
    targets: torch.Tensor  # (sum R_b, 28, 28) float in [0, 1]
    matched: torch.Tensor  # (sum R_b,) bool: RoI matched a ground truth at IoU >= 0.5 (others get no loss)


def build_mask_rois(
    proposals: list[torch.Tensor], gt_boxes: list[torch.Tensor], gt_masks: list[torch.Tensor]
) -> MaskRois:
    """proposals: per image (P_b, 4) detached predicted boxes; gt_boxes (G_b, 4); gt_masks (G_b, H, W) uint8.

    The ground-truth boxes are added to the RoIs (the original trained on its own proposals only, so early
    training saw few positives). A RoI's target is its best ground truth's mask cropped to the RoI by RoIAlign.
    """
    rois, targets, matched = [], [], []
    for props, boxes, masks in zip(proposals, gt_boxes, gt_masks, strict=True):
        r = torch.cat((boxes.to(props), props)) if len(boxes) else props[:0]
        rois.append(r)
        if len(r) == 0:
            continue
        iou, gt = box_iou(r, boxes).max(1)
        cut = roi_align(
            masks[:, None].float(),
            torch.cat((gt[:, None].to(r), r), 1),  # (R, 5): batch index = the matched instance's mask
            MASK_SIZE,
            spatial_scale=1.0,
            sampling_ratio=2,
            aligned=True,
        )[:, 0]
        targets.append(cut.clamp(0, 1))
        matched.append(iou >= MASK_MATCH_IOU)
    device = proposals[0].device if proposals else torch.device("cpu")
    return MaskRois(
        rois=rois,
        targets=torch.cat(targets) if targets else torch.zeros((0, MASK_SIZE, MASK_SIZE), device=device),
        matched=torch.cat(matched) if matched else torch.zeros((0,), dtype=torch.bool, device=device),
    )
