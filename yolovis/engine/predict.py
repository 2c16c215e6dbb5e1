"""Tracked video inference: detector + greedy tracker over the frames of a video, and over every video of a
YouTube-VIS annotation file (the `predict` job and the trainer's validation)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VideoRecord, VISAnnotations, load_vis_annotations
from yolovis.data.ytvis import read_frame
from yolovis.engine.inference import Detector
from yolovis.errors import UserError
from yolovis.model.detections import Detections
from yolovis.track.greedy import GreedyTracker


def batched(frames: Iterable[tuple[int, np.ndarray]], size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    batch: list[tuple[int, np.ndarray]] = []
    for item in frames:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def track_frames(
    detector: Detector,
    frames: Iterable[tuple[int, np.ndarray]],
    tracker_cfg: TrackerConfig,
    batch_size: int = 4,
    on_frame: Callable[[int, np.ndarray, Detections, list[int]], None] | None = None,
) -> GreedyTracker:
    """Run the detector on (frame index, RGB frame) pairs in increasing index order and track them.

    `on_frame(index, frame, detections, track_ids)` sees every frame once (for writers: overlay, MOT rows);
    frames are not kept, so memory stays flat however long the video is.
    """
    tracker = GreedyTracker(tracker_cfg)
    for batch in batched(frames, batch_size):
        detections = detector([frame for _, frame in batch])
        for (index, frame), det in zip(batch, detections, strict=True):
            ids = tracker.update(index, det)
            if on_frame is not None:
                on_frame(index, frame, det, ids)
    return tracker


def annotation_frames(ann: VISAnnotations, video: VideoRecord, images_dir: Path) -> Iterator[tuple[int, np.ndarray]]:
    for index, name in enumerate(video.file_names):
        yield index, read_frame(images_dir / name, ann.source, video, index)


def predict_videos(
    detector: Detector,
    ann: VISAnnotations | str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    tracker_cfg: TrackerConfig | None = None,
    batch_size: int = 4,
    video_ids: list[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """YouTube-VIS results for every video of an annotation file (labels not needed), in the file's video order.

    Video ids are taken from the file as they are (they need not be contiguous), and every frame of every video
    is processed, the last one included (SPEC §6).
    """
    ann = ann if isinstance(ann, VISAnnotations) else load_vis_annotations(ann)
    root = Path(images_dir) if images_dir is not None else Path(ann.source).parent / "JPEGImages"
    tracker_cfg = tracker_cfg or detector.config.track
    label_to_category = [c["id"] for c in detector.categories]
    wanted = set(video_ids) if video_ids is not None else None
    results: list[dict] = []
    for video in ann.videos:
        if wanted is not None and video.id not in wanted:
            continue
        tracker = track_frames(detector, annotation_frames(ann, video, root), tracker_cfg, batch_size)
        results += tracker.results(video.id, video.length, label_to_category)
        if progress is not None:
            progress(video.length)
    return results


@dataclass
class TrackOptions:
    stride: int = 1
    score_threshold: float | None = None  # None: the checkpoint's postprocess setting
    img_size: tuple[int, int] | None = None  # (H, W); None: the checkpoint's
    device: str = "cpu"
    half: bool = False
    batch_size: int = 4
    video: bool = True  # write DIR/overlay.mp4


def track_source(checkpoint: str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike,
                 options: TrackOptions | None = None) -> dict:  # fmt: skip
    """`yolovis track`: DIR/results.json (YouTube-VIS results, video_id 1), DIR/tracks.txt (MOT rows: frame,
    id, x, y, w, h, score, category id) and DIR/overlay.mp4. Returns a summary dict."""
    from tqdm import tqdm

    from yolovis.config import save_config
    from yolovis.engine.video import VideoWriter, draw_overlay, open_source
    from yolovis.fileio import atomic_write_json, atomic_write_text

    options = options or TrackOptions()
    out = Path(out_dir)
    detector = Detector.from_checkpoint(checkpoint, options.device, options.img_size, options.half)
    if options.score_threshold is not None:
        detector.config.postprocess.score_threshold = options.score_threshold
    frames = open_source(source, options.stride)
    names = [c["name"] for c in detector.categories]
    category_ids = [c["id"] for c in detector.categories]
    writer = VideoWriter(out / "overlay.mp4", frames.fps / options.stride) if options.video else None
    rows: list[str] = []
    bar = tqdm(desc=f"track {Path(str(source)).name}", unit="frame", dynamic_ncols=True)

    def on_frame(index: int, frame: np.ndarray, det: Detections, ids: list[int]) -> None:
        for k, track_id in enumerate(ids):
            if track_id < 0:
                continue
            x0, y0, x1, y1 = det.boxes[k].tolist()
            rows.append(f"{index + 1},{track_id},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},"
                        f"{float(det.scores[k]):.4f},{category_ids[int(det.labels[k])]}")  # fmt: skip
        if writer is not None:
            writer.write(draw_overlay(frame, det, ids, names))
        bar.update(1)

    try:
        tracker = track_frames(detector, frames, detector.config.track, options.batch_size, on_frame)
    except BaseException:
        bar.close()
        if writer is not None:
            writer.abort()
        raise
    bar.close()
    if frames.decoded == 0:
        if writer is not None:
            writer.abort()
        raise UserError(f"{source}: no frame could be decoded")
    results = tracker.results(1, frames.decoded, category_ids)
    if writer is not None:
        writer.close()
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "tracks.txt", "\n".join(rows) + ("\n" if rows else ""))
    save_config(detector.config, out / "config.yaml")
    return {"frames": frames.decoded, "tracks": len(results), "truncated": frames.truncated}


def predict_file(
    checkpoint: str | os.PathLike,
    ann_file: str | os.PathLike,
    out: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    make_zip: bool = False,
    options: TrackOptions | None = None,
) -> list[dict]:
    """`yolovis predict`: results for every video of ANN.json, written as the server wants them (and zipped).

    Under `torchrun` each process takes every world_size-th video; rank 0 gathers, merges in the file's video
    order and writes. Returns the merged results (on every rank).
    """
    import io
    import zipfile

    import torch.distributed as dist
    from tqdm import tqdm

    from yolovis.fileio import atomic_write_bytes, atomic_write_json

    options = options or TrackOptions()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if options.device.startswith("cuda") else "gloo")
    ann = load_vis_annotations(ann_file)
    detector = Detector.from_checkpoint(checkpoint, options.device, options.img_size, options.half)
    if options.score_threshold is not None:
        detector.config.postprocess.score_threshold = options.score_threshold
    mine = [v.id for k, v in enumerate(ann.videos) if k % world == rank]
    total = sum(v.length for v in ann.videos if v.id in set(mine))
    with tqdm(total=total, desc=f"predict (rank {rank})", unit="frame", disable=rank != 0) as bar:
        results = predict_videos(detector, ann, images_dir, detector.config.track, options.batch_size, mine,
                                 progress=bar.update)  # fmt: skip
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, results)
        order = {v.id: k for k, v in enumerate(ann.videos)}
        results = sorted((r for part in gathered for r in part), key=lambda r: order[r["video_id"]])
    if rank == 0:
        out = Path(out)
        if make_zip:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("results.json", json.dumps(results))  # at the root, as the server wants
            atomic_write_bytes(out.with_suffix(".zip"), buffer.getvalue())
        atomic_write_json(out, results)
    return results
