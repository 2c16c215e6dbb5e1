"""One set of detections, every way of linking them: the paper's greedy tracker, the memory tracker, Ultralytics'
ByteTrack and BoT-SORT (their own code, fed our boxes; each mask follows its box's id) and perfect association.

    pip install --no-deps ultralytics ultralytics-thop psutil polars && pip install lap   # the peers only
    python benchmarks/trackers.py RUN/last.pt held_out/instances.json [--ablation] [--record cache.pkl]

The network runs once (or the detections come from --record, written by an earlier run); each tracker then sees
exactly the same detections, so the figures differ by association alone. Printed per tracker: the official video
AP / AP50 / AR10, HOTA, IDF1, ID switches, and the tracker's own milliseconds per frame (matching only: the
masks' RLEs are encoded once, outside the timing, for every tracker alike). `--ablation` adds the memory tracker
with one component switched off at a time. Where the model has an association head, the quality of its
embeddings is printed first: for each true detection (score >= the tracker's threshold, mask IoU >= 0.5 with a
ground-truth instance), is the nearest detection of the same class k frames later (cosine distance) the same
instance? And the AUC of same-instance against other-instance distances at k = 10 (0.5: no better than chance).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from yolovis.config import TrackerConfig
from yolovis.data.annotations import parse_vis_annotations, read_json
from yolovis.engine.diagnose import diagnose_detections, record_videos
from yolovis.engine.inference import Detector
from yolovis.eval.ytvis_eval import evaluate_vis
from yolovis.track.build import build_tracker
from yolovis.track.oracle import true_identities
from yolovis.track.recorded import VideoDetections
from yolovis.track.results import Appearance, ResultRule, Track, tracks_to_results

ABLATION = {  # name -> the memory tracker's settings changed
    "memory - motion (last mask as is)": {"motion": "none"},
    "memory - direction (no cost for a turn)": {"direction_weight": 0.0},
    "memory - second stage": {"low_threshold": 0.0},
    "memory - Hungarian (greedy rules)": {"assignment": "greedy", "gate": 0.99},
    "memory - lost tracks (max_age 1)": {"max_age": 1},
    "memory - jumps (stage three)": {"max_jump": 0.0},
    "memory - confirmed tracks first (one stage-one assignment)": {"confirmed_first": False},
    "memory + lost mask where last seen": {"lost_static": True},
    "memory - duplicates start no track": {"duplicate_overlap": 1.0},
    "memory - appearance": {"appearance_weight": 0.0, "reid_distance": 0.0},
    "memory - appearance gate": {"appearance_gate": 0.0},
    "memory - appearance scale (raw distance)": {"appearance_scale": 1.0},
    "memory - score-weighted embedding update (every detection's look counts alike)": {"embedding_score_floor": 0.0},
    "memory - contained detections at full score (no decay)": {"contained_decay": 1.0},
    "memory + fuse_score": {"fuse_score": True},
    "memory - score_frames (plain mean score)": {"score_frames": 0},
    "memory - assignment_power (plain sum of margins)": {"assignment_power": 1.0},
}


class _Boxes:
    """What Ultralytics' trackers read of a frame's detections: conf, cls, xywh (centre), boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray) -> None:
        self.xyxy, self.conf, self.cls = xyxy, conf, cls
        self.xywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index):
        return _Boxes(self.xyxy[index], self.conf[index], self.cls[index])


def peer_tracker(kind: str):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.trackers.bot_sort import BOTSORT
    from ultralytics.trackers.byte_tracker import BYTETracker

    common = dict(track_high_thresh=0.25, track_low_thresh=0.1, new_track_thresh=0.25, track_buffer=30,
                  match_thresh=0.8, fuse_score=True)  # fmt: skip  # their yaml defaults
    if kind == "bytetrack":
        return BYTETracker(SimpleNamespace(**common))
    # BoT-SORT without ReID and without camera-motion compensation (no image is given to it).
    return BOTSORT(SimpleNamespace(**common, gmc_method="none", proximity_thresh=0.5, appearance_thresh=0.8,
                                   with_reid=False, model="auto"))  # fmt: skip


def run_peer(kind: str, video: VideoDetections) -> tuple[list[Track], float]:
    tracker = peer_tracker(kind)
    tracks: dict[int, Track] = {}
    seconds = 0.0
    for t, frame in enumerate(video.frames):
        boxes = _Boxes(frame.boxes.astype(np.float32), frame.scores, frame.labels.astype(np.float32))
        start = time.perf_counter()
        rows = (
            tracker.update(boxes) if len(boxes) else tracker.update(_Boxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0)))
        )
        seconds += time.perf_counter() - start
        for row in rows:
            track_id, i = int(row[4]), int(row[7])
            track = tracks.setdefault(track_id, Track(track_id))
            box = tuple(float(v) for v in frame.boxes[i])
            track.frames[t] = Appearance(frame.rles[i], float(frame.scores[i]), int(frame.labels[i]), box)
            track.last_frame = t
    return list(tracks.values()), seconds


def run_ours(cfg: TrackerConfig, video: VideoDetections, label_to_category: list[int]) -> tuple[list, float]:
    tracker = build_tracker(cfg)
    seconds = 0.0
    for t, frame in enumerate(video.frames):
        detections = frame.to_detections(video.height, video.width)
        start = time.perf_counter()
        tracker.update(t, detections, list(frame.rles))
        seconds += time.perf_counter() - start
    return tracker.results(video.video_id, video.length, label_to_category), seconds


