"""What the dataset hands to training: one letterboxed frame and its targets, and the batch collation.

Contract (documented once, here): boxes are absolute xyxy in network-input pixels, labels are contiguous
training labels 0..K-1, masks are at network-input resolution; N may be 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from yolovis.data.letterbox import LetterboxInfo


@dataclass
class FrameSample:
    image: torch.Tensor | None  # (3, H, W) uint8 RGB, letterboxed; None once collated into the batch
    boxes: torch.Tensor  # (N, 4) float32 xyxy, network-input pixels
    labels: torch.Tensor  # (N,) int64, contiguous 0..K-1
    masks: torch.Tensor  # (N, H, W) uint8 0/1
    instance_ids: torch.Tensor  # (N,) int64 annotation (track) ids
    video_id: int
    frame_index: int
    letterbox: LetterboxInfo  # original frame -> input; identity (orig = input size) after geometric augmentation

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> FrameSample:
        image = self.image.to(device) if self.image is not None else None
        return replace(
            self,
            image=image,
            boxes=self.boxes.to(device),
            labels=self.labels.to(device),
            masks=self.masks.to(device),
            instance_ids=self.instance_ids.to(device),
        )


def collate_frames(samples: list[FrameSample]) -> tuple[torch.Tensor, list[FrameSample]]:
    """Frames of one size -> images (B, 3, H, W) uint8 and the per-frame targets without their image."""
    if not samples:
        raise ValueError("collate_frames: empty batch")
    images = torch.stack([s.image for s in samples])
    return images, [replace(s, image=None) for s in samples]


def collate_clips(clips: list[list[FrameSample]]) -> tuple[torch.Tensor, list[list[FrameSample]]]:
    """Pairs or clips of T frames -> images (B, T, 3, H, W) uint8 and per-clip lists of targets."""
    if not clips:
        raise ValueError("collate_clips: empty batch")
    images = torch.stack([torch.stack([f.image for f in clip]) for clip in clips])
    return images, [[replace(f, image=None) for f in clip] for clip in clips]
