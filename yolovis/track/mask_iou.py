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

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils


def encode_masks(masks: torch.Tensor | np.ndarray) -> list[dict]:
    """(N, H, W) bool masks -> pycocotools RLEs ({"size": [H, W], "counts": bytes}), exactly as
    `mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))` would give them."""
    array = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if array.ndim != 3:
        raise ValueError(f"encode_masks: expected (N, H, W) masks, got shape {array.shape}")
    n, h, w = array.shape
    if n == 0:
        return []
    array = np.ascontiguousarray(array if array.dtype == bool else array != 0).view(np.uint8)  # 0/1, no copy
    columns = np.empty((n, w, h), dtype=np.uint8)  # (N, W, H) C-order is (H, W, N) Fortran-order
    for k in range(n):
        cv2.transpose(array[k], columns[k])
    return mask_utils.encode(columns.transpose(2, 1, 0))


def mask_iou(a: list[dict], b: list[dict]) -> np.ndarray:
    """(len(a), len(b)) IoU matrix of two lists of RLEs of one frame size (zeros where either list is empty)."""
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return np.asarray(mask_utils.iou(a, b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))
