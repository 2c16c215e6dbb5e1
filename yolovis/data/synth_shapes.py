"""The look of the synthetic classes: a shape, a texture and two colours each, all clearly different.

Shapes are drawn as filled polygons (rings and crescents erase a second polygon), in unit coordinates where
the object's radius is 1; textures are functions of the object's own rotated coordinates, so they turn with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _circle(cx: float = 0.0, cy: float = 0.0, r: float = 1.0, n: int = 48) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, 2 * points, endpoint=False) - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def _cross(arm: float = 0.33) -> np.ndarray:
    a = arm
    return np.array(
        [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)],
        dtype=np.float64,
    )


def _arrow() -> np.ndarray:
    return np.array(
        [(-1, -0.3), (0.15, -0.3), (0.15, -0.8), (1, 0), (0.15, 0.8), (0.15, 0.3), (-1, 0.3)], dtype=np.float64
    )


# name -> (filled polygon, erased polygon or None), unit radius
SHAPES: tuple[tuple[str, np.ndarray, np.ndarray | None], ...] = (
    ("circle", _circle(), None),
    ("square", np.array([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)], dtype=np.float64), None),
    ("triangle", _circle(0, 0.15, 1.0, 3) @ np.array([[0, 1], [-1, 0]]), None),
    ("star", _star(), None),
    ("ring", _circle(), _circle(0, 0, 0.55)),
    ("cross", _cross(), None),
    ("crescent", _circle(), _circle(0.45, -0.1, 0.8)),
    ("arrow", _arrow(), None),
)
TEXTURES = ("stripes", "checker", "solid", "dots")
COLOURS = (  # (main, second) RGB; saturated and far apart so that colour alone nearly names the class
    ((220, 30, 30), (250, 240, 240)),
    ((30, 70, 220), (250, 220, 20)),
    ((30, 190, 50), (10, 90, 20)),
    ((250, 140, 0), (110, 20, 140)),
    ((230, 40, 200), (90, 10, 70)),
    ((20, 210, 220), (10, 10, 10)),
    ((240, 230, 40), (110, 60, 10)),
    ((250, 250, 250), (40, 60, 200)),
)
COLOURS_NAMES = ("red", "blue", "green", "orange", "magenta", "cyan", "yellow", "white")
MAX_CLASSES = len(SHAPES)


@dataclass(frozen=True)
class ObjectLook:
    class_index: int
    colour_a: np.ndarray  # (3,) float RGB
    colour_b: np.ndarray
    aspect: float  # x stretch; y is 1 / aspect
    phase: float  # texture offset, so that two objects of a class are not pixel-identical


def class_name(k: int) -> str:
    return f"{COLOURS_NAMES[k]}-{TEXTURES[k % len(TEXTURES)]}-{SHAPES[k][0]}"


def random_look(class_index: int, rng: np.random.Generator, variety: float = 0.0) -> ObjectLook:
    """The class's look with a small colour jitter; `variety` in (0, 1] also moves the second colour that far
    towards a random one, so that objects of one class can be told apart by appearance (shape, main colour and
    texture still name the class). No random draw is made for it at 0, so the default data do not change."""
    a, b = (np.asarray(c, dtype=np.float64) for c in COLOURS[class_index])
    jitter = rng.uniform(-18, 18, 3)
    if variety > 0:
        b = (1 - variety) * b + variety * rng.uniform(0, 255, 3)
    return ObjectLook(
        class_index,
        np.clip(a + jitter, 0, 255),
        np.clip(b + jitter, 0, 255),
        float(rng.uniform(0.85, 1.15)),
        float(rng.uniform(0, 1)),
    )


def _transform(points: np.ndarray, cx: float, cy: float, radius: float, angle: float, aspect: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    x, y = points[:, 0] * radius * aspect, points[:, 1] * radius / aspect
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def draw_object(image: np.ndarray, look: ObjectLook, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """Paint the object onto `image` (H, W, 3) uint8 in place; return its full (amodal) mask (H, W) bool."""
    h, w = image.shape[:2]
    _, fill, erase = SHAPES[look.class_index]
    mask = np.zeros((h, w), dtype=np.uint8)
    shift = 4  # sub-pixel vertices: OpenCV takes fixed-point coordinates with 4 fractional bits
    pts = np.round(_transform(fill, cx, cy, radius, angle, look.aspect) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    if erase is not None:
        hole = np.round(_transform(erase, cx, cy, radius, angle, look.aspect) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [hole], 0, lineType=cv2.LINE_8, shift=shift)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.astype(bool)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = gx + 0.5 - cx, gy + 0.5 - cy
    u = (c * dx + s * dy) / radius + look.phase  # object-local coordinates, turning with the object
    v = (-s * dx + c * dy) / radius + look.phase
    texture = TEXTURES[look.class_index % len(TEXTURES)]
    if texture == "stripes":
        second = np.sin(u * 2 * np.pi * 2.2) > 0
    elif texture == "checker":
        second = (np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 1
    elif texture == "dots":
        second = (u * 3 % 1 - 0.5) ** 2 + (v * 3 % 1 - 0.5) ** 2 < 0.09
    else:  # solid, with a darker rim so that it still looks like an object, not a hole
        second = (dx**2 + dy**2) > (0.8 * radius) ** 2
    colour = np.where(second[..., None], look.colour_b, look.colour_a)
    shade = 1.0 - 0.15 * np.clip((u - look.phase + v - look.phase) / 2, -1, 1)[..., None]  # soft light
    patch = image[y0:y1, x0:x1]
    inside = mask[y0:y1, x0:x1].astype(bool)
    patch[inside] = np.clip(colour * shade, 0, 255).astype(np.uint8)[inside]
    return mask.astype(bool)
