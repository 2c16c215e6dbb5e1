"""The greedy tracker of the report (SPEC §4): gating, Best Friend, Lonely Best Friend, on a mask-IoU cost.

Cost A[i, j] = 1 - IoU(detection i, track j's last mask) + class_penalty x [labels differ]. A pair is matched
only if (1) its cost is at most the gate tau, (2) it is the minimum of its row and of its column (Best Friend),
and (3) the second-best cost of its row and of its column exceed it by more than gamma (Lonely Best Friend).

Bookkeeping is by explicit frame index: `update(t, detections)` stores what frame t holds, whatever came before,
so a track's per-frame list has exactly one entry per frame of the video (the original's frame clock did not
advance before the first detection and advanced once per track on empty frames; SPEC §6).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from pycocotools import mask as mask_utils

from yolovis.config import TrackerConfig
from yolovis.model.detections import Detections


@dataclass
class Track:
    track_id: int
    frames: dict[int, dict] = field(default_factory=dict)  # frame index -> {"rle", "score", "label", "box"}
    last_frame: int = -1

    @property
    def last(self) -> dict:
        return self.frames[self.last_frame]

    @property
    def score(self) -> float:
        return float(np.mean([f["score"] for f in self.frames.values()]))

    @property
    def label(self) -> int:
        """Vote over frames; ties go to the label with the higher total score."""
        votes: dict[int, tuple[int, float]] = {}
        for f in self.frames.values():
            n, s = votes.get(f["label"], (0, 0.0))
            votes[f["label"]] = (n + 1, s + f["score"])
        return max(votes, key=lambda k: votes[k])


def encode_masks(masks: torch.Tensor | np.ndarray) -> list[dict]:
    """(N, H, W) bool masks -> pycocotools RLEs (counts as bytes)."""
    array = masks.cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if len(array) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(array.transpose(1, 2, 0).astype(np.uint8)))


def greedy_match(cost: np.ndarray, gate: float, margin: float) -> list[tuple[int, int]]:
    """Pairs (row, col) that pass gating, Best Friend and Lonely Best Friend on an (N, M) cost matrix."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    pairs = []
    row_best = cost.argmin(1)
    col_best = cost.argmin(0)
    for i in range(n):
        j = int(row_best[i])
        c = cost[i, j]
        if c > gate or col_best[j] != i:  # gating; Best Friend (minimum of its row and of its column)
            continue
        row_rest = np.delete(cost[i], j)
        col_rest = np.delete(cost[:, j], i)
        second = min(row_rest.min(initial=np.inf), col_rest.min(initial=np.inf))
        if second - c > margin:  # Lonely Best Friend: no close second in its row or column
            pairs.append((i, j))
    return pairs


class GreedyTracker:
    """Online tracker for one video: call `update(frame_index, detections)` for each processed frame, in order."""

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.tracks: list[Track] = []
        self.last_frame = -1

    def update(self, frame_index: int, detections: Detections) -> list[int]:
        """Assign frame `frame_index`'s detections to tracks; returns each detection's track id (-1: dropped)."""
        if frame_index <= self.last_frame:
            raise ValueError(f"frames must come in increasing order: {frame_index} after {self.last_frame}")
        self.last_frame = frame_index
        keep = detections.scores >= self.cfg.detection_threshold
        ids = [-1] * len(detections)
        detections = detections[keep]
        kept = keep.nonzero().squeeze(1).tolist()
        for i, track_id in zip(kept, self._update(frame_index, detections), strict=True):
            ids[i] = track_id
        return ids

    def _update(self, frame_index: int, detections: Detections) -> list[int]:
        rles = encode_masks(detections.masks)
        scores = detections.scores.tolist()
        labels = detections.labels.tolist()
        boxes = detections.boxes.tolist()
        active = [t for t in self.tracks if frame_index - t.last_frame <= self.cfg.max_age]
        ids = [-1] * len(rles)
        if rles and active:
            iou = np.asarray(mask_utils.iou(rles, [t.last["rle"] for t in active], [0] * len(active)))
            iou = iou.reshape(len(rles), len(active))
            differ = np.array(labels)[:, None] != np.array([t.last["label"] for t in active])[None, :]
            cost = 1.0 - iou + self.cfg.class_penalty * differ
            for i, j in greedy_match(cost, self.cfg.gate, self.cfg.margin):
                ids[i] = active[j].track_id
        by_id = {t.track_id: t for t in active}
        for i, rle in enumerate(rles):
            if ids[i] < 0:
                if not self.cfg.new_tracks:
                    continue
                track = Track(track_id=len(self.tracks) + 1)
                self.tracks.append(track)
                ids[i] = track.track_id
            else:
                track = by_id[ids[i]]
            track.frames[frame_index] = {"rle": rle, "score": scores[i], "label": labels[i], "box": boxes[i]}
            track.last_frame = frame_index
        return ids

    def results(self, video_id: int, length: int, label_to_category: list[int] | None = None) -> list[dict]:
        """YouTube-VIS results of this video: one entry per kept track, `length` segmentations, null where absent."""
        out = []
        for track in self.tracks:
            if len(track.frames) < self.cfg.min_length or track.score < self.cfg.min_score:
                continue
            if max(track.frames) >= length:
                raise ValueError(f"video {video_id}: track {track.track_id} has frame {max(track.frames)} >= {length}")
            segmentations = [None] * length
            for t, f in track.frames.items():
                counts = f["rle"]["counts"]
                segmentations[t] = {
                    "size": list(f["rle"]["size"]),
                    "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
                }
            label = track.label
            out.append(
                {
                    "video_id": int(video_id),
                    "category_id": int(label_to_category[label]) if label_to_category is not None else int(label),
                    "score": track.score,
                    "segmentations": segmentations,
                }
            )
        return out
