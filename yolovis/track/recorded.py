"""Detections recorded once and replayed through any association: the trackers, the oracle, peers' trackers.

`yolovis diagnose` and `benchmarks/trackers.py` run the network once per frame and then score several ways of
linking the *same* detections, so that a difference between two figures is association and nothing else.
A frame keeps its masks as compressed RLEs (what the results file stores anyway), never as bitmaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from pycocotools import mask as mask_utils

from yolovis.model.detections import Detections


@dataclass
class FrameRecord:
    """The detections of one frame, in frame pixels."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    labels: np.ndarray  # (N,) int64 contiguous training labels
    rles: list[dict]  # N compressed RLEs (counts as bytes)
    embeddings: np.ndarray | None = None  # (N, D) float32 association embeddings, when the model has them

    def __len__(self) -> int:
        return len(self.rles)

    @classmethod
    def from_detections(cls, detections: Detections, rles: list[dict]) -> FrameRecord:
        if len(rles) != len(detections):
            raise ValueError(f"{len(rles)} RLEs for {len(detections)} detections")
        emb = detections.embeddings
        return cls(
            detections.boxes.cpu().numpy().astype(np.float32),
            detections.scores.cpu().numpy().astype(np.float32),
            detections.labels.cpu().numpy().astype(np.int64),
            list(rles),
            emb.cpu().numpy().astype(np.float32) if emb is not None else None,
        )

    def to_detections(self, height: int, width: int) -> Detections:
        """The frame as the pipeline hands it to a tracker (masks decoded to (N, H, W) bool)."""
        if len(self) == 0:
            return Detections.empty(height, width)
        masks = torch.from_numpy(mask_utils.decode(self.rles)).permute(2, 0, 1).bool()  # (N, H, W)
        emb = torch.from_numpy(self.embeddings) if self.embeddings is not None else None
        return Detections(
            torch.from_numpy(self.boxes), torch.from_numpy(self.scores), torch.from_numpy(self.labels), masks, emb
        )


@dataclass
class VideoDetections:
    """Every processed frame of one video: `frames[t]` is frame t (empty records where nothing was found)."""

    video_id: int
    height: int
    width: int
    frames: list[FrameRecord]

    @property
    def length(self) -> int:
        return len(self.frames)
