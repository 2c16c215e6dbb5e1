"""The greedy tracker of the report (SPEC §4): gating, Best Friend, Lonely Best Friend, on a mask-IoU cost.

Cost A[i, j] = 1 - IoU(detection i, track j's last mask) + class_penalty x [labels differ]. A pair is matched
only if (1) its cost is at most the gate tau, (2) it is the minimum of its row and of its column (Best Friend),
and (3) the second-best cost of its row and of its column exceed it by more than gamma (Lonely Best Friend).

Bookkeeping is by explicit frame index: `update(t, detections)` stores what frame t holds, whatever came before,
so a track's per-frame list has exactly one entry per frame of the video (the original's frame clock did not
advance before the first detection and advanced once per track on empty frames; SPEC §6).
"""

from __future__ import annotations

import numpy as np

from yolovis.config import TrackerConfig
from yolovis.model.detections import Detections
from yolovis.track.mask_iou import encode_selected, mask_iou
from yolovis.track.results import Appearance, ResultRule, Track, split_final, tracks_to_results


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
    """Online tracker for one video: call `update(frame_index, detections)` for each processed frame, in order.

    `tracks` holds every track ever started (for the results); only those seen within the last `max_age` frames
    are matched against, so the cost of a frame does not grow with the length of the video.
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig()
        self.tracks: list[Track] = []
        self.live: list[Track] = []
        self.last_frame = -1
        self.processed = 0  # frames seen so far: `max_age` counts these, not frame numbers (--stride)
        self.seen_at: dict[int, int] = {}  # live track id -> the processed-frame count when it was last matched
        self.started = 0  # tracks started so far: ids are 1, 2, ... (tracks may leave `tracks`: pop_final)

    def tracked(self, detections: Detections) -> list[int]:
        """Indices of the detections the tracker takes (score >= detection_threshold)."""
        return (detections.scores >= self.cfg.detection_threshold).nonzero().squeeze(1).tolist()

    def encode(self, detections: Detections) -> list[dict | None]:
        """The RLE of every detection the tracker takes, None for the others; pass it to `update` (a pipeline
        encodes each frame once, for the tracker, the results and its own timing)."""
        return encode_selected(detections, self.tracked(detections))

    def update(self, frame_index: int, detections: Detections, rles: list[dict | None] | None = None) -> list[int]:
        """Assign frame `frame_index`'s detections to tracks; returns each detection's track id (-1: not tracked,
        because its score is below the detection threshold or, with `new_tracks` off, it matched no track)."""
        if frame_index <= self.last_frame:
            raise ValueError(f"frames must come in increasing order: {frame_index} after {self.last_frame}")
        self.last_frame = frame_index
        self.processed += 1
        rles = self.encode(detections) if rles is None else rles
        if len(rles) != len(detections):
            raise ValueError(f"frame {frame_index}: {len(rles)} RLEs for {len(detections)} detections")
        kept = self.tracked(detections)
        scores, labels, boxes = detections.scores.tolist(), detections.labels.tolist(), detections.boxes.tolist()
        self.live = [t for t in self.live if self.processed - self.seen_at[t.track_id] <= self.cfg.max_age]
        self.seen_at = {t.track_id: self.seen_at[t.track_id] for t in self.live}  # only live tracks need it
        ids = [-1] * len(detections)
        if kept and self.live:
            iou = mask_iou([rles[i] for i in kept], [t.last.rle for t in self.live])
            differ = np.array([labels[i] for i in kept])[:, None] != np.array([t.last.label for t in self.live])
            cost = 1.0 - iou + self.cfg.class_penalty * differ
            for r, j in greedy_match(cost, self.cfg.gate, self.cfg.margin):
                ids[kept[r]] = self.live[j].track_id
        by_id = {t.track_id: t for t in self.live}
        for i in kept:
            if ids[i] < 0:
                if not self.cfg.new_tracks:
                    continue
                self.started += 1
                track = Track(track_id=self.started)
                self.tracks.append(track)
                self.live.append(track)
                ids[i] = track.track_id
            else:
                track = by_id[ids[i]]
            track.frames[frame_index] = Appearance(rles[i], scores[i], labels[i], tuple(boxes[i]))
            track.last_frame = frame_index
            self.seen_at[track.track_id] = self.processed
        return ids

    def pop_final(self) -> list[Track]:
        """The tracks that can no longer be matched, removed from `tracks` (so `results` no longer has them):
        what lets `yolovis track` stream a long video's results to disk (io/results_writer.py)."""
        final, self.tracks = split_final(self.tracks, self.live)
        return final

    def results(self, video_id: int, length: int, label_to_category: list[int] | None = None) -> list[dict]:
        """YouTube-VIS results of this video: one entry per kept track, `length` segmentations, null where absent."""
        return tracks_to_results(self.tracks, video_id, length, label_to_category, ResultRule.of(self.cfg))
