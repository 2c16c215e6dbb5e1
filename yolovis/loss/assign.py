"""Target assignment (SPEC §3): which anchor-cells are positive, negative or ignored, per pyramid level.

An anchor-cell is the anchor box centred on a grid cell. It is positive when its IoU with its best ground-truth
box exceeds 0.4 t, negative below 0.3 t, ignored in between, with the level's tolerance t (0.6, 0.8, 1.0, 1.2
for strides 4, 8, 16, 32: small anchors need less overlap to count, since a few pixels weigh more).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from yolovis.model.anchors import encode_boxes

TOLERANCES = (0.6, 0.8, 1.0, 1.2)
POSITIVE_IOU = 0.4
NEGATIVE_IOU = 0.3


@dataclass
class LevelTargets:
    """Targets of one image at one level; all masks are (nA, H, W)."""

    positive: torch.Tensor  # bool
    negative: torch.Tensor  # bool
    matched_gt: torch.Tensor  # int64, index of the best ground truth (meaningful where positive)
    box_deltas: torch.Tensor  # (P, 4) delta targets of the positives, in positive.nonzero() order
    class_cells: torch.Tensor  # bool, cells whose class is supervised
    class_labels: torch.Tensor  # (C,) labels of the class cells, in class_cells.nonzero() order


def anchor_cell_boxes(anchors: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """(nA * H * W, 4) xyxy boxes of the anchors centred on every cell, in (anchor, row, col) order."""
    ys = (torch.arange(height, dtype=torch.float32, device=anchors.device) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32, device=anchors.device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centers = torch.stack((cx, cy), -1)[None]  # (1, H, W, 2)
    half = anchors[:, None, None, :] / 2  # (nA, 1, 1, 2)
    return torch.cat((centers - half, centers + half), -1).reshape(-1, 4)


def assign_targets(
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    anchors: torch.Tensor,
    grid_sizes: list[tuple[int, int]],
    strides: tuple[int, ...],
    class_supervision: str = "positives",
    tolerances: tuple[float, ...] = TOLERANCES,
    force_best_match: bool = True,
) -> list[LevelTargets]:
    """Assign the ground truth of one image to every level.

    gt_boxes (G, 4) xyxy input pixels, gt_labels (G,), anchors (L, nA, 2) pixels, grid_sizes [(H_k, W_k)].
    class_supervision: "centroid" (the report's: per ground truth and level with positives, only the cell holding
    the box centre, at its best anchor) or "positives" (every positive anchor-cell).
    force_best_match: each ground truth's single best anchor-cell over all levels is positive even below the
    threshold, so that no object goes unlearned (as Faster R-CNN's matcher allows low-quality matches).
    """
    if class_supervision not in ("centroid", "positives"):
        raise ValueError(f"class_supervision must be 'centroid' or 'positives', not {class_supervision!r}")
    num_anchors = anchors.shape[1]
    ious, cell_boxes = [], []
    for anchors_k, (h, w), stride in zip(anchors, grid_sizes, strides, strict=True):
        cells = anchor_cell_boxes(anchors_k, h, w, stride)
        cell_boxes.append(cells)
        ious.append(box_iou(cells, gt_boxes) if len(gt_boxes) else cells.new_zeros((len(cells), 0)))

    forced: list[torch.Tensor] = [torch.zeros(len(c), dtype=torch.bool, device=anchors.device) for c in cell_boxes]
    forced_gt: list[torch.Tensor] = [torch.zeros(len(c), dtype=torch.long, device=anchors.device) for c in cell_boxes]
    if force_best_match and len(gt_boxes):
        # Candidates: at each level, the best anchor of the cell holding the box centre (YOLO's own rule, and
        # unambiguous where IoU ties, as for objects smaller than every anchor); the best level wins.
        centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        candidates, candidate_iou = [], []
        for iou, (h, w), stride in zip(ious, grid_sizes, strides, strict=True):
            col = (centers[:, 0] // stride).long().clamp(0, w - 1)
            row = (centers[:, 1] // stride).long().clamp(0, h - 1)
            cells = torch.arange(num_anchors, device=iou.device)[:, None] * h * w + row * w + col  # (nA, G)
            cell_iou = iou.gather(0, cells).T if iou.shape[1] else iou.new_zeros((len(gt_boxes), num_anchors))
            best_iou, best_anchor = cell_iou.max(1) if cell_iou.dim() == 2 else cell_iou.max(0)
            candidates.append(cells.T.gather(1, best_anchor[:, None])[:, 0])
            candidate_iou.append(best_iou)
        best_level = torch.stack(candidate_iou).argmax(0)  # (G,)
        index = torch.arange(len(gt_boxes), device=anchors.device)
        for k in range(len(forced)):  # per level, not per object: no host synchronisation per object on a GPU
            chosen = best_level == k
            cells = candidates[k][chosen]
            forced[k][cells] = True
            # Two objects forced onto one cell: the later one keeps it (as assigning them in order would).
            forced_gt[k].scatter_reduce_(0, cells, index[chosen], reduce="amax")

    targets = []
    for k, (iou, (h, w), stride, t) in enumerate(zip(ious, grid_sizes, strides, tolerances, strict=True)):
        shape = (num_anchors, h, w)
        if iou.shape[1]:
            max_iou, matched = iou.max(1)
        else:
            max_iou = iou.new_zeros(len(iou))
            matched = torch.zeros(len(iou), dtype=torch.long, device=iou.device)
        positive = max_iou > POSITIVE_IOU * t
        matched = torch.where(forced[k] & ~positive, forced_gt[k], matched)
        positive = positive | forced[k]
        negative = (max_iou < NEGATIVE_IOU * t) & ~positive

        pos_index = positive.nonzero().squeeze(1)
        anchor_index = pos_index // (h * w)
        cell_xy = torch.stack((pos_index % w, (pos_index // w) % h), 1)
        deltas = encode_boxes(gt_boxes[matched[pos_index]], anchors[k][anchor_index], cell_xy, stride)

        if class_supervision == "positives":
            class_cells = positive.clone()
        else:
            # The report's rule: the class of g is learned at the cell of its box centre only, at the anchor
            # that fits g best among those whose box target is g (a cell's class and box must be one object's;
            # where another object holds every anchor of that cell, g's class is not supervised at this level).
            class_cells = torch.zeros_like(positive)
            for g in matched[pos_index].unique().tolist():
                cx = float(gt_boxes[g, 0] + gt_boxes[g, 2]) / 2
                cy = float(gt_boxes[g, 1] + gt_boxes[g, 3]) / 2
                col, row = min(int(cx // stride), w - 1), min(int(cy // stride), h - 1)
                cells = torch.arange(num_anchors, device=iou.device) * h * w + row * w + col
                own = cells[positive[cells] & (matched[cells] == g)]
                if len(own):
                    class_cells[own[iou[own, g].argmax()]] = True
        class_labels = gt_labels[matched[class_cells]]
        targets.append(
            LevelTargets(
                positive=positive.view(shape),
                negative=negative.view(shape),
                matched_gt=matched.view(shape),
                box_deltas=deltas,
                class_cells=class_cells.view(shape),
                class_labels=class_labels,
            )
        )
    return targets
