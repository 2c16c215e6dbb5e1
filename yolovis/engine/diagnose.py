"""`yolovis diagnose`: where a video score was lost, to the detector or to the tracker.

The network runs once over every frame of an annotated file; the same recorded detections are then scored
three ways:
- per-frame mask AP: every frame an image, COCO style (the detector alone);
- the video AP of the configured tracker (`track.method`), the figure users are judged by;
- the video AP of perfect association (`track/oracle.py`): the best any tracker could do with these detections.
Oracle minus tracker is what association lost; per video, so that the videos that lose most can be looked at.
The tracking metrics (HOTA, IDF1, ID switches, fragmentations) of both come beside them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VISAnnotations, parse_vis_annotations, read_json
from yolovis.engine.inference import Detector
from yolovis.engine.predict import annotation_frames
from yolovis.engine.stream import batched
from yolovis.eval.frame_ap import frame_mask_ap
from yolovis.eval.ytvis_eval import VISEvaluation, evaluate_vis
from yolovis.track.build import Tracker, build_tracker
from yolovis.track.mask_iou import encode_detections
from yolovis.track.oracle import identity_changes, oracle_results, true_identities
from yolovis.track.recorded import FrameRecord, VideoDetections

TRACKING_KEYS = ("HOTA", "DetA", "AssA", "IDF1", "IDSW", "Frag")


def record_videos(
    detector: Detector,
    ann: VISAnnotations,
    images_dir: str | os.PathLike | None = None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[VideoDetections]:
    """Run the detector once over every frame of every video of `ann`; keep every detection as an RLE."""
    root = Path(images_dir) if images_dir is not None else Path(ann.source).parent / "JPEGImages"
    videos = []
    for video in ann.videos:
        frames: list[FrameRecord] = []
        for batch in batched(annotation_frames(ann, video, root), batch_size):
            for det in detector([frame for _, frame in batch]):
                frames.append(FrameRecord.from_detections(det, encode_detections(det, list(range(len(det))))))
        videos.append(VideoDetections(video.id, video.height, video.width, frames))
        if progress is not None:
            progress(video.length)
    return videos


def replay_tracker(
    video: VideoDetections, cfg: TrackerConfig, label_to_category: list[int] | None, tracker: Tracker | None = None
) -> tuple[list[dict], list[list[int]]]:
    """The results `track.method` gives for one video's recorded detections (as `predict` would give them), and
    the track id it gave each detection of each frame (-1: not tracked). `tracker`: a fresh tracker to replay
    through instead of the one `cfg` builds (a benchmark's variant)."""
    tracker = tracker if tracker is not None else build_tracker(cfg)
    ids = [
        tracker.update(t, f.to_detections(video.height, video.width), list(f.rles)) for t, f in enumerate(video.frames)
    ]
    return tracker.results(video.video_id, video.length, label_to_category), ids


def _frame_detections(videos: list[VideoDetections], label_to_category: list[int]) -> list[dict]:
    return [
        {
            "video_id": v.video_id,
            "frame": t,
            "category_id": label_to_category[int(label)],
            "score": float(score),
            "segmentation": rle,
        }  # fmt: skip
        for v in videos
        for t, frame in enumerate(v.frames)
        for rle, score, label in zip(frame.rles, frame.scores, frame.labels, strict=True)
    ]


def _video_figures(metrics: dict) -> dict:
    out = {k: metrics[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")}
    tracking = metrics.get("tracking")
    if tracking:
        out.update({k: tracking[k] for k in TRACKING_KEYS})
    return out


@dataclass
class Diagnosis:
    summary: dict  # JSON-ready: frame, tracker, oracle, lost_to_association, per_video
    results: dict[str, list[dict]]  # YouTube-VIS results of "tracker" and "oracle"
    evaluation: VISEvaluation  # the tracker's full evaluation (per-category AP, curves, confusion: the plots)


def diagnose_detections(
    gt: dict,
    videos: list[VideoDetections],
    tracker_cfg: TrackerConfig,
    label_to_category: list[int],
    gt_source: str = "annotations",
) -> Diagnosis:
    """Frame AP, tracker and oracle video AP (and tracking metrics), overall and per video, of recorded
    detections against the parsed annotation dict `gt`."""
    ann = parse_vis_annotations(gt, gt_source)
    frame = frame_mask_ap(ann, _frame_detections(videos, label_to_category))
    tracked, oracle, changes = {}, {}, {}
    for v in videos:
        tracked[v.video_id], ids = replay_tracker(v, tracker_cfg, label_to_category)
        identities = true_identities(v, ann)
        oracle[v.video_id] = oracle_results(v, ann, ids, tracker_cfg, label_to_category, identities)
        changes[v.video_id] = identity_changes(ids, identities)
    every = lambda by_video: [r for v in videos for r in by_video[v.video_id]]  # noqa: E731
    # Tracking metrics count the tracks a user would keep: those of mean score >= the detection threshold.
    options = {"gt_source": gt_source, "track_score_threshold": tracker_cfg.detection_threshold}
    tracker_eval = evaluate_vis(gt, every(tracked), **options)
    oracle_eval = evaluate_vis(gt, every(oracle), **options)
    per_video = []
    for v in videos:
        part = {**gt, "videos": [x for x in gt["videos"] if x["id"] == v.video_id],
                "annotations": [a for a in gt.get("annotations") or [] if a["video_id"] == v.video_id]}  # fmt: skip
        t = evaluate_vis(part, tracked[v.video_id], gt_source=gt_source, tracking=False).metrics
        o = evaluate_vis(part, oracle[v.video_id], gt_source=gt_source, tracking=False).metrics
        per_video.append({
            "video_id": v.video_id,
            "frames": v.length,
            "gt_tracks": len(part["annotations"]),
            "tracks": len(tracked[v.video_id]),
            "tracker_AP50": t["AP50"], "oracle_AP50": o["AP50"], "tracker_AP": t["AP"], "oracle_AP": o["AP"],
            "AP50_lost_to_association": o["AP50"] - t["AP50"] if min(t["AP50"], o["AP50"]) >= 0 else None,
            "identity_changes": sum(n for k, n in changes[v.video_id].items() if k != "untracked"),
        })  # fmt: skip
    tracker_fig, oracle_fig = _video_figures(tracker_eval.metrics), _video_figures(oracle_eval.metrics)
    summary = {
        "frame": {k: frame[k] for k in ("AP", "AP50", "AP75", "AR1", "AR10")},
        "tracker": {"method": tracker_cfg.method, **tracker_fig},
        "oracle": oracle_fig,
        "lost_to_association": {k: oracle_fig[k] - tracker_fig[k] for k in ("AP", "AP50", "AP75")},
        "identity_changes": {k: sum(c[k] for c in changes.values()) for k in next(iter(changes.values()), {})},
        "per_video": sorted(per_video, key=lambda r: -(r["AP50_lost_to_association"] or 0.0)),
    }
    return Diagnosis(summary, {"tracker": every(tracked), "oracle": every(oracle)}, tracker_eval)


def format_diagnosis(d: dict, worst: int = 5) -> str:
    """`Diagnosis.summary` as a text table: three rows (frame, tracker, oracle), then the videos that lost most."""
    keys = ("AP", "AP50", "AP75", "AR10")
    lines = [f"{'':32}" + "".join(f"{k:>7}" for k in keys) + "".join(f"{k:>7}" for k in TRACKING_KEYS)]
    rows = (("per-frame mask AP (detector)", d["frame"]), (f"video AP, tracker {d['tracker']['method']!r}",
            d["tracker"]), ("video AP, perfect association", d["oracle"]))  # fmt: skip
    for name, fig in rows:
        cells = "".join(f"{fig[k]:7.3f}" for k in keys)
        for k in TRACKING_KEYS:
            v = fig.get(k)
            cells += f"{'':>7}" if v is None else (f"{v:7d}" if isinstance(v, int) else f"{v:7.3f}")
        lines.append(f"{name:32}{cells}")
    lost = d["lost_to_association"]
    lines.append(f"lost to association: AP50 {lost['AP50']:+.3f}, AP {lost['AP']:+.3f} (oracle minus tracker)")
    changes = d.get("identity_changes")
    if changes:
        lines.append(_format_changes(changes))
    shown = [r for r in d["per_video"] if (r["AP50_lost_to_association"] or 0) > 0][:worst]
    if shown:
        lines.append("videos that lost most (AP50 tracker -> oracle): " + ", ".join(
            f"{r['video_id']} ({r['tracker_AP50']:.2f} -> {r['oracle_AP50']:.2f})" for r in shown))  # fmt: skip
    return "\n".join(lines)


def _format_changes(c: dict[str, int]) -> str:
    """One line: where the tracker changed the identity of true instances (`identity_changes`)."""
    names = {"new_track": "to a new track", "other_instance": "to another instance's track",
             "own_older": "back to an older track of its own"}  # fmt: skip
    parts = []
    for when, label in (("seen", "tracked on the frame before"), ("after_gap", "after frames untracked")):
        total = sum(c[f"{when}_{k}"] for k in names)
        detail = ", ".join(f"{c[f'{when}_{k}']} {text}" for k, text in names.items() if c[f"{when}_{k}"])
        parts.append(f"{total} {label}" + (f" ({detail})" if detail else ""))
    total = sum(n for k, n in c.items() if k != "untracked")
    return (f"identity changes of true instances: {total} = " + " + ".join(parts)
            + f"; true detections left untracked: {c['untracked']}")  # fmt: skip


def diagnose(
    detector: Detector,
    ann_file: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    tracker_cfg: TrackerConfig | None = None,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> tuple[Diagnosis, list[VideoDetections]]:
    """Record the detector's detections on ANN's frames and diagnose them (`diagnose_detections`)."""
    gt = read_json(ann_file)
    ann = parse_vis_annotations(gt, str(ann_file))
    videos = record_videos(detector, ann, images_dir, batch_size, progress)
    cfg = replace(tracker_cfg or detector.config.track)
    return diagnose_detections(gt, videos, cfg, detector.category_ids, str(ann_file)), videos
