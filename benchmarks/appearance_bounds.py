"""How far better appearance would take the memory tracker: recorded detections replayed with their embeddings
replaced by synthetic ones, with and without two rules for one track per object.

    python benchmarks/trackers.py RUN/last.pt hard_eval/instances.json --record rec.pkl   # the network, once
    python benchmarks/appearance_bounds.py rec.pkl hard_eval/instances.json [--distance 0.1] [--box 2.0]

Embeddings, one row each (video mask AP50 / AP of the tracker, and of perfect association on the same detections):
- recorded: as the network gave them (none: the model has no association head);
- perfect: each detection matching a true instance (mask IoU >= 0.5, one-to-one, as perfect association) gets that
  instance's random unit vector, every other detection a fresh one;
- pieces: each detection lying at least half inside an instance's mask gets that instance's vector, so that an
  object's pieces and partial detections look like it, as they would to any real appearance model.
Each also with the rules (`OneTrackPerObject`): (1) an unmatched detection within `--distance` of the look of a
track matched this frame, of its class, starts no track when the two detections together fit in `--box` x the
largest box that track had over its last 10 frames (a piece of that object); (2) of two confirmed tracks matched
this frame, of one class, that close in look and that close together, the younger ends. The rules are not in the
package: with the colour head's embeddings they lowered the video AP (docs/tracking.md, "What the hard set needs").
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import pickle
from pathlib import Path

import numpy as np

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VISAnnotations, parse_vis_annotations, read_json
from yolovis.engine.diagnose import replay_tracker
from yolovis.eval.ytvis_eval import evaluate_vis
from yolovis.model.detections import Detections
from yolovis.track.mask_iou import MaskCrop
from yolovis.track.memory import LiveTrack, MemoryTracker, appearance_distance
from yolovis.track.oracle import instances_per_frame, oracle_results, true_identities
from yolovis.track.recorded import VideoDetections

RECENT_FRAMES = 10  # a track's extent: the largest box it had over this many of its last frames
DIM = 64


class OneTrackPerObject(MemoryTracker):
    """The memory tracker with the two rules of the module docstring."""

    def __init__(self, cfg: TrackerConfig, distance: float, box: float) -> None:
        super().__init__(cfg)
        self.distance, self.box = distance, box
        self.frame: Detections | None = None

    def update(self, frame_index: int, detections: Detections, rles: list[dict | None] | None = None) -> list[int]:
        self.frame = detections
        ids = super().update(frame_index, detections, rles)
        self._end_younger_look_alikes(frame_index)
        return ids

    def _fits(self, a: np.ndarray, b: np.ndarray, track: LiveTrack) -> bool:
        """Boxes a and b (xyxy) together fit in `box` x the largest box `track` had lately."""
        recent = sorted(track.record.frames)[-RECENT_FRAMES:]
        boxes = np.array([track.record.frames[f].box for f in recent])
        width, height = (boxes[:, 2] - boxes[:, 0]).max(), (boxes[:, 3] - boxes[:, 1]).max()
        lo, hi = np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])
        return bool(hi[0] - lo[0] <= self.box * width and hi[1] - lo[1] <= self.box * height)

    def _duplicates(self, candidates: list[int], matched: list[int], crops: dict[int, MaskCrop]) -> set[int]:
        out = super()._duplicates(candidates, matched, crops)
        frame = self.frame
        if frame is None or frame.embeddings is None or not matched:
            return out
        labels, boxes = frame.labels.tolist(), frame.boxes.numpy()
        now = [t for t in self.live if t.record.last_frame == self.last_frame and t.embedding is not None]
        if not now or not candidates:
            return out
        _, distance = appearance_distance(frame.embeddings.numpy()[candidates], now)  # (C, T)
        for k, i in enumerate(candidates):
            for t, d in zip(now, distance[k], strict=True):
                if labels[i] == t.label and d <= self.distance and self._fits(boxes[i], t.box, t):
                    out.add(i)
                    break
        return out

    def _end_younger_look_alikes(self, frame_index: int) -> None:
        now = sorted(
            (t for t in self.live if t.record.last_frame == frame_index and t.embedding is not None and t.confirmed),
            key=lambda t: t.record.track_id,
        )
        if len(now) < 2:
            return
        _, distance = appearance_distance(np.stack([t.embedding for t in now]), now)  # (T, T)
        ended: set[int] = set()
        for k, older in enumerate(now):
            if id(older) in ended:
                continue
            for m in range(k + 1, len(now)):
                younger = now[m]
                if id(younger) in ended or younger.label != older.label:
                    continue
                if distance[k, m] <= self.distance and self._fits(older.box, younger.box, older):
                    ended.add(id(younger))
        self.live = [t for t in self.live if id(t) not in ended]


def pieces_identities(video: VideoDetections, ann: VISAnnotations) -> list[dict[int, int]]:
    """Per frame, {detection index: instance id} for each detection lying at least half inside an instance's mask
    (the instance holding most of it)."""
    from pycocotools import mask as mask_utils

    identities = []
    for frame, (ids, gt_rles) in zip(video.frames, instances_per_frame(video, ann), strict=True):
        if len(frame) == 0 or not ids:
            identities.append({})
            continue
        inside = np.array(mask_utils.iou(list(frame.rles), gt_rles, [1] * len(gt_rles))).reshape(len(frame), -1)
        identities.append({i: ids[int(row.argmax())] for i, row in enumerate(inside) if row.max() >= 0.5})
    return identities


def with_embeddings(videos: list[VideoDetections], ann: VISAnnotations, kind: str, seed: int) -> list[VideoDetections]:
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(videos)
    for video in out:
        identities = true_identities(video, ann) if kind == "perfect" else pieces_identities(video, ann)
        vectors: dict[int, np.ndarray] = {}
        for frame, identity in zip(video.frames, identities, strict=True):
            if len(frame) == 0:
                continue
            rows = []
            for i in range(len(frame)):
                v = vectors.setdefault(identity[i], rng.normal(size=DIM)) if i in identity else rng.normal(size=DIM)
                rows.append(v / np.linalg.norm(v))
            frame.embeddings = np.stack(rows).astype(np.float32)
    return out


def score(gt: dict, ann: VISAnnotations, videos: list[VideoDetections], cfg: TrackerConfig, cats: list[int],
          rules: tuple[float, float] | None, source: str) -> tuple[float, float, float, float]:  # fmt: skip
    """Video AP50 / AP of the tracker and of perfect association on the same detections."""
    results, oracle = [], []
    for v in videos:
        tracked, ids = replay_tracker(v, cfg, cats, OneTrackPerObject(cfg, *rules) if rules else None)
        results += tracked
        oracle += oracle_results(v, ann, ids, cfg, cats)
    t = evaluate_vis(gt, results, gt_source=source, tracking=False).metrics
    o = evaluate_vis(gt, oracle, gt_source=source, tracking=False).metrics
    return t["AP50"], t["AP"], o["AP50"], o["AP"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("record", help="pickle of recorded detections (benchmarks/trackers.py --record)")
    p.add_argument("ann", help="the annotations they were recorded on")
    p.add_argument("--distance", type=float, default=0.1, help="the rules' appearance distance")
    p.add_argument("--box", type=float, default=2.0, help="the rules' extent, in the track's largest recent box")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    videos = pickle.loads(Path(args.record).read_bytes())
    gt = read_json(args.ann)
    ann = parse_vis_annotations(gt, args.ann)
    cats = [c["id"] for c in gt["categories"]]
    cfg = dataclasses.replace(TrackerConfig(), method="memory")
    print("| embeddings | rules | tracker AP50 / AP | perfect association AP50 / AP | tracker / oracle AP50 |")
    print("| --- | --- | --- | --- | --- |")
    sets = {"recorded": videos}
    sets["perfect"] = with_embeddings(videos, ann, "perfect", args.seed)
    sets["pieces"] = with_embeddings(videos, ann, "pieces", args.seed)
    for name, vids in sets.items():
        for rules in (None, (args.distance, args.box)):
            t50, t, o50, o = score(gt, ann, vids, cfg, cats, rules, args.ann)
            label = f"distance {rules[0]}, box {rules[1]}x" if rules else "none"
            print(
                f"| {name} | {label} | {t50:.3f} / {t:.3f} | {o50:.3f} / {o:.3f} | {t50 / max(o50, 1e-9):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
