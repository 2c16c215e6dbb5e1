"""Tracked video inference: detector + greedy tracker over the frames of a video (`yolovis track`, the Python
API `VideoTracker`), and over every video of a YouTube-VIS annotation file (`yolovis predict`, the trainer's
validation).

Everything streams: a frame is decoded, detected, RLE-encoded, tracked, drawn and dropped; a track keeps only
RLEs, so memory does not grow with the frame size and grows with the video only by a few hundred bytes per
tracked instance.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VideoRecord, VISAnnotations, load_vis_annotations
from yolovis.data.ytvis import read_frame
from yolovis.engine.inference import Detector
from yolovis.errors import UserError
from yolovis.model.detections import Detections
from yolovis.track.greedy import GreedyTracker

Frames = Iterable[tuple[int, np.ndarray]]  # (frame index, (H, W, 3) uint8 RGB), indices increasing


@dataclass
class TrackedFrame:
    """One processed frame: its detections and, for each, its track id (-1: not tracked) and mask RLE."""

    index: int
    frame: np.ndarray  # (H, W, 3) uint8 RGB
    detections: Detections
    track_ids: list[int]
    rles: list[dict | None]


@dataclass
class Profile:
    """Wall-clock seconds per phase of the pipeline (decode, detect, encode, tracker, write)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def iterate(self, name: str, items: Iterable) -> Iterator:
        """`items`, with the time spent producing each one counted under `name`."""
        iterator = iter(items)
        while True:
            with self.phase(name):
                item = next(iterator, StopIteration)
            if item is StopIteration:
                return
            yield item


def batched(frames: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in frames:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_tracked(
    detector: Detector,
    frames: Frames,
    tracker: GreedyTracker,
    batch_size: int = 4,
    profile: Profile | None = None,
) -> Iterator[TrackedFrame]:
    """Detect `batch_size` frames at a time, then RLE-encode and track them one by one, in index order."""
    profile = profile or Profile()
    for batch in batched(profile.iterate("decode", frames), batch_size):
        with profile.phase("detect"):
            detections = detector([frame for _, frame in batch])
        for (index, frame), det in zip(batch, detections, strict=True):
            with profile.phase("encode"):
                rles = tracker.encode(det)
            with profile.phase("tracker"):
                ids = tracker.update(index, det, rles)
            yield TrackedFrame(index, frame, det, ids, rles)


def track_frames(
    detector: Detector,
    frames: Frames,
    tracker_cfg: TrackerConfig,
    batch_size: int = 4,
    on_frame: Callable[[int, np.ndarray, Detections, list[int]], None] | None = None,
) -> GreedyTracker:
    """Run the detector and the tracker over (frame index, RGB frame) pairs; returns the tracker (its
    `results(video_id, length)` are the video's YouTube-VIS results). `on_frame(index, frame, detections,
    track_ids)` sees every frame once; frames are not kept."""
    tracker = GreedyTracker(tracker_cfg)
    for item in iter_tracked(detector, frames, tracker, batch_size):
        if on_frame is not None:
            on_frame(item.index, item.frame, item.detections, item.track_ids)
    return tracker


class VideoTracker:
    """The Python API: a detector and a tracker configuration; call it on a source to get tracked frames.

    >>> vt = VideoTracker.from_checkpoint("run/best.pt")
    >>> for f in vt("video.mp4"):            # a video file, a folder of frames, a glob, or (index, frame) pairs
    ...     print(f.index, f.track_ids, f.detections.boxes)
    >>> results = vt.results(video_id=1)     # YouTube-VIS results of the last video
    """

    def __init__(self, detector: Detector, tracker_cfg: TrackerConfig | None = None, batch_size: int = 4) -> None:
        self.detector = detector
        self.tracker_cfg = tracker_cfg or detector.config.track
        self.batch_size = batch_size
        self.tracker = GreedyTracker(self.tracker_cfg)
        self.length = 0  # frames of the last video (skipped ones included)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", img_size: tuple[int, int] | None = None,
                        half: bool = False, batch_size: int = 4) -> VideoTracker:  # fmt: skip
        return cls(Detector.from_checkpoint(path, device, img_size, half), batch_size=batch_size)

    def __call__(self, source: str | os.PathLike | Frames, stride: int = 1) -> Iterator[TrackedFrame]:
        from yolovis.engine.video import FrameSource, open_source

        frames = open_source(source, stride) if isinstance(source, str | os.PathLike) else source
        self.tracker = GreedyTracker(self.tracker_cfg)
        self.length = 0
        for item in iter_tracked(self.detector, frames, self.tracker, self.batch_size):
            self.length = item.index + 1
            yield item
        if isinstance(frames, FrameSource):
            self.length = frames.decoded

    def results(self, video_id: int = 1) -> list[dict]:
        return self.tracker.results(video_id, self.length, self.detector.category_ids)


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


