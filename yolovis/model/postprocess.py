"""From the forward's output to `Detections` at the original frame size.

The forward has selected the boxes (decode, NMS: `proposals.py`) and run the mask head on them; what is left
is undoing the letterbox: boxes back to frame pixels, mask probabilities thresholded and pasted into the frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from yolovis.config import PostprocessConfig
from yolovis.data.letterbox import LetterboxInfo
from yolovis.model.detections import Detections
from yolovis.model.detector import ModelOutput
from yolovis.model.mask_head import expand_boxes


class Postprocess:
    def __init__(self, cfg: PostprocessConfig) -> None:
        self.cfg = cfg

    @torch.no_grad()
    def __call__(self, output: ModelOutput, letterboxes: list[LetterboxInfo]) -> list[Detections]:
        """`output` of a forward without targets (its RoIs are its proposals), one letterbox per image."""
        if len(letterboxes) != len(output.proposals):
            raise ValueError(f"postprocess: {len(output.proposals)} images but {len(letterboxes)} letterbox records")
        detections, start = [], 0
        for proposals, lb in zip(output.proposals, letterboxes, strict=True):
            boxes = proposals.boxes
            logits = output.mask_logits[start : start + len(boxes)].float()
            assoc = output.assoc[start : start + len(boxes)].float() if output.assoc is not None else None
            start += len(boxes)
            frame_boxes = lb.boxes_to_original(boxes)
            # The mask covers the box predicted in input pixels (enlarged as the mask head saw it); map that box
            # (unclipped) to the frame.
            offset = boxes.new_tensor([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y])
            mask_boxes = (expand_boxes(boxes, output.mask_roi_scale) - offset) / lb.scale
            masks, rects = paste_masks(logits.sigmoid(), mask_boxes, lb.orig_h, lb.orig_w, self.cfg.mask_threshold,
                                       with_rects=True)  # fmt: skip
            scores, labels = proposals.scores.float(), proposals.labels.long()
            detections.append(Detections(frame_boxes.float(), scores, labels, masks, assoc, mask_rects=rects))
        return detections


def paste_masks(
    probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5, with_rects: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Paste (N, M, M) mask probabilities into (N, height, width) bool masks, each stretched over its xyxy box;
    `with_rects` also returns the (N, 4) int64 xyxy rectangle each mask was pasted into (empty outside it).

    Only the pixels of each box's own bounding rectangle are sampled (bilinear, at pixel centres), so the cost
    is the boxes' area, not N x the frame's. On the CPU the masks are allocated by numpy's calloc: the kernel
    maps a zeroed page only where one is first touched, so while writers and readers keep to the rectangles a
    frame's N full-size masks cost the rectangles' area in time and memory too (50 masks of a 720p frame are
    46 MB that `torch.zeros` spent ~10 ms clearing).
    """
    shape = (len(boxes), height, width)
    if probs.device.type == "cpu":
        out = torch.from_numpy(np.zeros(shape, dtype=np.bool_))
    else:
        out = torch.zeros(shape, dtype=torch.bool, device=probs.device)
    rects = [[0, 0, 0, 0] for _ in range(len(boxes))]  # an empty rectangle for an empty mask
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        c0, r0 = max(0, int(x0)), max(0, int(y0))
        c1, r1 = min(width, int(-(-x1 // 1))), min(height, int(-(-y1 // 1)))
        if c1 <= c0 or r1 <= r0:
            continue
        rects[i] = [c0, r0, c1, r1]
        # The sampling grid in numpy: the same float32 operations as torch's (bit for bit, tested), without
        # torch's per-op dispatch to its thread pool, which cost more than the arithmetic on these small arrays.
        f32 = np.float32
        xs = (np.arange(c0, c1, dtype=f32) + f32(0.5) - f32(x0)) / f32(x1 - x0) * f32(2) - f32(1)
        ys = (np.arange(r0, r1, dtype=f32) + f32(0.5) - f32(y0)) / f32(y1 - y0) * f32(2) - f32(1)
        grid = np.empty((1, r1 - r0, c1 - c0, 2), dtype=f32)  # (1, h, w, 2): x then y, as grid_sample reads it
        grid[0, :, :, 0] = xs
        grid[0, :, :, 1] = ys[:, None]
        grid = torch.from_numpy(grid).to(probs.device)
        sampled = F.grid_sample(probs[i][None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        out[i, r0:r1, c0:c1] = sampled[0, 0] >= threshold
    return (out, torch.tensor(rects, dtype=torch.int64).reshape(-1, 4)) if with_rects else out
