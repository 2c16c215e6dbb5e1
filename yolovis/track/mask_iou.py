"""Masks as pycocotools RLEs, and their pairwise IoU: the tracker's cost and what a track keeps of each frame.

Why RLE (measured with `python benchmarks/track_speed.py --only masks`, 50 blob masks of 20-150 px radius at
1280x720 against 50 others, 2-core CPU): pycocotools' RLE `iou` costs ~0.6 ms for the 50x50 matrix, against
~160 ms for a float matmul on 4x down-sampled masks (error up to 0.002) and ~300 ms at full size, and a bit-packed
mask is 115 kB where its RLE is ~0.3 kB. The RLE is what the results file stores anyway, so encoding it once per
frame serves the tracker, the memory (a track holds only RLEs) and the output.

The encoding is dominated by the transposition pycocotools needs (column-major masks): OpenCV's uint8 transpose
does it ~3x faster than numpy's (~17 ms against ~58 ms for the 50 masks above), halving the encoding time.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from yolovis.model.detections import Detections


def encode_masks(masks: torch.Tensor | np.ndarray, rects: torch.Tensor | np.ndarray | None = None,
                 indices: list[int] | None = None) -> list[dict]:  # fmt: skip
    """(N, H, W) bool masks -> pycocotools RLEs ({"size": [H, W], "counts": bytes}), exactly as
    `mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))` would give them.

    `rects` ((N, 4) xyxy, each mask empty outside its rectangle, as `Detections.mask_rects`) makes the cost the
    rectangles' area instead of N frames; `indices` encodes only those masks (without copying the others)."""
    array = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"encode_masks: expected (N, H, W) masks, got shape {array.shape}")
    if rects is not None:
        rects = rects.cpu().numpy() if isinstance(rects, torch.Tensor) else np.asarray(rects)
        picked = range(len(array)) if indices is None else indices
        h, w = array.shape[1:]
        counts = [_rect_counts(array[k], *(int(v) for v in rects[k])) for k in picked]
        return mask_utils.frPyObjects([{"size": [h, w], "counts": c} for c in counts], h, w) if counts else []
    if indices is not None:
        array = array[indices]
    n, h, w = array.shape
    if n == 0:
        return []
    array = np.ascontiguousarray(array if array.dtype == bool else array != 0).view(np.uint8)  # 0/1, no copy
    columns = np.empty((n, w, h), dtype=np.uint8)  # (N, W, H) C-order is (H, W, N) Fortran-order
    for k in range(n):
        cv2.transpose(array[k], columns[k])
    return mask_utils.encode(columns.transpose(2, 1, 0))


def _rect_counts(mask: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """Uncompressed RLE counts (column-major runs, zeros first) of an (H, W) mask that is empty outside the
    rectangle, read from the rectangle only.

    The rectangle's columns are laid out one after another with a single zero after each, standing for the
    (H - h) zeros below and above the next column (and, after the last, for everything to the frame's end);
    a run's length is then the sum of its elements' weights, 1 for a pixel and that gap for a separator."""
    height, width = mask.shape
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return [height * width]
    h, w = y1 - y0, x1 - x0
    columns = np.zeros((w, h + 1), dtype=np.uint8)  # (w, h + 1): each column, then its separator
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1]).view(np.uint8) if mask.dtype == bool else (mask[y0:y1, x0:x1] != 0)
    cv2.transpose(crop.astype(np.uint8, copy=False), columns[:, :h])
    flat = columns.ravel()
    weights = np.ones(flat.size, dtype=np.int64)
    weights[h :: h + 1] = height - h  # between two columns: below this one, above the next
    weights[-1] = (height - y1) + (width - x1) * height  # after the last column: to the end of the frame
    keep = weights > 0  # a rectangle as tall as the frame has nothing between its columns
    flat, weights = flat[keep], weights[keep]
    cumulative = np.concatenate(([0], np.cumsum(weights)))
    bounds = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]))
    runs = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
    if flat[0]:  # RLE counts start with a run of zeros, possibly empty
        runs = np.concatenate(([0], runs))
    runs[0] += x0 * height + y0  # the columns before the rectangle and the top of its first column
    return runs.tolist()


def encode_detections(detections: Detections, indices: list[int]) -> list[dict]:
    """RLEs of the masks of `detections[indices]`, from their rectangles where the postprocess recorded them."""
    return encode_masks(detections.masks, detections.mask_rects, indices)