@dataclass
class TrackOptions:
    stride: int = 1
    score_threshold: float | None = None  # None: the checkpoint's postprocess setting
    img_size: tuple[int, int] | None = None  # (H, W); None: the checkpoint's
    device: str = "cpu"
    half: bool = False
    batch_size: int = 4
    video: bool = True  # write DIR/overlay.mp4


def load_detector(checkpoint: str | os.PathLike, options: TrackOptions) -> Detector:
    detector = Detector.from_checkpoint(checkpoint, options.device, options.img_size, options.half)
    if options.score_threshold is not None:
        detector.config.postprocess.score_threshold = options.score_threshold
    return detector


def track_source(checkpoint: str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike,
                 options: TrackOptions | None = None) -> dict:  # fmt: skip
    """`yolovis track`: DIR/results.json (YouTube-VIS results, video_id 1), DIR/tracks.txt (MOT rows: frame,
    id, x, y, w, h, score, category id) and DIR/overlay.mp4. Returns a summary dict."""
    options = options or TrackOptions()
    return track_video(load_detector(checkpoint, options), source, out_dir, options)


def track_video(detector: Detector, source: str | os.PathLike, out_dir: str | os.PathLike,
                options: TrackOptions | None = None, profile: Profile | None = None,
                progress: bool = True) -> dict:  # fmt: skip
    """`track_source` with a loaded detector; `profile` collects the seconds per phase."""
    from tqdm import tqdm

    from yolovis.config import save_config
    from yolovis.engine.video import MotWriter, VideoWriter, draw_overlay, open_source
    from yolovis.fileio import atomic_write_json

    options = options or TrackOptions()
    profile = profile or Profile()
    out = Path(out_dir)
    frames = open_source(source, options.stride)
    names = [c["name"] for c in detector.categories]
    category_ids = detector.category_ids
    tracker = GreedyTracker(detector.config.track)
    mot = MotWriter(out / "tracks.txt")
    writer = VideoWriter(out / "overlay.mp4", frames.fps / options.stride) if options.video else None
    total = len(frames.files) if frames.kind == "images" else frames.expected or None
    bar = tqdm(total=total, desc=f"track {Path(str(source)).name}", unit="frame", dynamic_ncols=True,
               disable=not progress)  # fmt: skip
    try:
        for item in iter_tracked(detector, frames, tracker, options.batch_size, profile):
            with profile.phase("write"):
                mot.write(item.index, item.detections, item.track_ids, category_ids)
                if writer is not None:
                    writer.write(draw_overlay(item.frame, item.detections, item.track_ids, names))
            bar.update(frames.decoded - bar.n)  # skipped frames (--stride) count too
        if frames.decoded == 0:
            raise UserError(f"{source}: no frame could be decoded")
        with profile.phase("write"):
            results = tracker.results(1, frames.decoded, category_ids)
            if writer is not None:
                writer.close()
            mot.close()
            atomic_write_json(out / "results.json", results)
            save_config(detector.config, out / "config.yaml")
    except BaseException:
        if writer is not None:
            writer.abort()
        mot.abort()
        raise
    finally:
        bar.close()
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

    Under `torchrun` (WORLD_SIZE > 1) each process takes every world_size-th video (on `cuda:LOCAL_RANK` when
    the device is CUDA); rank 0 gathers, merges in the file's video order and writes. Returns the merged results
    (on every rank).
    """
    import io
    import zipfile

    import torch.distributed as dist
    from tqdm import tqdm

    from yolovis.fileio import atomic_write_bytes, atomic_write_json

    options = options or TrackOptions()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    started = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo")  # only Python objects are exchanged, once
        started = True
    if world > 1 and options.device == "cuda":
        options.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        ann = load_vis_annotations(ann_file)
        detector = load_detector(checkpoint, options)
        mine = [v for k, v in enumerate(ann.videos) if k % world == rank]
        total = sum(v.length for v in mine)
        with tqdm(total=total, desc=f"predict (rank {rank})", unit="frame", disable=rank != 0) as bar:
            results = predict_videos(detector, ann, images_dir, detector.config.track, options.batch_size,
                                     [v.id for v in mine], progress=bar.update)  # fmt: skip
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
        if world > 1:
            dist.barrier()  # the other ranks return once the file is there
    finally:
        if started:
            dist.destroy_process_group()
    return results
