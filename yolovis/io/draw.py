"""Drawing tracked detections over a frame: masks, boxes, class names and track ids."""

from __future__ import annotations

import cv2
import numpy as np

from yolovis.model.detections import Detections


def palette(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per track id (golden-ratio hues)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_overlay(frame: np.ndarray, det: Detections, track_ids: list[int], names: list[str]) -> np.ndarray:
    """Masks (half-transparent), boxes, class names and track ids over an RGB frame."""
    out = frame.copy()
    height, width = frame.shape[:2]
    masks = det.masks.numpy()
    # Where the postprocess recorded each mask's rectangle, blend inside it only (the same pixels, without
    # scanning a frame per mask: at 720p that scan was most of the drawing time).
    rects = det.mask_rects.tolist() if det.mask_rects is not None else [(0, 0, width, height)] * len(det)
    for k in range(len(det)):
        if track_ids[k] < 0:
            continue
        colour = np.array(palette(track_ids[k]), dtype=np.float32)
        left, top, right, bottom = rects[k]
        region, mask = out[top:bottom, left:right], masks[k, top:bottom, left:right]
        region[mask] = (0.5 * region[mask] + 0.5 * colour).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in det.boxes[k].tolist())
        c = tuple(int(v) for v in colour)
        cv2.rectangle(out, (x0, y0), (x1, y1), c, 2)
        label = f"{track_ids[k]} {names[int(det.labels[k])]} {float(det.scores[k]):.2f}"
        cv2.putText(out, label, (x0, max(y0 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1, cv2.LINE_AA)
    return out
