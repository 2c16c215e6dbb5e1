"""`track.method` -> the tracker of one video."""

from __future__ import annotations

from yolovis.config import TrackerConfig
from yolovis.errors import UserError
from yolovis.track.greedy import GreedyTracker
from yolovis.track.memory import MemoryTracker

TRACK_METHODS = ("greedy", "memory")
Tracker = GreedyTracker | MemoryTracker  # both: encode(detections), update(frame, detections, rles), results(...)


def build_tracker(cfg: TrackerConfig) -> Tracker:
    """A fresh tracker for one video, as `cfg.method` says."""
    if cfg.method == "greedy":
        return GreedyTracker(cfg)
    if cfg.method == "memory":
        return MemoryTracker(cfg)
    raise UserError(f"track.method {cfg.method!r} is unknown; choose from {', '.join(TRACK_METHODS)}")
