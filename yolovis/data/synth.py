"""`yolovis synth`: synthetic videos in the exact YouTube-VIS layout, the data of the tests and of the demo.

OUT/JPEGImages/<video>/<frame>.jpg and OUT/instances.json (2019/2021 layout, compressed RLE masks with string
counts, null where an instance is absent). Objects of K classes (shape + texture + colour, `synth_shapes.py`)
move, scale and rotate over slowly panning photographs bundled with scikit-image. They occlude each other (the
masks are the visible parts), enter and leave the frame and vanish for a few frames; some frames are empty; in
about half of the videos two objects of the same class cross, so that class alone cannot tell them apart.
Same arguments, same bytes: every video draws from its own generator seeded by (seed, video index).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from yolovis.data.masks import encode_mask, mask_to_box
from yolovis.data.synth_shapes import MAX_CLASSES, ObjectLook, class_name, draw_object, random_look
from yolovis.errors import UserError
from yolovis.fileio import atomic_write_bytes, atomic_write_json

# Photographs that ship inside scikit-image (skimage/data/*.png|jpg): read from disk, never downloaded.
BACKGROUNDS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "camera.png",
    "grass.png",
    "gravel.png",
    "brick.png",
    "moon.png",
    "hubble_deep_field.jpg",
    "coins.png",
)


@dataclass
class SynthConfig:
    videos: int = 10
    frames: int = 20
    classes: int = 3
    width: int = 320
    height: int = 240
    seed: int = 0
    min_objects: int = 1
    max_objects: int = 4
    size: tuple[float, float] = (0.12, 0.22)  # object radius, fraction of the shorter frame side
    speed: tuple[float, float] = (0.01, 0.035)  # pixels per frame, fraction of the frame diagonal
    crossing_prob: float = 0.5  # videos in which two objects of one class cross
    vanish_prob: float = 0.25  # objects that disappear for 1-3 frames mid-video
    empty_prob: float = 0.3  # videos with 1-2 frames without any object
    min_area: int = 16  # visible pixels below which an instance counts as absent (null)
    jpeg_quality: int = 90
    # Harder videos for trackers (`yolovis synth --hard`); all off by default, and then no random draw is made
    # for them, so the default data stay byte for byte what they were.
    crowd_prob: float = 0.0  # videos whose objects are all of one class
    exit_prob: float = 0.0  # objects that leave the frame, stay out a few frames and come back
    occluders: int = 0  # static opaque bars in front of everything, hiding objects that pass behind them
    bounce: bool = False  # objects bounce off the frame's edges (long videos keep their objects)
    instance_variety: float = 0.0  # 0-1: how far each object's second colour moves to a random one (appearance)

    def check(self) -> None:
        if self.videos < 1 or self.frames < 1:
            raise UserError(f"synth: --videos and --frames must be >= 1 (got {self.videos}, {self.frames})")
        if not 1 <= self.classes <= MAX_CLASSES:
            raise UserError(f"synth: --classes must be between 1 and {MAX_CLASSES} (got {self.classes})")
        if self.width < 32 or self.height < 32:
            raise UserError(f"synth: --size {self.width}x{self.height} is too small (at least 32x32)")
        if not 1 <= self.min_objects <= self.max_objects:
            raise UserError("synth: need 1 <= min_objects <= max_objects")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise UserError(f"synth: --speed {self.speed[0]}-{self.speed[1]}: need 0 < min <= max")
        if self.occluders < 0 or not (0 <= self.crowd_prob <= 1 and 0 <= self.exit_prob <= 1):
            raise UserError("synth: --occluders must be >= 0, --crowd and --exits probabilities in [0, 1]")
        if not 0 <= self.instance_variety <= 1:
            raise UserError(f"synth: instance_variety must be in [0, 1] (got {self.instance_variety})")


HARD = {  # `yolovis synth --hard`: long videos, fast motion, same-class crowds, occluders, exits and returns
    "frames": 60,
    "min_objects": 4,
    "max_objects": 8,
    "speed": (0.02, 0.05),
    "crowd_prob": 0.5,
    "exit_prob": 0.3,
    "occluders": 2,
    "bounce": True,
    "instance_variety": 0.8,
}


@dataclass
class Trajectory:
    """One object through a video: where, how large and how turned it is at every frame, and when it shows."""

    look: ObjectLook
    centers: np.ndarray  # (T, 2) xy pixels
    radii: np.ndarray  # (T,)
    angles: np.ndarray  # (T,) radians
    visible: np.ndarray  # (T,) bool


@lru_cache(maxsize=len(BACKGROUNDS))
def _photo(name: str) -> np.ndarray:
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey photos come back with 3 equal channels
    if image is None:
        raise UserError(f"synth: background {path} not found (is scikit-image installed completely?)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _background_frames(cfg: SynthConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """A crop of one photograph that pans and zooms slowly, resized to the frame size."""
    photo = _photo(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    ph, pw = photo.shape[:2]
    aspect = cfg.width / cfg.height
    base_w = min(pw, ph * aspect) * rng.uniform(0.6, 0.9)
    zoom = rng.uniform(-0.15, 0.15)
    start, end = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)
    frames = []
    for t in range(cfg.frames):
        a = t / max(cfg.frames - 1, 1)
        cw = base_w * (1 + zoom * a)
        ch = cw / aspect
        x0 = (pw - cw) * (start[0] + (end[0] - start[0]) * a * 0.4)
        y0 = (ph - ch) * (start[1] + (end[1] - start[1]) * a * 0.4)
        crop = photo[int(y0) : int(y0 + ch), int(x0) : int(x0 + cw)]
        frames.append(cv2.resize(crop, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA))
    return frames


def _trajectory(cfg: SynthConfig, rng: np.random.Generator, class_index: int, cross: tuple | None) -> Trajectory:
    t = np.arange(cfg.frames, dtype=np.float64)
    w, h, diag = cfg.width, cfg.height, float(np.hypot(cfg.width, cfg.height))
    r0 = rng.uniform(*cfg.size) * min(w, h)
    speed = rng.uniform(*cfg.speed) * diag
    heading = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.cos(heading), np.sin(heading)])
    if cross is not None:  # meet the partner at (point, frame): both pass through it at the same time
        point, t_cross, heading = cross
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])
        start = np.asarray(point) - velocity * t_cross
    elif rng.random() < 0.3:  # enter from outside the frame, moving inwards
        start = np.array([w / 2, h / 2]) - velocity * rng.uniform(0.6, 1.0) * cfg.frames
    else:
        start = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    wobble = rng.uniform(0, 0.01 * diag) * np.sin(t[:, None] * rng.uniform(0.2, 0.6) + rng.uniform(0, 6, 2))
    path = t
    leaves = cross is None and cfg.exit_prob > 0 and rng.random() < cfg.exit_prob
    if leaves:
        path = _out_and_back(cfg, rng, start, velocity, r0, t)
    centers = start + velocity * path[:, None] + wobble
    if cfg.bounce and not leaves:
        low = np.full(2, r0)
        span = np.maximum(np.array([w, h]) - 2 * r0, 1.0)
        centers = low + span - np.abs((centers - low) % (2 * span) - span)  # reflected at the edges
    radii = r0 * (1 + rng.uniform(0, 0.3) * np.sin(t * rng.uniform(0.1, 0.4) + rng.uniform(0, 6)))
    angles = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.12, 0.12) * t
    visible = np.ones(cfg.frames, dtype=bool)
    if cfg.frames >= 6 and rng.random() < cfg.vanish_prob:
        gap = int(rng.integers(1, 4))
        first = int(rng.integers(1, cfg.frames - gap))
        visible[first : first + gap] = False
    return Trajectory(random_look(class_index, rng, cfg.instance_variety), centers, radii, angles, visible)


def _out_and_back(
    cfg: SynthConfig, rng: np.random.Generator, start: np.ndarray, velocity: np.ndarray, radius: float, t: np.ndarray
) -> np.ndarray:
    """Time along the path of an object that leaves the frame, stays out 2-10 frames and comes back the way it
    went (its velocity reverses out of sight): the identity must be found again, motion alone cannot."""
    size = np.array([cfg.width, cfg.height], dtype=np.float64)
    with np.errstate(divide="ignore"):  # frames until the centre is a radius beyond the edge, per axis
        until = np.where(velocity > 0, (size + radius - start) / velocity, (-radius - start) / velocity)
    t_out = float(np.min(until[np.isfinite(until)], initial=np.inf))
    t_turn = t_out + rng.uniform(1, 5)
    return np.where(t <= t_turn, t, 2 * t_turn - t)


def _occluders(cfg: SynthConfig, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Static bars (mask, RGB texture) as wide as a large object, cut from another photograph."""
    bars = []
    for _ in range(cfg.occluders):
        bar_w = int(rng.uniform(0.12, 0.25) * cfg.width)
        bar_h = int(rng.uniform(0.5, 1.0) * cfg.height)
        x0 = int(rng.uniform(0, cfg.width - bar_w))
        y0 = int(rng.uniform(0, cfg.height - bar_h + 1))
        mask = np.zeros((cfg.height, cfg.width), dtype=bool)
        mask[y0 : y0 + bar_h, x0 : x0 + bar_w] = True
        photo = _photo(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
        texture = cv2.resize(photo, (cfg.width, cfg.height), interpolation=cv2.INTER_AREA)
        bars.append((mask, texture))
    return bars


def _video_objects(cfg: SynthConfig, rng: np.random.Generator) -> list[Trajectory]:
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    classes = [int(c) for c in rng.integers(0, cfg.classes, n)]
    if cfg.crowd_prob > 0 and rng.random() < cfg.crowd_prob:
        classes = [classes[0]] * n  # a same-class crowd: only motion and memory tell them apart
    objects = []
    if n >= 2 and cfg.frames >= 3 and rng.random() < cfg.crossing_prob:
        classes[1] = classes[0]
        point = (rng.uniform(0.35, 0.65) * cfg.width, rng.uniform(0.35, 0.65) * cfg.height)
        t_cross = rng.uniform(0.35, 0.65) * (cfg.frames - 1)
        heading = rng.uniform(0, 2 * np.pi)
        turn = rng.uniform(np.pi / 3, 5 * np.pi / 3)  # at least 60 degrees apart: a real crossing
        objects.append(_trajectory(cfg, rng, classes[0], (point, t_cross, heading)))
        objects.append(_trajectory(cfg, rng, classes[1], (point, t_cross, heading + turn)))
    objects += [_trajectory(cfg, rng, c, None) for c in classes[len(objects) :]]
    order = rng.permutation(len(objects))  # depth: later objects are drawn in front
    return [objects[i] for i in order]


def render_video(cfg: SynthConfig, index: int) -> tuple[list[np.ndarray], list[Trajectory], list[list]]:
    """Frames (T of (H, W, 3) uint8 RGB), the objects back to front, and per object per frame its visible
    mask (H, W) bool or None where it is absent or too little of it shows."""
    rng = np.random.default_rng([cfg.seed, index])
    frames = _background_frames(cfg, rng)
    objects = _video_objects(cfg, rng)
    if cfg.frames >= 4 and rng.random() < cfg.empty_prob:
        gap = int(rng.integers(1, 3))
        first = int(rng.integers(1, cfg.frames - gap))
        for obj in objects:
            obj.visible[first : first + gap] = False
    bars = _occluders(cfg, rng) if cfg.occluders > 0 else []
    in_front = np.zeros((cfg.height, cfg.width), dtype=bool)
    for mask, _ in bars:
        in_front |= mask
    visible_masks: list[list] = [[None] * cfg.frames for _ in objects]
    for t, frame in enumerate(frames):
        full = [
            draw_object(frame, o.look, *o.centers[t], o.radii[t], o.angles[t]) if o.visible[t] else None
            for o in objects
        ]
        for mask, texture in bars:
            frame[mask] = texture[mask]
        covered = in_front.copy()
        for k in range(len(objects) - 1, -1, -1):  # front to back: what is in front hides what is behind
            if full[k] is None:
                continue
            seen = full[k] & ~covered
            covered |= full[k]
            if int(seen.sum()) >= cfg.min_area:
                visible_masks[k][t] = seen
    return frames, objects, visible_masks


def generate(out_dir: str | os.PathLike, cfg: SynthConfig) -> dict:
    """Write the dataset; returns the annotation dict written to OUT/instances.json (last, atomically)."""
    cfg.check()
    out = Path(out_dir)
    videos, annotations = [], []
    for index in range(cfg.videos):
        name = f"video_{index:04d}"
        frames, objects, masks = render_video(cfg, index)
        file_names = [f"{name}/{t:05d}.jpg" for t in range(cfg.frames)]
        for file_name, frame in zip(file_names, frames, strict=True):
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
            )
            if not ok:
                raise UserError(f"synth: could not encode {file_name}")
            atomic_write_bytes(out / "JPEGImages" / file_name, data.tobytes())
        video_id = index + 1
        videos.append(
            {"id": video_id, "width": cfg.width, "height": cfg.height, "length": cfg.frames, "file_names": file_names}
        )
        for obj, per_frame in zip(objects, masks, strict=True):
            if all(m is None for m in per_frame):
                continue  # never visible: no track
            segs, boxes, areas = [], [], []
            for m in per_frame:
                if m is None:
                    segs.append(None), boxes.append(None), areas.append(None)
                    continue
                x0, y0, x1, y1 = mask_to_box(m)
                segs.append(encode_mask(m))
                boxes.append([x0, y0, x1 - x0, y1 - y0])
                areas.append(int(m.sum()))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": obj.look.class_index + 1,
                    "iscrowd": 0,
                    "height": cfg.height,
                    "width": cfg.width,
                    "length": cfg.frames,
                    "segmentations": segs,
                    "bboxes": boxes,
                    "areas": areas,
                }
            )
    categories = [{"id": k + 1, "name": class_name(k), "supercategory": "shape"} for k in range(cfg.classes)]
    data = {
        "info": {"description": "yolovis synthetic videos", "version": "1", "seed": cfg.seed},
        "licenses": [],
        "videos": videos,
        "categories": categories,
        "annotations": annotations,
    }
    atomic_write_json(out / "instances.json", data)
    return data
