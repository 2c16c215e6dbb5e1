"""Augmentations that move image, masks and boxes together: flip, scale, translation, HSV jitter and mosaic.

All geometry is one affine matrix per sample, in pixel-edge coordinates (a pixel i spans [i, i + 1], the box
convention), applied once to the image and to the masks; boxes are then the tight boxes of the warped masks, so
they can never disagree with them. Setting a probability or range to 0 switches that augmentation off.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from yolovis.data.letterbox import PAD_VALUE, LetterboxInfo
from yolovis.data.masks import masks_to_boxes

MIN_BOX_SIZE = 2.0  # pixels; narrower or lower instances are dropped after augmentation


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip
    hsv_h: float = 0.015  # hue gain: the hue is multiplied by 1 + U(-hsv_h, hsv_h)
    hsv_s: float = 0.7  # saturation gain range
    hsv_v: float = 0.4  # value (brightness) gain range
    scale: float = 0.5  # zoom by U(1 - scale, 1 + scale)
    translate: float = 0.1  # shift by up to this fraction of the input width / height
    mosaic: float = 0.5  # probability of a YOLOv4 mosaic of 4 frames

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(flip=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, scale=0.0, translate=0.0, mosaic=0.0)

    @property
    def geometric(self) -> bool:
        return self.flip > 0 or self.scale > 0 or self.translate > 0 or self.mosaic > 0


@dataclass
class FrameArrays:
    """A frame and its instances as numpy arrays, before they become a `FrameSample`."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    masks: np.ndarray  # (N, H, W) uint8 0/1
    labels: np.ndarray  # (N,) int64
    instance_ids: np.ndarray  # (N,) int64
    letterbox: LetterboxInfo
    matrix: np.ndarray | None = None  # (3, 3) applied geometry, edge coordinates, from the letterboxed frame

    @property
    def boxes(self) -> np.ndarray:
        return masks_to_boxes(self.masks)


def _to_cv2(matrix: np.ndarray) -> np.ndarray:
    """A 3x3 affine in edge coordinates -> OpenCV's 2x3, whose pixel centres sit on integers."""
    a, b = matrix[:2, :2], matrix[:2, 2]
    return np.concatenate([a, (b + a @ np.array([0.5, 0.5]) - 0.5)[:, None]], axis=1)


