"""The memory tracker: online, mask-aware association that keeps identities through motion, crossings and
occlusions (`track.method: memory`, the default). The paper's tracker is `greedy.py`; this one remembers more.

Per processed frame:
1. every live track's Kalman filter (`kalman.py`) predicts its box; its last mask is moved by the predicted
   displacement of the box centre (`track.motion`);
2. stage one: the confident detections (score >= `detection_threshold`) against every live track, lost ones
   included, on cost = 1 - mask IoU (moved masks) + class penalty. Where the detections carry association
   embeddings, the appearance distance (in units of `appearance_scale`) is blended in for overlapping pairs
   (`appearance_weight`), a pair too far apart in appearance is never matched (`appearance_gate`), and a lost
   track may be found again by appearance alone near where it was (`reid_distance`, `reid_reach`). One global
   assignment (Hungarian, `assignment`) among the pairs under the gate; the confirmed tracks first, then the
   tentative ones on the detections left (`confirmed_first`, ByteTrack's order). Tracks without embeddings
   also pay for a turn: the angle between their velocity and the step to the detection (`direction_weight`,
   OC-SORT's direction consistency), which tells look-alikes apart where they cross;
3. stage two (`low_threshold` > 0, as ByteTrack): the weak detections against the tracks seen in the previous
   processed frame and left unmatched, on mask IoU alone with a stricter gate (`low_gate`);
4. stage three (`max_jump`): a confident detection that overlaps nothing continues a track of the same class
   seen at most `jump_lost_frames` frames ago within that many box sizes of its predicted centre (an object
   faster than its own size per frame, or back after a short loss);
   `appearance_gate` holds in stages two and three too: a detection that looks too different is never the track;
5. matched tracks take their detection (one batched filter update, mask, and an embedding average in which a
   detection counts less the weaker it is, `embedding_score_floor`); unmatched confident detections start
   tentative tracks, confirmed by a second hit, unless they lie mostly inside a matched detection's mask (a
   duplicate, `duplicate_overlap`); a lost track stays matchable for `max_age` processed frames.
Before all of it, where detections carry embeddings, a detection lying mostly inside a higher-scoring one of its
class (a piece of that object, or a near miss inside it) is matched at a decayed score (`contained_overlap`,
`contained_decay`): weak, it may continue a track seen a frame ago but starts none; the results keep its own score.

Only the tracks live at a frame are compared, so the cost per frame does not grow with the video; what a track
keeps for the results is an RLE per frame (`results.Track`), and for matching one mask crop and one embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from yolovis.config import TrackerConfig
from yolovis.errors import UserError
from yolovis.model.detections import Detections
from yolovis.track import kalman
from yolovis.track.greedy import greedy_match
from yolovis.track.mask_iou import MaskCrop, encode_selected, rle_boxes, shifted_crop_iou
from yolovis.track.results import Appearance, ResultRule, Track, split_final, tracks_to_results

INFEASIBLE = 1e6  # cost of a pair the gate rules out: never chosen by the assignment
REFIND_COST = 0.5  # base cost of finding a lost track again by appearance alone: any overlapping pair is cheaper
# Under this speed (box sizes per frame) a track's direction is noise, and so is the step to a detection this close.
DIRECTION_MIN_MOVE = 0.02


@dataclass
class LiveTrack:
    """A track while it can still be matched: its motion state and what it looked like last."""

    record: Track
    mean: np.ndarray  # (8,) Kalman state (cx, cy, w, h, and their velocities)
    cov: np.ndarray  # (8, 8)
    box: np.ndarray  # (4,) last observed box, xyxy
    crop: MaskCrop  # last observed mask
    label: int
    embedding: np.ndarray | None  # (D,) running average of the detections' embeddings, unit length
    hits: int = 1
    missed: int = 0  # processed frames since it was last matched

    @property
    def confirmed(self) -> bool:
        return self.hits >= 2


def assign(
    cost: np.ndarray, gate: float, method: str, margin: float = 0.0, power: float = 1.0
) -> list[tuple[int, int]]:
    """(row, col) pairs of an (N, M) cost matrix with cost <= gate: globally optimal (Hungarian) or the paper's
    greedy rules (Best Friend, Lonely Best Friend with `margin`).

    The Hungarian solver assigns every row it can, so each row also gets a private "unmatched" column: a pair is
    taken only where it beats leaving both sides alone, which maximises the summed margins (gate - cost) ** power
    rather than the number of pairs (a weak second pair must not displace a strong first one). With power 1 two
    loose pairs (margins 0.5 and 0.4) outweigh one close pair (0.8) that they would break; above 1 the close
    pair wins (0.41 against 0.64 at power 2).
    """
    if cost.size == 0:
        return []
    if method == "greedy":
        return greedy_match(cost, gate, margin)
    n, m = cost.shape
    feasible = cost <= gate
    gain = np.where(feasible, gate - cost, 0.0) ** power  # >= 0 where feasible
    padded = np.full((n, m + n), INFEASIBLE)
    padded[:, :m] = np.where(feasible, -gain, INFEASIBLE)
    padded[np.arange(n), m + np.arange(n)] = 0.0
    rows, cols = linear_sum_assignment(padded)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if c < m and feasible[r, c]]


def appearance_distance(found: np.ndarray, live: list[LiveTrack]) -> tuple[np.ndarray, np.ndarray]:
    """(which tracks have an embedding (T,), distance 1 - cos between each detection's embedding and each
    track's (D, T), in [0, 1]; 0 where the track has none)."""
    have = np.array([t.embedding is not None for t in live])
    if not have.any():
        return have, np.zeros((len(found), len(live)))
    gallery = np.stack([t.embedding if t.embedding is not None else np.zeros(found.shape[1]) for t in live])
    return have, np.clip(1.0 - found @ gallery.T, 0.0, 1.0)


def share_inside(inner: list[MaskCrop], outer: list[MaskCrop]) -> np.ndarray:
    """(len(inner), len(outer)): the share of each inner mask's own area that lies inside each outer mask."""
    iou = shifted_crop_iou(inner, outer, np.zeros((len(outer), 2)))
    areas = np.array([c.area for c in inner], dtype=np.float64)[:, None] + [c.area for c in outer]
    return iou * areas / (1.0 + iou) / np.maximum([[c.area] for c in inner], 1)  # intersection / own area


def embedding_keep(momentum: float, score_floor: float, score: float) -> float:
    """The share of a track's embedding kept when it takes a detection of this score: `momentum` at score 1,
    rising linearly to 1 (nothing taken) at `score_floor` and below; `momentum` whatever the score at floor 0."""
    if score_floor <= 0:
        return momentum
    trust = min(max((score - score_floor) / (1.0 - score_floor), 0.0), 1.0)
    return 1.0 - (1.0 - momentum) * trust


class MemoryTracker:
    """Online tracker for one video: call `update(frame_index, detections)` for each processed frame, in order.

    The interface is `GreedyTracker`'s: `encode`, `update`, `results`, and `tracks` (every track ever started).
    """

    def __init__(self, cfg: TrackerConfig | None = None) -> None:
        self.cfg = cfg or TrackerConfig(method="memory")
        if not self.cfg.assignment_power > 0:
            raise UserError(f"track.assignment_power must be positive, not {self.cfg.assignment_power}")
        if not self.cfg.appearance_scale > 0:
            raise UserError(f"track.appearance_scale must be positive, not {self.cfg.appearance_scale}")
        if not 0 <= self.cfg.embedding_score_floor < 1:
            raise UserError(f"track.embedding_score_floor must be in [0, 1), not {self.cfg.embedding_score_floor}")
        if not 0 < self.cfg.contained_overlap <= 1 or not 0 <= self.cfg.contained_decay <= 1:
            raise UserError(
                f"track.contained_overlap must be in (0, 1] and track.contained_decay in [0, 1], not "
                f"{self.cfg.contained_overlap} and {self.cfg.contained_decay}"
            )
        if not self.cfg.direction_weight >= 0:
            raise UserError(f"track.direction_weight must be >= 0, not {self.cfg.direction_weight}")
        self.tracks: list[Track] = []
        self.live: list[LiveTrack] = []
        self.last_frame = -1
        self.started = 0  # tracks started so far: ids are 1, 2, ... (tracks may leave `tracks`: pop_final)
        self.processed = 0

    # ------------------------------------------------------------------ detections the tracker takes
    @property
    def _lowest_score(self) -> float:
        low = self.cfg.low_threshold
        return low if 0 < low < self.cfg.detection_threshold else self.cfg.detection_threshold

    def tracked(self, detections: Detections) -> list[int]:
        """Indices of the detections the tracker looks at: the confident ones and, with two stages, the weak."""
        return (detections.scores >= self._lowest_score).nonzero().squeeze(1).tolist()

    def encode(self, detections: Detections) -> list[dict | None]:
        """The RLE of every detection the tracker takes, None for the others (see `GreedyTracker.encode`)."""
        return encode_selected(detections, self.tracked(detections))

    # ------------------------------------------------------------------ one frame
    def update(self, frame_index: int, detections: Detections, rles: list[dict | None] | None = None) -> list[int]:
        """Assign frame `frame_index`'s detections to tracks; returns each detection's track id (-1: not
        tracked: below the thresholds, or a weak detection that continued no track)."""
        if frame_index <= self.last_frame:
            raise ValueError(f"frames must come in increasing order: {frame_index} after {self.last_frame}")
        self.last_frame = frame_index
        self.processed += 1
        cfg = self.cfg
        rles = self.encode(detections) if rles is None else rles
        if len(rles) != len(detections):
            raise ValueError(f"frame {frame_index}: {len(rles)} RLEs for {len(detections)} detections")
        kept = self.tracked(detections)
        scores = detections.scores.tolist()
        height, width = detections.image_size
        ids = [-1] * len(detections)
        if not kept and not self.live:
            return ids

        self._predict()
        boxes = detections.boxes.numpy().astype(np.float64)
        labels = detections.labels.tolist()
        rects = rle_boxes([rles[i] for i in kept], height, width)
        masks = detections.masks.numpy() if kept else None
        crops = {i: MaskCrop.from_mask(masks[i], tuple(rects[k])) for k, i in enumerate(kept)}
        embeddings = detections.embeddings.numpy() if detections.embeddings is not None else None
        looks = embeddings if cfg.appearance_weight > 0 else None  # appearance_weight 0: appearance unused
        reported = scores  # what the results keep; matching sees a contained detection's score decayed
        if looks is not None:  # the appearance gate is what keeps the decay from costing at crossings
            scores = self._contained_decay(kept, scores, labels, crops)
            kept = [i for i in kept if scores[i] >= self._lowest_score]
        high = [i for i in kept if scores[i] >= cfg.detection_threshold]
        low = [i for i in kept if scores[i] < cfg.detection_threshold]

        # Stage one: confident detections against every live track; a tentative track (one hit, often a false
        # detection's) takes only what the confirmed tracks left, so it cannot outbid the track it sits beside.
        if cfg.confirmed_first:
            groups = [[j for j, t in enumerate(self.live) if t.confirmed == first] for first in (True, False)]
        else:
            groups = [list(range(len(self.live)))]
        pairs = []
        for tracks in groups:
            taken = {i for i, _ in pairs}
            left = [i for i in high if i not in taken]
            pairs += self._match(left, tracks, crops, labels, scores, boxes, looks, cfg.gate, True)
        matched_tracks = {j for _, j in pairs}
        # Stage two: weak detections continue the tracks that were there a frame ago and are still unmatched.
        recent = [j for j, t in enumerate(self.live) if j not in matched_tracks and t.missed == 0 and t.confirmed]
        pairs += self._match(low, recent, crops, labels, scores, boxes, looks, cfg.low_gate, False)
        # Stage three: an object that moved more than its own size since the last frame overlaps nothing yet
        # (nor does one found again after a short loss, once its mask has moved on).
        if cfg.max_jump > 0:
            matched_tracks = {j for _, j in pairs}
            matched_dets = {i for i, _ in pairs}
            left = [i for i in high if i not in matched_dets]
            recent = [
                j for j, t in enumerate(self.live) if j not in matched_tracks and t.missed <= cfg.jump_lost_frames
            ]
            pairs += self._match_by_distance(left, recent, labels, boxes, looks)

        matched_tracks = {j for _, j in pairs}
        if pairs and cfg.motion == "kalman":  # one batched filter update for every continued track
            continued = [self.live[j] for _, j in pairs]
            means, covs = kalman.update(np.stack([t.mean for t in continued]), np.stack([t.cov for t in continued]),
                                        boxes[[i for i, _ in pairs]])  # fmt: skip
            for t, m, c in zip(continued, means, covs, strict=True):
                t.mean, t.cov = m, c
        for i, j in pairs:
            self._continue(self.live[j], frame_index, i, rles[i], scores[i], reported[i], labels[i], boxes[i],
                           crops[i], embeddings[i] if embeddings is not None else None)  # fmt: skip
            ids[i] = self.live[j].record.track_id
        survivors = []
        for j, track in enumerate(self.live):
            if j not in matched_tracks:
                track.missed += 1
                # A tentative track missed once, or a lost track older than max_age (as greedy counts): forgotten.
                if not track.confirmed or track.missed >= cfg.max_age:
                    continue
            survivors.append(track)
        self.live = survivors
        matched_dets = [i for i, _ in pairs]
        duplicates = self._duplicates([i for i in high if i not in matched_dets], matched_dets, crops)
        for i in high:
            if i in matched_dets or not cfg.new_tracks or scores[i] < cfg.new_track_threshold or i in duplicates:
                continue
            track = self._start(frame_index, i, rles[i], reported[i], labels[i], boxes[i], crops[i],
                                embeddings[i] if embeddings is not None else None)  # fmt: skip
            ids[i] = track.record.track_id
        return ids

    def _predict(self) -> None:
        if not self.live or self.cfg.motion != "kalman":
            return
        means, covs = kalman.predict(np.stack([t.mean for t in self.live]), np.stack([t.cov for t in self.live]))
        for t, m, c in zip(self.live, means, covs, strict=True):
            t.mean, t.cov = m, c

    def _match(
        self,
        dets: list[int],
        tracks: list[int],
        crops: dict[int, MaskCrop],
        labels: list[int],
        scores: list[float],
        boxes: np.ndarray,
        embeddings: np.ndarray | None,
        gate: float,
        stage_one: bool,
    ) -> list[tuple[int, int]]:
        """(detection index, live-track index) pairs among `dets` x `tracks`. In stage one the appearance
        distance is part of the cost and so is a turn (`direction_weight`); otherwise appearance only gates."""
        if not dets or not tracks:
            return []
        cfg = self.cfg
        live = [self.live[j] for j in tracks]
        if cfg.motion == "kalman":
            centres = np.stack([(t.box[:2] + t.box[2:]) / 2 for t in live])
            shifts = np.stack([t.mean[:2] for t in live]) - centres
        else:
            shifts = np.zeros((len(live), 2))
        iou = shifted_crop_iou([crops[i] for i in dets], [t.crop for t in live], shifts)
        if cfg.motion == "kalman" and cfg.lost_static:  # a lost object may have stopped: its mask where last seen
            lost = [k for k, t in enumerate(live) if t.missed > 0]
            if lost:
                still = shifted_crop_iou(
                    [crops[i] for i in dets], [live[k].crop for k in lost], np.zeros((len(lost), 2))
                )
                iou[:, lost] = np.maximum(iou[:, lost], still)
        cost = 1.0 - iou
        if stage_one and embeddings is not None:
            cost = self._with_appearance(cost, iou, embeddings[dets], live, boxes[dets])
        elif embeddings is not None:
            cost = self._gate_by_appearance(cost, *appearance_distance(embeddings[dets], live))
        if cfg.fuse_score:  # a confident detection's similarity counts more (ByteTrack's fuse_score)
            cost = 1.0 - (1.0 - cost) * np.array([scores[i] for i in dets])[:, None]
        differ = np.array([labels[i] for i in dets])[:, None] != np.array([t.label for t in live])[None, :]
        cost = cost + cfg.class_penalty * differ
        if stage_one and cfg.direction_weight > 0:  # a preference among the pairs the gate allows, never a veto
            turned = np.minimum(cost + cfg.direction_weight * self._turn(live, boxes[dets]), gate)
            cost = np.where(cost <= gate, turned, cost)
        return [(dets[r], tracks[c]) for r, c in assign(cost, gate, cfg.assignment, cfg.margin, cfg.assignment_power)]

    def _turn(self, live: list[LiveTrack], found: np.ndarray) -> np.ndarray:
        """(D, T) in [0, 1]: the angle between each track's velocity and the step from where it was last seen to
        each detection's box centre, / pi (0: straight on, 1: straight back). 0 where there is no direction to
        keep: a track with an embedding (appearance decides there), one that barely moves, or a detection about
        where the track was (both under `DIRECTION_MIN_MOVE` box sizes)."""
        unseen_look = np.array([t.embedding is None for t in live])
        if not unseen_look.any():  # a model with an association head: nothing to compute, every frame
            return np.zeros((len(found), len(live)))
        seen = kalman.xyxy_to_cxcywh(np.stack([t.box for t in live]))  # (T, 4)
        size = np.sqrt(np.maximum(seen[:, 2] * seen[:, 3], 1.0))
        velocity = np.stack([t.mean[4:6] for t in live])  # (T, 2) pixels per processed frame
        speed = np.linalg.norm(velocity, axis=1)
        step = kalman.xyxy_to_cxcywh(found)[:, None, :2] - seen[None, :, :2]  # (D, T, 2)
        length = np.linalg.norm(step, axis=2)
        cosine = (step * velocity[None]).sum(2) / np.maximum(length * speed[None], 1e-9)
        defined = (speed >= DIRECTION_MIN_MOVE * size) & unseen_look
        defined = defined[None, :] & (length >= DIRECTION_MIN_MOVE * size[None, :])
        return np.where(defined, np.arccos(np.clip(cosine, -1.0, 1.0)) / np.pi, 0.0)

    def _with_appearance(self, cost: np.ndarray, iou: np.ndarray, found: np.ndarray, live: list[LiveTrack],
                         boxes: np.ndarray) -> np.ndarray:  # fmt: skip
        """The cost with the appearance distance d = 1 - cos(detection, track) in it: blended where the masks
        overlap, alone where a lost track is looked for again: within `reid_reach` box sizes of where it was
        last seen or is predicted, and only if d <= `reid_distance` (a re-find costs more than any overlap)."""
        cfg = self.cfg
        have, distance = appearance_distance(found, live)
        if not have.any():
            return cost
        w = cfg.appearance_weight
        scaled = np.minimum(distance / cfg.appearance_scale, 1.0)  # in units where another instance is near 1
        blended = np.where(have[None, :], (1 - w) * cost + w * scaled, cost)
        out = np.where(iou > 0, blended, cost)
        if cfg.reid_distance > 0:
            lost = np.array([t.missed > 0 for t in live]) & have
            centres = kalman.xyxy_to_cxcywh(boxes)[:, :2]  # (D, 2)
            seen = np.stack([kalman.xyxy_to_cxcywh(t.box)[0] for t in live])  # (T, 4) last observed
            predicted = np.stack([t.mean[:2] for t in live]) if cfg.motion == "kalman" else seen[:, :2]
            size = np.sqrt(np.maximum(seen[:, 2] * seen[:, 3], 1.0))
            from_seen = np.linalg.norm(centres[:, None] - seen[None, :, :2], axis=2)  # (D, T)
            from_predicted = np.linalg.norm(centres[:, None] - predicted[None], axis=2)
            near = np.minimum(from_seen, from_predicted) <= cfg.reid_reach * size
            refind = (iou <= 0) & lost[None, :] & near & (distance <= cfg.reid_distance)
            out = np.where(refind, REFIND_COST + distance, out)
        return self._gate_by_appearance(out, have, distance)

    def _gate_by_appearance(self, cost: np.ndarray, have: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """The cost with every pair further apart in appearance than `appearance_gate` ruled out, however well
        the masks overlap, near the track was lost or close to its predicted path (every stage)."""
        if self.cfg.appearance_gate <= 0:
            return cost
        return np.where(have[None, :] & (distance > self.cfg.appearance_gate), INFEASIBLE, cost)

    def _contained_decay(self, kept: list[int], scores: list[float], labels: list[int],
                         crops: dict[int, MaskCrop]) -> list[float]:  # fmt: skip
        """The scores matching sees: a detection whose mask lies at least `contained_overlap` inside the mask of
        a higher-scoring detection of its class counts at its score x `contained_decay`. Such a detection is
        mostly a piece of that object (part of it, hidden in part by an occluder or another object) or a near
        miss inside it; at full score it starts tracks and takes identities (soft, as Matrix NMS decays). Only
        where detections carry embeddings: there the appearance gate keeps an object that comes out from behind
        another of its class, whose first detection lies inside the other's, from taking the other's identity a
        frame later; without them that cost more than the pieces did (docs/tracking.md)."""
        cfg = self.cfg
        if cfg.contained_decay >= 1 or len(kept) < 2:
            return scores
        found = [crops[i] for i in kept]
        inside = share_inside(found, found)
        score = np.array([scores[i] for i in kept])
        label = np.array([labels[i] for i in kept])
        container = (score[None, :] > score[:, None]) & (label[None, :] == label[:, None])
        contained = ((inside >= cfg.contained_overlap) & container).any(1)
        out = list(scores)
        for k in np.flatnonzero(contained):
            out[kept[k]] = scores[kept[k]] * cfg.contained_decay
        return out

    def _duplicates(self, candidates: list[int], matched: list[int], crops: dict[int, MaskCrop]) -> set[int]:
        """Candidates for a new track whose mask lies mostly (`duplicate_overlap`) inside the mask of a detection
        that continued a track this frame: a second detection of the same object (visible masks of two objects
        barely overlap), which would otherwise start a track and steal the identity at the next frame."""
        if not candidates or not matched or self.cfg.duplicate_overlap >= 1:
            return set()
        inside = share_inside([crops[i] for i in candidates], [crops[i] for i in matched])
        return {candidates[k] for k in np.flatnonzero((inside > self.cfg.duplicate_overlap).any(1))}

    def _match_by_distance(self, dets: list[int], tracks: list[int], labels: list[int], boxes: np.ndarray,
                           embeddings: np.ndarray | None) -> list[tuple[int, int]]:  # fmt: skip
        """Pairs of the same class whose boxes are of similar size and whose centres are at most `max_jump` box
        sizes apart (from the predicted centre), on cost = that distance in box sizes; not a pair that looks
        too different (`appearance_gate`)."""
        if not dets or not tracks:
            return []
        live = [self.live[j] for j in tracks]
        predicted = np.stack([t.mean[:4] if self.cfg.motion == "kalman" else kalman.xyxy_to_cxcywh(t.box)[0]
                              for t in live])  # fmt: skip
        found = kalman.xyxy_to_cxcywh(boxes[dets])
        size = np.sqrt(np.maximum(predicted[:, 2] * predicted[:, 3], 1.0))  # (T,)
        distance = np.linalg.norm(found[:, None, :2] - predicted[None, :, :2], axis=2) / size[None, :]
        area_ratio = (found[:, None, 2] * found[:, None, 3]) / np.maximum(
            predicted[None, :, 2] * predicted[None, :, 3], 1.0
        )
        same = np.array([labels[i] for i in dets])[:, None] == np.array([t.label for t in live])[None, :]
        allowed = same & (area_ratio > 0.5) & (area_ratio < 2.0)
        cost = np.where(allowed, distance, INFEASIBLE)
        if embeddings is not None:
            cost = self._gate_by_appearance(cost, *appearance_distance(embeddings[dets], live))
        return [(dets[r], tracks[c]) for r, c in assign(cost, self.cfg.max_jump, "hungarian")]

    def _continue(self, track: LiveTrack, frame_index: int, i: int, rle: dict, score: float, reported: float,
                  label: int, box: np.ndarray, crop: MaskCrop, embedding: np.ndarray | None) -> None:  # fmt: skip
        """The track takes detection i (its motion state was updated with the others'); `score` is the one
        matching saw (`_contained_decay`), `reported` the detection's own, which the results keep."""
        track.box, track.crop, track.label = box, crop, label
        if embedding is not None:
            if track.embedding is None:
                track.embedding = embedding
            else:
                keep = embedding_keep(self.cfg.embedding_momentum, self.cfg.embedding_score_floor, score)
                mixed = keep * track.embedding + (1 - keep) * embedding
                track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
        track.hits += 1
        track.missed = 0
        track.record.frames[frame_index] = Appearance(rle, reported, label, tuple(float(v) for v in box))
        track.record.last_frame = frame_index

    def _start(self, frame_index: int, i: int, rle: dict, score: float, label: int, box: np.ndarray,
               crop: MaskCrop, embedding: np.ndarray | None) -> LiveTrack:  # fmt: skip
        self.started += 1
        record = Track(track_id=self.started)
        record.frames[frame_index] = Appearance(rle, score, label, tuple(float(v) for v in box))
        record.last_frame = frame_index
        self.tracks.append(record)
        mean, cov = kalman.initiate(box[None])
        # The first frame's objects are there from the start: nothing to confirm (as ByteTrack).
        hits = 2 if self.processed == 1 else 1
        track = LiveTrack(record, mean[0], cov[0], box, crop, label, embedding, hits=hits)
        self.live.append(track)
        return track

    def pop_final(self) -> list[Track]:
        """The tracks that can no longer be matched (see `GreedyTracker.pop_final`)."""
        final, self.tracks = split_final(self.tracks, (t.record for t in self.live))
        return final

    def results(self, video_id: int, length: int, label_to_category: list[int] | None = None) -> list[dict]:
        """YouTube-VIS results of this video: one entry per kept track, `length` segmentations, null where absent."""
        return tracks_to_results(self.tracks, video_id, length, label_to_category, ResultRule.of(self.cfg))
