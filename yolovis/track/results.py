"""What a track keeps of each frame, and tracks -> YouTube-VIS results (SPEC §5).

Results: one entry per kept track, exactly `length` segmentations per entry (a compressed RLE with str counts
where the track was seen, null elsewhere), the category voted over the frames, the score the mean detection
score (SPEC §5), times min(1, frames seen / `score_frames`) where that is set (see `track_score`). Every tracker
(greedy, memory, the oracle of `yolovis diagnose`) records its tracks as `Track`s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from yolovis.config import TrackerConfig


@dataclass(slots=True)
class Appearance:
    """What a track keeps of one frame: the mask as an RLE (never the bitmap), score, label, box (xyxy)."""

    rle: dict
    score: float
    label: int
    box: tuple[float, float, float, float]


@dataclass
class Track:
    track_id: int
    frames: dict[int, Appearance] = field(default_factory=dict)  # frame index -> appearance
    last_frame: int = -1

    @property
    def last(self) -> Appearance:
        return self.frames[self.last_frame]

    @property
    def score(self) -> float:
        return float(np.mean([a.score for a in self.frames.values()]))

    @property
    def label(self) -> int:
        """Vote over frames; ties go to the label with the higher total score."""
        votes: dict[int, tuple[int, float]] = {}
        for a in self.frames.values():
            n, s = votes.get(a.label, (0, 0.0))
            votes[a.label] = (n + 1, s + a.score)
        return max(votes, key=lambda k: votes[k])


def track_score(track: Track, score_frames: int = 0) -> float:
    """The score a track's result is ranked by: its mean detection score, times min(1, frames seen /
    `score_frames`) when `score_frames` > 1. The video AP ranks tracks by score, and a track seen on a few frames
    is most often a fragment of an identity that another track holds, or a false detection; by the mean alone a
    confident fragment ranks above the whole track of a less confident object. 0 or 1: the plain mean (SPEC §5)."""
    score = track.score
    if score_frames > 1 and len(track.frames) < score_frames:
        score *= len(track.frames) / score_frames
    return score


@dataclass(frozen=True)
class ResultRule:
    """Which tracks become results and how each is ranked: tracks seen on fewer than `min_length` frames or
    whose mean score is below `min_score` are dropped; `score_frames`: see `track_score`. Every producer of
    results (the trackers, the oracle, the streamed `ResultsWriter`) applies one such rule."""

    min_length: int = 1
    min_score: float = 0.0
    score_frames: int = 0

    @classmethod
    def of(cls, cfg: TrackerConfig) -> ResultRule:
        """The configured tracker's rule; the paper's greedy tracker ranks by the plain mean (SPEC §5)."""
        return cls(cfg.min_length, cfg.min_score, cfg.score_frames if cfg.method == "memory" else 0)

    def keeps(self, track: Track) -> bool:
        return len(track.frames) >= self.min_length and track.score >= self.min_score

    def score(self, track: Track) -> float:
        return track_score(track, self.score_frames)


def split_final(tracks: list[Track], live: Iterable[Track]) -> tuple[list[Track], list[Track]]:
    """(final, kept): the tracks no longer in `live` (they can never be matched again, so their results are
    final: what lets `yolovis track` stream a long video's results to disk) and the others, in order."""
    alive = {id(t) for t in live}
    return [t for t in tracks if id(t) not in alive], [t for t in tracks if id(t) in alive]


def rle_to_json(rle: dict) -> dict:
    """A pycocotools RLE (counts as bytes) as the results file wants it: {"size": [H, W], "counts": str}."""
    counts = rle["counts"]
    return {
        "size": [int(s) for s in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def category_of(track: Track, label_to_category: list[int] | None = None) -> int:
    """The dataset category id of a track's voted label (`label_to_category` maps contiguous labels to ids)."""
    label = track.label
    return int(label_to_category[label]) if label_to_category is not None else int(label)


def track_to_result(
    track: Track,
    video_id: int,
    length: int,
    label_to_category: list[int] | None = None,
    rule: ResultRule = ResultRule(),
) -> dict:
    if not track.frames:
        raise ValueError(f"video {video_id}: track {track.track_id} has no frame")
    last = max(track.frames)
    if last >= length or min(track.frames) < 0:
        raise ValueError(f"video {video_id}: track {track.track_id} has frame {last}, outside 0..{length - 1}")
    segmentations: list[dict | None] = [None] * length
    for t, appearance in track.frames.items():
        segmentations[t] = rle_to_json(appearance.rle)
    return {
        "video_id": int(video_id),
        "category_id": category_of(track, label_to_category),
        "score": float(rule.score(track)),
        "segmentations": segmentations,
    }


def tracks_to_results(
    tracks: Iterable[Track],
    video_id: int,
    length: int,
    label_to_category: list[int] | None = None,
    rule: ResultRule = ResultRule(),
) -> list[dict]:
    """Results of one video of `length` frames: the tracks `rule` keeps, each scored by it.
    `label_to_category` maps contiguous labels to dataset category ids."""
    return [track_to_result(track, video_id, length, label_to_category, rule)
            for track in tracks if rule.keeps(track)]  # fmt: skip
