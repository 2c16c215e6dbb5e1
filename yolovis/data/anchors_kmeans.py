"""`yolovis anchors`: IoU-distance k-means of the letterboxed ground-truth boxes (as YOLOv2-v4 fit anchors).

The distance between a box and an anchor is 1 - IoU of their (w, h) with aligned centres, so that large and
small boxes weigh alike. The 4 x N centres are sorted by area and dealt to the four levels, smallest to the
stride-4 level. The fit's quality is the mean, over the boxes, of the best IoU with any anchor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import yaml

from yolovis.data.annotations import VISAnnotations
from yolovis.errors import UserError
from yolovis.fileio import atomic_write_text

NUM_LEVELS = 4


def wh_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N, 2) and (K, 2) widths/heights -> (N, K) IoU of centre-aligned boxes."""
    inter = np.minimum(boxes[:, None, 0], anchors[None, :, 0]) * np.minimum(boxes[:, None, 1], anchors[None, :, 1])
    union = (boxes[:, 0] * boxes[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / union


def letterboxed_box_sizes(ann: VISAnnotations, img_size: int) -> np.ndarray:
    """(N, 2) w, h of every non-crowd ground-truth box, scaled as letterboxing to img_size x img_size scales."""
    sizes = []
    for track in ann.tracks:
        if track.iscrowd or track.bboxes is None:
            continue
        video = ann.video(track.video_id)
        scale = min(img_size / video.width, img_size / video.height)
        for box in track.bboxes:
            if box is not None and box[2] > 0 and box[3] > 0:
                sizes.append((box[2] * scale, box[3] * scale))
    return np.asarray(sizes, dtype=np.float64).reshape(-1, 2)


@dataclass
class AnchorFit:
    anchors: np.ndarray  # (4 * N, 2) w, h sorted by area
    mean_best_iou: float  # mean over boxes of max IoU with an anchor
    num_boxes: int

    def per_level(self) -> list[list[list[float]]]:
        n = len(self.anchors) // NUM_LEVELS
        return [
            [[round(float(w), 1), round(float(h), 1)] for w, h in self.anchors[i * n : (i + 1) * n]]
            for i in range(NUM_LEVELS)
        ]


def kmeans_anchors(sizes: np.ndarray, k: int, seed: int = 0, restarts: int = 5, max_iter: int = 300) -> AnchorFit:
    """IoU k-means with k-means++ seeding (in the 1 - IoU distance) and `restarts` seeded runs; the run with the
    best mean IoU wins. Centres are the mean of their boxes; an emptied cluster is reseeded on the worst box."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if len(sizes) < k:
        raise UserError(f"anchors: {len(sizes)} boxes are too few for {k} anchors")
    rng = np.random.default_rng(seed)
    best: AnchorFit | None = None
    for _ in range(restarts):
        centres = sizes[[int(rng.integers(len(sizes)))]]
        while len(centres) < k:
            d = 1 - wh_iou(sizes, centres).max(axis=1)
            p = d**2 / (d**2).sum() if d.sum() > 0 else None
            centres = np.vstack([centres, sizes[rng.choice(len(sizes), p=p)]])
        assign = None
        for _ in range(max_iter):
            iou = wh_iou(sizes, centres)
            new_assign = iou.argmax(axis=1)
            if assign is not None and np.array_equal(new_assign, assign):
                break
            assign = new_assign
            for j in range(k):
                members = sizes[assign == j]
                if len(members):
                    centres[j] = members.mean(axis=0)
                else:
                    centres[j] = sizes[iou.max(axis=1).argmin()]
        fit = AnchorFit(centres, float(wh_iou(sizes, centres).max(axis=1).mean()), len(sizes))
        if best is None or fit.mean_best_iou > best.mean_best_iou:
            best = fit
    order = np.argsort(best.anchors.prod(axis=1), kind="stable")
    return AnchorFit(best.anchors[order], best.mean_best_iou, best.num_boxes)


def fit_anchors(ann: VISAnnotations, per_level: int, img_size: int, seed: int = 0) -> AnchorFit:
    if per_level < 1:
        raise UserError(f"anchors: --per-level must be >= 1 (got {per_level})")
    sizes = letterboxed_box_sizes(ann, img_size)
    if len(sizes) == 0:
        raise UserError(f"{ann.source}: no ground-truth boxes to fit anchors to")
    return kmeans_anchors(sizes, NUM_LEVELS * per_level, seed=seed)


def write_anchor_config(fit: AnchorFit, img_size: int, path: str | os.PathLike) -> None:
    """The YAML the trainer reads with --config: model.anchors (level, anchor, [w, h]) and anchor_img_size."""
    text = yaml.safe_dump(
        {"model": {"anchors": fit.per_level(), "anchor_img_size": int(img_size)}},
        default_flow_style=None,
        sort_keys=False,
    )
    atomic_write_text(
        path, f"# IoU k-means anchors, mean best IoU {fit.mean_best_iou:.3f} on {fit.num_boxes} boxes\n{text}"
    )
