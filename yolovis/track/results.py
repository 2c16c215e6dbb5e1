"""Tracks -> YouTube-VIS results (SPEC §5): one entry per kept track, exactly `length` segmentations per entry
(a compressed RLE with str counts where the track was seen, null elsewhere), the category voted over the frames,
the score the mean detection score."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolovis.track.greedy import Track


def rle_to_json(rle: dict) -> dict:
    """A pycocotools RLE (counts as bytes) as the results file wants it: {"size": [H, W], "counts": str}."""
    counts = rle["counts"]
    return {
        "size": [int(s) for s in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def track_to_result(track: Track, video_id: int, length: int, label_to_category: list[int] | None = None) -> dict:
    if not track.frames:
        raise ValueError(f"video {video_id}: track {track.track_id} has no frame")
    last = max(track.frames)
    if last >= length or min(track.frames) < 0:
        raise ValueError(f"video {video_id}: track {track.track_id} has frame {last}, outside 0..{length - 1}")
    segmentations: list[dict | None] = [None] * length
    for t, appearance in track.frames.items():
        segmentations[t] = rle_to_json(appearance.rle)
    label = track.label
    return {
        "video_id": int(video_id),
        "category_id": int(label_to_category[label]) if label_to_category is not None else int(label),
        "score": float(track.score),
        "segmentations": segmentations,
    }


def tracks_to_results(
    tracks: Iterable[Track],
    video_id: int,
    length: int,
    label_to_category: list[int] | None = None,
    min_length: int = 1,
    min_score: float = 0.0,
) -> list[dict]:
    """Results of one video of `length` frames; tracks seen on fewer than `min_length` frames or whose mean
    score is below `min_score` are dropped. `label_to_category` maps contiguous labels to dataset category ids."""
    return [
        track_to_result(track, video_id, length, label_to_category)
        for track in tracks
        if len(track.frames) >= min_length and track.score >= min_score
    ]