def score(gt: dict, results: list, frames: int, seconds: float, threshold: float) -> dict:
    m = evaluate_vis(gt, results, track_score_threshold=threshold).metrics
    t = m.get("tracking") or {}
    return {"AP": m["AP"], "AP50": m["AP50"], "AR10": m["AR10"], "HOTA": t.get("HOTA"), "IDF1": t.get("IDF1"),
            "IDSW": t.get("IDSW"), "ms": 1000 * seconds / max(frames, 1)}  # fmt: skip


def appearance_report(videos: list[VideoDetections], ann, threshold: float, gaps=(1, 3, 10, 30)) -> str:
    """Re-identification by the recorded embeddings alone (see the module's docstring)."""
    hits = {k: [0, 0] for k in gaps}
    same, other = [], []
    for v in videos:
        by_frame: dict[int, list[tuple[int, int, np.ndarray]]] = {}  # frame -> (instance, label, embedding)
        for t, (f, identity) in enumerate(zip(v.frames, true_identities(v, ann), strict=True)):
            if identity and f.embeddings is not None:
                by_frame[t] = [(instance, int(f.labels[i]), f.embeddings[i])
                               for i, instance in identity.items() if f.scores[i] >= threshold]  # fmt: skip
        for t, found in by_frame.items():
            for k in gaps:
                later = by_frame.get(t + k, [])
                for instance, label, e in found:
                    rivals = [r for r in later if r[1] == label]
                    if len(rivals) < 2 or all(r[0] != instance for r in rivals):
                        continue  # nothing to tell apart, or the instance is not there
                    distance = 1.0 - np.stack([r[2] for r in rivals]) @ e
                    hits[k][0] += rivals[int(distance.argmin())][0] == instance
                    hits[k][1] += 1
                    if k == 10:
                        for r, d in zip(rivals, distance, strict=True):
                            (same if r[0] == instance else other).append(float(d))
    if not any(n for _, n in hits.values()):
        return "appearance: no embeddings (the model has no association head) or nothing to tell apart"
    ranks = ", ".join(f"{k} frames {h / max(n, 1):.3f} (n={n})" for k, (h, n) in hits.items())
    auc = mannwhitneyu(other, same).statistic / (len(same) * len(other)) if same and other else float("nan")
    return (f"appearance: nearest same-class detection is the same instance, {ranks}; AUC at 10 frames {auc:.3f}, "
            f"median distance same {np.median(same):.3f} / other {np.median(other):.3f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("ann", help="annotated videos (YouTube-VIS)")
    p.add_argument("--images", default=None)
    p.add_argument("--record", default=None, help="pickle of recorded detections: read if it exists, else written")
    p.add_argument("--ablation", action="store_true", help="the memory tracker with one component off at a time")
    p.add_argument("--no-peers", action="store_true", help="skip Ultralytics' trackers")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    gt = read_json(args.ann)
    ann = parse_vis_annotations(gt, args.ann)
    detector = Detector.from_checkpoint(args.checkpoint)
    cats = detector.category_ids
    if args.record and Path(args.record).is_file():
        videos = pickle.loads(Path(args.record).read_bytes())
    else:
        videos = record_videos(detector, ann, args.images)
        if args.record:
            Path(args.record).write_bytes(pickle.dumps(videos))
    frames = sum(v.length for v in videos)
    base = detector.config.track
    configs = {"greedy (the paper's)": dataclasses.replace(base, method="greedy"),
               "memory": dataclasses.replace(base, method="memory")}  # fmt: skip
    if args.ablation:
        configs.update({k: dataclasses.replace(configs["memory"], **v) for k, v in ABLATION.items()})
    threshold = configs["memory"].detection_threshold
    rows = {}
    # Frame AP and perfect association (false positives linked as the memory tracker links them).
    diagnosis = diagnose_detections(gt, videos, configs["memory"], cats, args.ann)
    frame = diagnosis.summary["frame"]
    for name, cfg in configs.items():
        results, seconds = [], 0.0
        for v in videos:
            r, s = run_ours(cfg, v, cats)
            results += r
            seconds += s
        rows[name] = score(gt, results, frames, seconds, threshold)
    if not args.no_peers:
        # Each peer's tracks ranked by their mean score (as Ultralytics' own results) and, so that the rows differ
        # by association alone, also by the memory tracker's rule (score_frames).
        memory = configs["memory"]
        for kind, name in (("bytetrack", "Ultralytics ByteTrack"), ("botsort", "Ultralytics BoT-SORT")):
            plain, ranked, seconds = [], [], 0.0
            for v in videos:
                tracks, s = run_peer(kind, v)
                plain += tracks_to_results(tracks, v.video_id, v.length, cats, ResultRule(memory.min_length))
                ranked += tracks_to_results(tracks, v.video_id, v.length, cats,
                                            ResultRule(memory.min_length, 0.0, memory.score_frames))  # fmt: skip
                seconds += s
            rows[name] = score(gt, plain, frames, seconds, threshold)
            rows[f"{name}, ranked as memory (score_frames {memory.score_frames})"] = score(
                gt, ranked, frames, seconds, threshold
            )
    rows["perfect association (oracle)"] = score(gt, diagnosis.results["oracle"], frames, 0.0, threshold)

    print(f"{len(videos)} videos, {frames} frames; per-frame mask AP50 {frame['AP50']:.3f}, AP {frame['AP']:.3f}")
    print(appearance_report(videos, ann, threshold))
    print(f"| association | video AP | AP50 | AR10 | HOTA | IDF1 | IDSW | ms/frame |\n|{'---|' * 8}")
    for name, r in rows.items():
        cells = [f"{r[k]:.3f}" if r[k] is not None else "" for k in ("AP", "AP50", "AR10", "HOTA", "IDF1")]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['IDSW']} | {r['ms']:.2f} |")


if __name__ == "__main__":
    main()
