"""Perfect association: the upper bound any tracker of the same detections could reach (`yolovis diagnose`).

In each frame the detections (all of them, whatever their score) are matched one-to-one to the ground-truth
instances present (Hungarian on mask IoU, pairs of IoU >= 0.5 only); a matched detection takes the identity
of its instance, so each instance becomes exactly one track. A detection that matches no instance has no
identity to take: it keeps the one the tracker gave it (and is left out where the tracker left it out), so
false positives cost the oracle what they cost the tracker, and the tracks are filtered by the same
`min_length` and `min_score`. The difference between the oracle's video AP and the tracker's is then what the
tracker lost by linking true detections wrongly (or not at all); what false positives and missed objects cost
is the detector's share, the same in both figures.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VISAnnotations
from yolovis.data.masks import to_rle
from yolovis.track.mask_iou import mask_iou
from yolovis.track.recorded import VideoDetections
from yolovis.track.results import Appearance, ResultRule, Track, tracks_to_results

ORACLE_IOU = 0.5


def match_by_iou(iou: np.ndarray, threshold: float = ORACLE_IOU) -> list[tuple[int, int]]:
    """One-to-one (row, col) pairs maximising the summed IoU among pairs with IoU >= threshold."""
    if iou.size == 0:
        return []
    allowed = iou >= threshold
    rows, cols = linear_sum_assignment(np.where(allowed, -iou, 1.0))
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def instances_per_frame(video: VideoDetections, ann: VISAnnotations) -> Iterator[tuple[list[int], list[dict]]]:
    """For each frame of one video of `ann`: the ids of the (non-crowd) instances present and their RLEs."""
    gt_tracks = [ann.tracks[i] for i in ann.tracks_by_video[video.video_id] if not ann.tracks[i].iscrowd]
    for t in range(len(video.frames)):
        present = [g for g in gt_tracks if t < len(g.segmentations) and g.segmentations[t]]
        yield [g.id for g in present], [to_rle(g.segmentations[t], video.height, video.width) for g in present]


def true_identities(video: VideoDetections, ann: VISAnnotations) -> list[dict[int, int]]:
    """Per frame of one video of `ann`, {detection index: id of the ground-truth instance it matches} (one-to-one,
    mask IoU >= 0.5; crowd regions give no identity)."""
    identities = []
    for frame, (ids, gt_rles) in zip(video.frames, instances_per_frame(video, ann), strict=True):
        if len(frame) == 0 or not ids:
            identities.append({})
            continue
        identities.append({i: ids[j] for i, j in match_by_iou(mask_iou(frame.rles, gt_rles))})
    return identities


def oracle_tracks(
    video: VideoDetections,
    ann: VISAnnotations,
    tracker_ids: list[list[int]],
    identities: list[dict[int, int]] | None = None,
) -> list[Track]:
    """The tracks of perfect association for one video of `ann` (crowd regions give no identity).

    tracker_ids[t][i]: the id the tracker gave detection i of frame t (-1 where it did not track it);
    `identities`: `true_identities(video, ann)` if already computed.
    """
    identities = true_identities(video, ann) if identities is None else identities
    by_key: dict[tuple[str, int], Track] = {}
    for t, (frame, identity) in enumerate(zip(video.frames, identities, strict=True)):
        for i in range(len(frame)):
            if i in identity:
                key = ("instance", identity[i])
            elif tracker_ids[t][i] >= 0:
                key = ("tracker", tracker_ids[t][i])
            else:
                continue
            track = by_key.get(key)
            if track is None:
                track = by_key[key] = Track(track_id=len(by_key) + 1)
            box = tuple(float(v) for v in frame.boxes[i])
            track.frames[t] = Appearance(frame.rles[i], float(frame.scores[i]), int(frame.labels[i]), box)
            track.last_frame = t
    return list(by_key.values())


def oracle_results(
    video: VideoDetections,
    ann: VISAnnotations,
    tracker_ids: list[list[int]],
    cfg: TrackerConfig,
    label_to_category: list[int] | None,
    identities: list[dict[int, int]] | None = None,
) -> list[dict]:
    """YouTube-VIS results of perfect association, filtered and scored as the tracker's (`cfg.min_length`,
    `cfg.min_score`, `score_frames`)."""
    tracks = oracle_tracks(video, ann, tracker_ids, identities)
    return tracks_to_results(tracks, video.video_id, video.length, label_to_category, ResultRule.of(cfg))


CHANGE_KINDS = ("new_track", "other_instance", "own_older")


def identity_changes(tracker_ids: list[list[int]], identities: list[dict[int, int]]) -> dict[str, int]:
    """Where a tracker lost identities, from the true instance of each detection (`true_identities`).

    Follows every instance through the frames where a detection matches it; each time the track id of its
    detection differs from the one of its last tracked detection, that is one identity change, counted by what
    took it (`new_track`: a track that starts there; `other_instance`: a track that has held another instance;
    `own_older`: an older track of this instance, back and forth) and by when: `seen_*` if the instance was
    tracked on the frame before, `after_gap_*` if frames without a tracked detection of it came between (missed,
    hidden, or scored under the tracker's thresholds). `untracked` counts true detections the tracker left out.
    """
    counts = {f"{when}_{kind}": 0 for when in ("seen", "after_gap") for kind in CHANGE_KINDS}
    counts["untracked"] = 0
    first_frame: dict[int, int] = {}
    for t, row in enumerate(tracker_ids):
        for track_id in row:
            if track_id >= 0:
                first_frame.setdefault(track_id, t)
    last: dict[int, tuple[int, int]] = {}  # instance -> (frame, track id) of its last tracked detection
    held: dict[int, set[int]] = {}  # track id -> instances it has held so far
    for t, (row, identity) in enumerate(zip(tracker_ids, identities, strict=True)):
        for i, instance in identity.items():
            track_id = row[i]
            if track_id < 0:
                counts["untracked"] += 1
                continue
            if instance in last and last[instance][1] != track_id:
                when = "seen" if last[instance][0] == t - 1 else "after_gap"
                if first_frame[track_id] == t:
                    kind = "new_track"
                elif held.get(track_id, set()) - {instance}:
                    kind = "other_instance"
                else:
                    kind = "own_older"
                counts[f"{when}_{kind}"] += 1
            last[instance] = (t, track_id)
            held.setdefault(track_id, set()).add(instance)  # a track holds one detection a frame: no other here
    return counts