def encode_selected(detections: Detections, indices: list[int]) -> list[dict | None]:
    """One entry per detection: the RLE of those at `indices`, None for the others (what a tracker encodes of a
    frame: only the detections it takes)."""
    rles: list[dict | None] = [None] * len(detections)
    for i, rle in zip(indices, encode_detections(detections, indices), strict=True):
        rles[i] = rle
    return rles


def mask_iou(a: list[dict], b: list[dict]) -> np.ndarray:
    """(len(a), len(b)) IoU matrix of two lists of RLEs of one frame size (zeros where either list is empty)."""
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return np.asarray(mask_utils.iou(a, b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))


@dataclass(slots=True)
class MaskCrop:
    """A mask kept as the bitmap of its bounding rectangle: what a live track needs to compare itself with the
    next frame's masks after moving (a full-frame bitmap per track would cost H x W bytes each)."""

    bitmap: np.ndarray  # (h, w) bool
    x0: int
    y0: int
    area: int

    @classmethod
    def from_mask(cls, mask: np.ndarray, box: tuple[int, int, int, int]) -> MaskCrop:
        """The part of a full-frame (H, W) bool mask inside the integer xyxy rectangle `box` (its RLE's bbox)."""
        x0, y0, x1, y1 = box
        bitmap = np.ascontiguousarray(mask[y0:y1, x0:x1])
        return cls(bitmap, x0, y0, int(bitmap.sum()))


def rle_boxes(rles: list[dict], height: int, width: int) -> np.ndarray:
    """(N, 4) int64 xyxy rectangles that hold each RLE's pixels (pycocotools' bbox, no decoding)."""
    if not rles:
        return np.zeros((0, 4), dtype=np.int64)
    xywh = np.asarray(mask_utils.toBbox(rles), dtype=np.float64).reshape(-1, 4)
    x0 = np.floor(xywh[:, 0])
    y0 = np.floor(xywh[:, 1])
    x1 = np.minimum(np.ceil(xywh[:, 0] + xywh[:, 2]), width)
    y1 = np.minimum(np.ceil(xywh[:, 1] + xywh[:, 3]), height)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def shifted_crop_iou(dets: list[MaskCrop], tracks: list[MaskCrop], shifts: np.ndarray) -> np.ndarray:
    """(len(dets), len(tracks)) mask IoU of each detection with each track's mask moved by its (dx, dy) shift.

    Only pairs whose rectangles overlap after the shift are compared (the others are 0), each on the overlap of
    the two rectangles, so the cost is the overlapping area, not the frame's. Shifts are rounded to pixels.
    """
    iou = np.zeros((len(dets), len(tracks)), dtype=np.float64)
    if not dets or not tracks:
        return iou
    shifts = np.rint(np.asarray(shifts, dtype=np.float64).reshape(len(tracks), 2)).astype(np.int64)
    d_rect = np.array([[d.x0, d.y0, d.x0 + d.bitmap.shape[1], d.y0 + d.bitmap.shape[0]] for d in dets])
    t_rect = np.array([[t.x0, t.y0, t.x0 + t.bitmap.shape[1], t.y0 + t.bitmap.shape[0]] for t in tracks])
    t_rect = t_rect + np.concatenate([shifts, shifts], axis=1)
    left = np.maximum(d_rect[:, None, 0], t_rect[None, :, 0])
    top = np.maximum(d_rect[:, None, 1], t_rect[None, :, 1])
    right = np.minimum(d_rect[:, None, 2], t_rect[None, :, 2])
    bottom = np.minimum(d_rect[:, None, 3], t_rect[None, :, 3])
    for i, j in zip(*np.nonzero((right > left) & (bottom > top)), strict=True):
        d, t = dets[i], tracks[j]
        l, r, u, b = left[i, j], right[i, j], top[i, j], bottom[i, j]
        a = d.bitmap[u - d.y0 : b - d.y0, l - d.x0 : r - d.x0]
        ty0, tx0 = t_rect[j, 1], t_rect[j, 0]
        c = t.bitmap[u - ty0 : b - ty0, l - tx0 : r - tx0]
        inter = int(np.count_nonzero(a & c))
        union = d.area + t.area - inter
        iou[i, j] = inter / union if union > 0 else 0.0
    return iou
