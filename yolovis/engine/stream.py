"""The streaming pipeline: frames -> detector (a batch at a time) -> RLE encoding -> tracker, one frame out at a
time; and the Python API around it, `VideoTracker`.

Everything streams: a frame is decoded, detected, RLE-encoded, tracked, handed on and dropped; a track keeps only
RLEs, so memory does not grow with the frame size and grows with the video only by a few hundred bytes per
tracked instance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from yolovis.config import TrackerConfig
from yolovis.engine.inference import Detector
from yolovis.model.detections import Detections
from yolovis.track.build import Tracker, build_tracker

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
    tracker: Tracker,
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
) -> Tracker:
    """Run the detector and the tracker over (frame index, RGB frame) pairs; returns the tracker (its
    `results(video_id, length)` are the video's YouTube-VIS results). `on_frame(index, frame, detections,
    track_ids)` sees every frame once; frames are not kept."""
    tracker = build_tracker(tracker_cfg)
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
        self.tracker = build_tracker(self.tracker_cfg)
        self.length = 0  # frames of the last video (skipped ones included)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", img_size: tuple[int, int] | None = None,
                        half: bool = False, batch_size: int = 4) -> VideoTracker:  # fmt: skip
        return cls(Detector.from_checkpoint(path, device, img_size, half), batch_size=batch_size)

    def __call__(self, source: str | os.PathLike | Frames, stride: int = 1) -> Iterator[TrackedFrame]:
        from yolovis.io.video import FrameSource, open_source

        frames = open_source(source, stride) if isinstance(source, str | os.PathLike) else source
        self.tracker = build_tracker(self.tracker_cfg)
        self.length = 0
        for item in iter_tracked(self.detector, frames, self.tracker, self.batch_size):
            self.length = item.index + 1
            yield item
        if isinstance(frames, FrameSource):
            self.length = frames.decoded

    def results(self, video_id: int = 1) -> list[dict]:
        return self.tracker.results(video_id, self.length, self.detector.category_ids)
