"""`yolovis predict` (and the trainer's validation): YouTube-VIS results for every video of an annotation file.

Video ids are taken from the file as they are (they need not be contiguous), and every frame of every video is
processed, the last one included (SPEC §6). Under `torchrun` the videos are split across processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VideoRecord, VISAnnotations, load_vis_annotations
from yolovis.data.ytvis import read_frame
from yolovis.engine.inference import Detector
from yolovis.engine.stream import VideoTracker, track_frames
from yolovis.engine.track import TrackOptions, load_detector

__all__ = ["VideoTracker", "predict_file", "predict_videos"]  # VideoTracker: its documented home before 0.2


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
    wanted = set(video_ids) if video_ids is not None else None
    results: list[dict] = []
    for video in ann.videos:
        if wanted is not None and video.id not in wanted:
            continue
        tracker = track_frames(detector, annotation_frames(ann, video, root), tracker_cfg, batch_size)
        results += tracker.results(video.id, video.length, detector.category_ids)
        if progress is not None:
            progress(video.length)
    return results


def predict_file(
    checkpoint: str | os.PathLike,
    ann_file: str | os.PathLike,
    out: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    make_zip: bool = False,
    options: TrackOptions | None = None,
) -> list[dict]:
    """`yolovis predict`: results for every video of ANN.json, written as the server wants them (and zipped).

    Under `torchrun` each process takes every world_size-th video (on its own GPU when the device is CUDA);
    rank 0 gathers, merges in the file's video order and writes. Returns the merged results (on every rank).
    """
    import io
    import zipfile

    from tqdm import tqdm

    from yolovis.engine import distributed
    from yolovis.fileio import atomic_write_bytes, atomic_write_json

    options = options or TrackOptions()
    place = distributed.world()
    options.device = str(distributed.device_for(options.device, place))
    started = distributed.start(place, torch.device(options.device))
    try:
        ann = load_vis_annotations(ann_file)
        detector = load_detector(checkpoint, options)
        mine = [v for k, v in enumerate(ann.videos) if k % place.size == place.rank]
        total = sum(v.length for v in mine)
        with tqdm(total=total, desc=f"predict (rank {place.rank})", unit="frame", disable=not place.is_main) as bar:
            results = predict_videos(detector, ann, images_dir, detector.config.track, options.batch_size,
                                     [v.id for v in mine], progress=bar.update)  # fmt: skip
        order = {v.id: k for k, v in enumerate(ann.videos)}
        parts = distributed.gather_objects(results, place)
        results = sorted((r for part in parts for r in part), key=lambda r: order[r["video_id"]])
        if place.is_main:
            out = Path(out)
            if make_zip:
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                    archive.writestr("results.json", json.dumps(results))  # at the root, as the server wants
                atomic_write_bytes(out.with_suffix(".zip"), buffer.getvalue())
            atomic_write_json(out, results)
        distributed.barrier(place)  # the other ranks return once the file is there
    finally:
        distributed.finish(started)
    return results