def warp_masks(masks: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(N, H, W) uint8 0/1 -> (N, out_h, out_w); bilinear on 0/1 then rounding = a 0.5 threshold."""
    out_h, out_w = out_hw
    if masks.shape[0] == 0:
        return np.zeros((0, out_h, out_w), dtype=np.uint8)
    m = _to_cv2(matrix)
    # One mask at a time: OpenCV's multi-channel paths round differently, and a mask must not depend on
    # which other instances share its frame (pairs and clips rely on that).
    out = np.empty((masks.shape[0], out_h, out_w), dtype=np.uint8)
    for i, mask in enumerate(masks):
        out[i] = cv2.warpAffine(mask, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def warp_frame(frame: FrameArrays, matrix: np.ndarray, out_hw: tuple[int, int]) -> FrameArrays:
    """Apply a 3x3 edge-coordinate affine to image and masks, then drop instances left degenerate."""
    image = cv2.warpAffine(
        frame.image,
        _to_cv2(matrix),
        (out_hw[1], out_hw[0]),
        flags=cv2.INTER_LINEAR,
        borderValue=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    masks = warp_masks(frame.masks, matrix, out_hw)
    prior = frame.matrix if frame.matrix is not None else np.eye(3)
    out = FrameArrays(image, masks, frame.labels, frame.instance_ids, frame.letterbox, matrix @ prior)
    return drop_degenerate(out)


def drop_degenerate(frame: FrameArrays, min_size: float = MIN_BOX_SIZE) -> FrameArrays:
    boxes = frame.boxes
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    if keep.all():
        return frame
    return FrameArrays(
        frame.image, frame.masks[keep], frame.labels[keep], frame.instance_ids[keep], frame.letterbox, frame.matrix
    )


def random_affine(
    in_hw: tuple[int, int], out_hw: tuple[int, int], cfg: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """Zoom about the centre of the input, place it at the (shifted) centre of the output, maybe mirror."""
    s = rng.uniform(1 - cfg.scale, 1 + cfg.scale) if cfg.scale > 0 else 1.0
    tx = rng.uniform(-cfg.translate, cfg.translate) * out_hw[1] if cfg.translate > 0 else 0.0
    ty = rng.uniform(-cfg.translate, cfg.translate) * out_hw[0] if cfg.translate > 0 else 0.0
    to_origin = np.array([[1, 0, -in_hw[1] / 2], [0, 1, -in_hw[0] / 2], [0, 0, 1]], dtype=np.float64)
    zoom = np.diag([s, s, 1.0])
    place = np.array([[1, 0, out_hw[1] / 2 + tx], [0, 1, out_hw[0] / 2 + ty], [0, 0, 1]], dtype=np.float64)
    matrix = place @ zoom @ to_origin
    if cfg.flip > 0 and rng.random() < cfg.flip:
        matrix = np.array([[-1, 0, out_hw[1]], [0, 1, 0], [0, 0, 1]], dtype=np.float64) @ matrix
    return matrix


def hsv_jitter(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random gains on hue, saturation and value through lookup tables (as YOLOv5 does)."""
    if cfg.hsv_h <= 0 and cfg.hsv_s <= 0 and cfg.hsv_v <= 0:
        return image
    gains = rng.uniform(-1, 1, 3) * np.array([cfg.hsv_h, cfg.hsv_s, cfg.hsv_v]) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    lut_hue = ((x * gains[0]) % 180).astype(np.uint8)  # OpenCV's 8-bit hue runs over 0..179
    lut_sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def augment_frame(
    frame: FrameArrays, cfg: AugmentConfig, rng: np.random.Generator, colour_rng: np.random.Generator | None = None
) -> FrameArrays:
    """Random flip / scale / translation and HSV jitter of one letterboxed frame (same output size); the HSV
    gains come from `colour_rng` when given (two frames of a training pair share their lighting)."""
    hw = frame.image.shape[:2]
    if cfg.flip > 0 or cfg.scale > 0 or cfg.translate > 0:
        frame = warp_frame(frame, random_affine(hw, hw, cfg, rng), hw)
    frame.image = hsv_jitter(frame.image, cfg, colour_rng or rng)
    return frame


def mosaic(
    frames: list[FrameArrays],
    cfg: AugmentConfig,
    rng: np.random.Generator,
    colour_rng: np.random.Generator | None = None,
) -> FrameArrays:
    """YOLOv4 mosaic: four letterboxed frames meet at a random point of a 2H x 2W canvas, whose centre part
    (zoomed and shifted by `cfg`) becomes the H x W sample; HSV gains as `augment_frame`."""
    if len(frames) != 4:
        raise ValueError(f"mosaic needs 4 frames, got {len(frames)}")
    h, w = frames[0].image.shape[:2]
    xc, yc = int(rng.uniform(w / 2, 3 * w / 2)), int(rng.uniform(h / 2, 3 * h / 2))
    canvas = np.full((2 * h, 2 * w, 3), PAD_VALUE, dtype=np.uint8)
    masks, labels, ids = [], [], []
    for quadrant, f in enumerate(frames):
        # Only the resized content of each letterboxed frame goes in, not its grey padding.
        (nh, nw), top, left = f.letterbox.resized_hw, int(f.letterbox.pad_y), int(f.letterbox.pad_x)
        right_side, bottom_side = quadrant in (1, 3), quadrant in (2, 3)
        x0, x1 = (xc, min(xc + nw, 2 * w)) if right_side else (max(xc - nw, 0), xc)
        y0, y1 = (yc, min(yc + nh, 2 * h)) if bottom_side else (max(yc - nh, 0), yc)
        # The part of the content that fits: its top-left for the right/bottom quadrants, else its far end.
        sx0 = left if right_side else left + nw - (x1 - x0)
        sy0 = top if bottom_side else top + nh - (y1 - y0)
        canvas[y0:y1, x0:x1] = f.image[sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
        m = np.zeros((f.masks.shape[0], 2 * h, 2 * w), dtype=np.uint8)
        m[:, y0:y1, x0:x1] = f.masks[:, sy0 : sy0 + (y1 - y0), sx0 : sx0 + (x1 - x0)]
        masks.append(m)
        labels.append(f.labels)
        ids.append(f.instance_ids)
    identity = LetterboxInfo(h, w, h, w, 1.0, 0.0, 0.0)
    big = FrameArrays(canvas, np.concatenate(masks), np.concatenate(labels), np.concatenate(ids), identity)
    out = warp_frame(big, random_affine((2 * h, 2 * w), (h, w), cfg, rng), (h, w))
    out.image = hsv_jitter(out.image, cfg, colour_rng or rng)
    out.matrix = None  # four source frames: no single matrix describes the sample
    return out
