"""The YouTube-VIS dataset for training: letterboxed frames (or pairs / clips of one video) with their targets.

The paper trains on every annotated frame as an independent image (`mode="frames"`); pairs and clips of frames
of one video, augmented alike, are there for temporal work. Masks are decoded only for the frames asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from yolovis.data.annotations import VideoRecord, VISAnnotations, load_vis_annotations
from yolovis.data.augment import AugmentConfig, FrameArrays, augment_frame, drop_degenerate, mosaic
from yolovis.data.letterbox import LetterboxInfo, check_input_size, letterbox_image
from yolovis.data.masks import masks_to_boxes
from yolovis.data.sample import FrameSample
from yolovis.errors import UserError

Mode = Literal["frames", "pairs", "clips"]


def read_frame(path: Path, source: str, video: VideoRecord, frame: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB, checked against the size the annotation file gives the video."""
    where = f"{source}: video {video.id} frame {frame}"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        problem = "unreadable or corrupt image" if path.exists() else "missing image"
        raise UserError(f"{where}: {problem} {path}")
    if image.shape[:2] != (video.height, video.width):
        raise UserError(
            f"{where}: image {path} is {image.shape[1]}x{image.shape[0]}, "
            f"the annotation says {video.width}x{video.height}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def letterbox_masks(masks: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """(N, h, w) original-size masks -> (N, input_h, input_w), placed as `letterbox_image` places the image."""
    out = np.zeros((masks.shape[0], info.input_h, info.input_w), dtype=np.uint8)
    if masks.shape[0] == 0:
        return out
    new_h, new_w = info.resized_hw
    # INTER_AREA when shrinking keeps thin parts that bilinear sampling would skip; 0/1 inputs round back to 0/1.
    interp = cv2.INTER_AREA if new_h < info.orig_h else cv2.INTER_LINEAR
    top, left = int(info.pad_y), int(info.pad_x)
    for i, mask in enumerate(masks):  # one at a time, as in augment.warp_masks
        out[i, top : top + new_h, left : left + new_w] = cv2.resize(mask, (new_w, new_h), interpolation=interp)
    return out


class YTVISDataset(Dataset):
    """Letterboxed frames of a YouTube-VIS (or COCO, see `coco.py`) annotation file.

    `ds[i]` is a `FrameSample` (mode "frames") or a list of them (modes "pairs": frames t and t + frame_gap;
    "clips": `clip_length` frames frame_gap apart). All frames of a pair or clip get the same augmentation;
    mosaic applies to single frames only. Crowd regions are left out of the targets unless `include_crowd`.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike | VISAnnotations,
        images_dir: str | os.PathLike | None = None,
        img_size: tuple[int, int] = (416, 416),
        augment: AugmentConfig | None = None,
        mode: Mode = "frames",
        *,
        video_ids: list[int] | None = None,
        frame_gap: int = 1,
        clip_length: int = 3,
        include_crowd: bool = False,
        skip_empty: bool = False,
    ) -> None:
        ann = ann_file if isinstance(ann_file, VISAnnotations) else load_vis_annotations(ann_file)
        self.annotations = ann.subset(video_ids) if video_ids is not None else ann
        self.images_dir = Path(images_dir) if images_dir is not None else Path(ann.source).parent / "JPEGImages"
        if not self.images_dir.is_dir():
            raise UserError(f"{ann.source}: image folder {self.images_dir} not found (set --images DIR)")
        h, w = check_input_size(int(img_size[0]), int(img_size[1]))
        if mode not in ("frames", "pairs", "clips"):
            raise ValueError(f"mode {mode!r}: expected 'frames', 'pairs' or 'clips'")
        self.img_size = (h, w)
        self.augment = augment
        self.mode = mode
        self.include_crowd = include_crowd
        self.categories = sorted(ann.categories, key=lambda c: c["id"])
        self._label_of = {c["id"]: i for i, c in enumerate(self.categories)}

        span = {"frames": 1, "pairs": 2, "clips": clip_length}[mode]
        if span < 1 or frame_gap < 1:
            raise ValueError("clip_length and frame_gap must be >= 1")
        offsets = tuple(k * frame_gap for k in range(span))
        self._items: list[tuple[int, tuple[int, ...]]] = []
        for pos, video in enumerate(self.annotations.videos):
            present = self._frames_with_instances(video) if skip_empty else None
            for t in range(video.length - offsets[-1]):
                if present is not None and not present[t]:
                    continue
                self._items.append((pos, tuple(t + o for o in offsets)))

    def _frames_with_instances(self, video: VideoRecord) -> np.ndarray:
        present = np.zeros(video.length, dtype=bool)
        for ti in self.annotations.tracks_by_video[video.id]:
            track = self.annotations.tracks[ti]
            if track.iscrowd and not self.include_crowd:
                continue
            present |= np.array([s is not None for s in track.segmentations])
        return present

    # ------------------------------------------------------------------ labels
    @property
    def num_classes(self) -> int:
        return len(self.categories)

    def label_to_category_id(self, label: int) -> int:
        return int(self.categories[int(label)]["id"])

    def category_id_to_label(self, category_id: int) -> int:
        return self._label_of[int(category_id)]

    @property
    def video_ids(self) -> list[int]:
        return [v.id for v in self.annotations.videos]

    def partner_candidates(self, max_gap: int) -> list[list[int]]:
        """Per sample (mode "frames"), the other samples of its video at most `max_gap` frames away: the frames
        the training sampler may put beside it (`data/sampling.py`)."""
        by_frame = {(pos, frames[0]): i for i, (pos, frames) in enumerate(self._items)}
        return [
            [by_frame[pos, t + d] for d in range(-max_gap, max_gap + 1) if d and (pos, t + d) in by_frame]
            for pos, (t, *_) in self._items
        ]

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> FrameSample | list[FrameSample]:
        return self.sample(index)

    def sample(self, index: int, colour_seed: int | None = None) -> FrameSample | list[FrameSample]:
        """Sample `index`; `colour_seed` (mode "frames") seeds its HSV gains apart from the rest of its
        augmentation, so that the two frames of a training pair can share them (`data/sampling.py`)."""
        pos, frames = self._items[index]
        video = self.annotations.videos[pos]
        cfg = self.augment
        if self.mode == "frames":
            frame = self.load_frame(video, frames[0])
            if cfg is not None:
                rng = _worker_rng()
                colour_rng = np.random.default_rng(colour_seed) if colour_seed is not None else None
                if cfg.mosaic > 0 and rng.random() < cfg.mosaic:
                    others = [self._items[int(j)] for j in rng.integers(0, len(self._items), 3)]
                    quads = [frame] + [self.load_frame(self.annotations.videos[p], f[0]) for p, f in others]
                    frame = mosaic(quads, cfg, rng, colour_rng)
                else:
                    frame = augment_frame(frame, cfg, rng, colour_rng)
            return self._to_sample(frame, video.id, frames[0])
        seed = int(_worker_rng().integers(2**62))
        out = []
        for t in frames:
            frame = self.load_frame(video, t)
            if cfg is not None:  # one seed for the whole clip: every frame draws the same parameters
                frame = augment_frame(frame, cfg, np.random.default_rng(seed))
            out.append(self._to_sample(frame, video.id, t))
        return out

    def load_frame(self, video: VideoRecord, frame: int) -> FrameArrays:
        """One frame letterboxed to the input size, with its instances; no augmentation."""
        image = read_frame(self.images_dir / video.file_names[frame], self.annotations.source, video, frame)
        inst = self.annotations.frame_instances(video.id, frame)
        keep = np.ones(len(inst.track_ids), dtype=bool) if self.include_crowd else ~inst.iscrowd
        image, info = letterbox_image(image, *self.img_size)
        masks = letterbox_masks(inst.masks[keep], info)
        labels = np.array([self._label_of[c] for c in inst.category_ids[keep]], dtype=np.int64)
        return drop_degenerate(FrameArrays(image, masks, labels, inst.track_ids[keep], info))

    def _to_sample(self, frame: FrameArrays, video_id: int, frame_index: int) -> FrameSample:
        info = frame.letterbox
        if self.augment is not None and self.augment.geometric and frame.matrix is not None:
            h, w = self.img_size
            info = LetterboxInfo(h, w, h, w, 1.0, 0.0, 0.0)
        return FrameSample(
            image=torch.from_numpy(np.ascontiguousarray(frame.image)).permute(2, 0, 1).contiguous(),
            boxes=torch.from_numpy(masks_to_boxes(frame.masks)),
            labels=torch.from_numpy(frame.labels.astype(np.int64)),
            masks=torch.from_numpy(frame.masks),
            instance_ids=torch.from_numpy(frame.instance_ids.astype(np.int64)),
            video_id=int(video_id),
            frame_index=int(frame_index),
            letterbox=info,
        )


def _worker_rng() -> np.random.Generator:
    """A generator drawn from torch's RNG, which DataLoader seeds per worker and per epoch."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
