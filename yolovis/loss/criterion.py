"""The YoloV4+1 criterion: box, objectness, class and mask losses joined by automatic loss balancing.

Automatic loss balancing (Kendall, Gal and Cipolla 2018; the report's Eq. 1):
    L = sum over levels i and losses j of 1/2 (exp(-w_ij) L_ij + w_ij),   w learnable, initialised to 0.
`balancing="per_level"` (the report's) learns one w per (level, loss) for box/objectness/class and one
for the mask loss, which pools all levels; `"global"` learns one w per loss (what the original code did);
`"none"` sums the raw losses. The default is `global`: it scored better on held-out videos (docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolovis.config import CriterionConfig
from yolovis.data.sample import FrameSample
from yolovis.loss.assign import LevelTargets, assign_targets
from yolovis.loss.association import association_loss
from yolovis.loss.mask_targets import build_mask_targets
from yolovis.model.detector import ModelOutput

LEVEL_LOSSES = ("box", "obj", "cls")


class Criterion(nn.Module):
    def __init__(self, cfg: CriterionConfig, num_levels: int, association: bool = False) -> None:
        """`association`: the model has an association head, whose contrastive loss joins (with its weight)."""
        super().__init__()
        if cfg.balancing not in ("per_level", "global", "none"):
            raise ValueError(f"balancing must be per_level, global or none, not {cfg.balancing!r}")
        if cfg.normalize not in ("batch", "level"):
            raise ValueError(f"normalize must be batch or level, not {cfg.normalize!r}")
        self.cfg = cfg
        self.num_levels = num_levels
        rows = num_levels if cfg.balancing == "per_level" else 1
        self.level_weights = nn.Parameter(torch.zeros(rows, len(LEVEL_LOSSES)), requires_grad=cfg.balancing != "none")
        self.mask_weight = nn.Parameter(torch.zeros(()), requires_grad=cfg.balancing != "none")
        self.assoc_weight = (
            nn.Parameter(torch.zeros(()), requires_grad=cfg.balancing != "none") if association else None
        )

    def assign(self, output: ModelOutput, gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor]):
        grid_sizes = [tuple(p.shape[2:4]) for p in output.predictions]
        return [
            assign_targets(
                boxes,
                labels,
                output.anchors,
                grid_sizes,
                output.strides,
                self.cfg.class_supervision,
                force_best_match=self.cfg.force_best_match,
            )  # fmt: skip
            for boxes, labels in zip(gt_boxes, gt_labels, strict=True)
        ]

    def forward(self, output: ModelOutput, targets: list[FrameSample]) -> tuple[torch.Tensor, dict[str, float]]:
        """`output` of a forward given `targets`; returns the balanced total loss and a log of every raw loss,
        weight and count."""
        gt_boxes = [t.boxes for t in targets]
        assigned = self.assign(output, gt_boxes, [t.labels for t in targets])
        sums, counts = zip(
            *(self.level_sums(pred, [a[k] for a in assigned]) for k, pred in enumerate(output.predictions)),
            strict=True,
        )
        sums, counts = torch.stack(sums), torch.tensor(counts, dtype=torch.float32)  # (L, 3) each
        if self.cfg.normalize == "batch":
            # Box and objectness by the positives of the whole batch, classes by its class cells, as RetinaNet
            # and FCOS do: a level without positives is not divided by 1 (its negatives' raw sum would swamp
            # the objectness of the levels that hold objects).
            counts = counts.sum(0, keepdim=True).expand_as(counts)
        raw = (sums / counts.clamp(min=1).to(sums)).float()  # (L, 3): box, obj, cls; summed over L: the totals
        masks = build_mask_targets(output.rois, gt_boxes, [t.masks for t in targets], output.mask_roi_scale)
        if bool(masks.matched.any()):
            logits = output.mask_logits[masks.matched]
            mask_loss = F.binary_cross_entropy_with_logits(logits, masks.targets[masks.matched])
        else:
            mask_loss = output.mask_logits.sum() * 0.0  # zero, with the mask head still in the graph
        roi_losses = {"mask": (mask_loss, self.mask_weight)}
        if self.assoc_weight is not None and output.assoc is not None:
            roi_losses["assoc"] = (self.association(output, targets, masks.gt_index), self.assoc_weight)

        if self.cfg.balancing == "none":
            total = raw.sum() + sum(loss for loss, _ in roi_losses.values())
        elif self.cfg.balancing == "per_level":
            w = self.level_weights
            total = 0.5 * (torch.exp(-w) * raw + w).sum()
        else:  # global: the levels' losses are summed, then one weight per loss
            w = self.level_weights[0]
            total = 0.5 * (torch.exp(-w) * raw.sum(0) + w).sum()
        if self.cfg.balancing != "none":  # the RoI losses pool all levels: one weight each
            total = total + sum(0.5 * (torch.exp(-w) * loss + w) for loss, w in roi_losses.values())

        log = {"loss": float(total.detach())}
        for k in range(raw.shape[0]):
            for j, name in enumerate(LEVEL_LOSSES):
                log[f"{name}_{output.strides[k]}"] = float(raw[k, j].detach())
        for j, name in enumerate(LEVEL_LOSSES):
            log[name] = float(raw[:, j].sum().detach())
        for name, (loss, _) in roi_losses.items():
            log[name] = float(loss.detach())
        if self.cfg.balancing != "none":
            for i in range(self.level_weights.shape[0]):
                suffix = f"_{output.strides[i]}" if self.cfg.balancing == "per_level" else ""
                for j, name in enumerate(LEVEL_LOSSES):
                    log[f"w_{name}{suffix}"] = float(self.level_weights[i, j].detach())
            for name, (_, w) in roi_losses.items():
                log[f"w_{name}"] = float(w.detach())
        log["positives"] = float(sum(int(a[k].positive.sum()) for a in assigned for k in range(len(a))))
        return total, log

    def association(self, output: ModelOutput, targets: list[FrameSample], gt_index: torch.Tensor) -> torch.Tensor:
        """The association loss over the batch's RoIs, each identified by its matched instance's id."""
        identities, images, start = [], [], 0
        for b, (rois, target) in enumerate(zip(output.rois, targets, strict=True)):
            index = gt_index[start : start + len(rois)]
            start += len(rois)
            ids = torch.full_like(index, -1)
            ids[index >= 0] = target.instance_ids.to(index.device)[index[index >= 0]]
            identities.append(ids)
            images.append(torch.full_like(index, b))
        return association_loss(output.assoc.float(), torch.cat(identities), torch.cat(images))

    def level_sums(self, pred: torch.Tensor, targets: list[LevelTargets]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """pred (B, nA, H, W, 5+K) of one level -> (3,) summed box, objectness and class losses, and what each is
        normalised by: (positives, positives, class cells) of this level."""
        pred = pred.float()
        positive = torch.stack([t.positive for t in targets])  # (B, nA, H, W)
        negative = torch.stack([t.negative for t in targets])
        class_cells = torch.stack([t.class_cells for t in targets])
        deltas = torch.cat([t.box_deltas for t in targets])
        box = F.smooth_l1_loss(pred[positive][:, :4], deltas, beta=self.cfg.smooth_l1_beta, reduction="sum")
        counted = positive | negative
        obj = F.binary_cross_entropy_with_logits(pred[..., 4][counted], positive.float()[counted], reduction="sum")
        labels = torch.cat([t.class_labels for t in targets])
        cls = F.cross_entropy(pred[class_cells][:, 5:], labels, reduction="sum")
        num_pos, num_cls = int(positive.sum()), int(class_cells.sum())
        return torch.stack((box, obj, cls)), (num_pos, num_pos, num_cls)
