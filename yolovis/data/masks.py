"""Instance masks in the COCO / YouTube-VIS encodings, through pycocotools (the reference implementation).

A segmentation is one of: a compressed RLE (`counts` a string), an uncompressed RLE (`counts` a list of run
lengths, as in YouTube-VIS train.json) or a list of polygons (flat [x0, y0, x1, y1, ...] lists).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


class SegmentationError(ValueError):
    """A segmentation that cannot be decoded; the caller adds the file, video and frame to the message."""


def to_rle(seg: Any, height: int, width: int) -> dict:
    """Any supported segmentation -> a compressed RLE dict (counts as bytes) of size (height, width)."""
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise SegmentationError(f"RLE without 'counts'/'size' keys: {sorted(seg)}")
        size = [int(v) for v in seg["size"]]
        if size != [height, width]:
            raise SegmentationError(f"mask size {size[1]}x{size[0]} differs from the frame size {width}x{height}")
        counts = seg["counts"]
        if isinstance(counts, list):
            if sum(counts) != height * width:
                raise SegmentationError(f"uncompressed RLE covers {sum(counts)} pixels, not {height}x{width}")
            return mask_utils.frPyObjects(seg, height, width)
        if isinstance(counts, str):
            return {"size": size, "counts": counts.encode("ascii")}
        if isinstance(counts, bytes):
            return {"size": size, "counts": counts}
        raise SegmentationError(f"RLE counts of type {type(counts).__name__}")
    if isinstance(seg, list):
        if seg and not isinstance(seg[0], list):
            seg = [seg]  # a single flat polygon
        # pycocotools reads a 4-number list as a box and needs 3 points per polygon: drop degenerate ones.
        polygons = [[float(v) for v in p] for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    raise SegmentationError(f"segmentation of type {type(seg).__name__} (expected an RLE dict or polygons)")


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """A segmentation -> (height, width) uint8 mask of 0/1."""
    try:
        return mask_utils.decode(to_rle(seg, height, width))
    except SegmentationError:
        raise
    except Exception as e:  # pycocotools raises bare ValueError/TypeError on malformed counts
        raise SegmentationError(f"undecodable segmentation ({e})") from None


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) bool/uint8 mask -> compressed RLE with string counts, as YouTube-VIS files and results hold it."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_to_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight xyxy box of a mask in pixel-edge coordinates (a single pixel at (0, 0) is (0, 0, 1, 1))."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks -> (N, 4) float32 xyxy tight boxes; an empty mask gives (0, 0, 0, 0)."""
    out = np.zeros((masks.shape[0], 4), dtype=np.float32)
    for i, m in enumerate(masks):
        box = mask_to_box(m)
        if box is not None:
            out[i] = box
    return out
