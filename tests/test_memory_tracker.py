"""The memory tracker and its parts: the Kalman filter against the textbook equations, shifted mask IoU against a
full-frame reference, and scenarios the paper's greedy tracker loses (crossings, occlusions, weak detections)."""

import numpy as np
import pytest
import torch
from test_tracker import H, W, dets

from yolovis.config import TrackerConfig
from yolovis.errors import UserError
from yolovis.model.detections import Detections
from yolovis.track import kalman
from yolovis.track.build import build_tracker
from yolovis.track.greedy import GreedyTracker
from yolovis.track.mask_iou import MaskCrop, encode_masks, rle_boxes, shifted_crop_iou
from yolovis.track.memory import MemoryTracker, assign, embedding_keep


def memory(**changes) -> TrackerConfig:
    return TrackerConfig(method="memory", min_length=1, **changes)


def run(frames: list[Detections], cfg: TrackerConfig) -> tuple[MemoryTracker, list[list[int]]]:
    tracker = build_tracker(cfg)
    return tracker, [tracker.update(t, d) for t, d in enumerate(frames)]


# ------------------------------------------------------------------ Kalman filter
def test_kalman_update_is_the_textbook_formula():
    mean, cov = kalman.initiate(np.array([[10.0, 20.0, 30.0, 60.0]]))
    mean, cov = kalman.predict(mean, cov)
    z = np.array([[12.0, 21.0, 33.0, 62.0]])
    new_mean, new_cov = kalman.update(mean, cov, z)
    h = np.eye(4, 8)
    w, hh = mean[0, 2], mean[0, 3]
    r = np.diag((kalman.STD_POSITION * np.array([w, hh, w, hh])) ** 2)
    p = cov[0]
    k = p @ h.T @ np.linalg.inv(h @ p @ h.T + r)
    np.testing.assert_allclose(new_mean[0], mean[0] + k @ (kalman.xyxy_to_cxcywh(z)[0] - h @ mean[0]), rtol=1e-9)
    np.testing.assert_allclose(new_cov[0], (np.eye(8) - k @ h) @ p, rtol=1e-9, atol=1e-9)


def test_kalman_learns_a_constant_velocity():
    box = np.array([[0.0, 0.0, 20.0, 10.0]])
    mean, cov = kalman.initiate(box)
    for t in range(1, 15):
        mean, cov = kalman.predict(mean, cov)
        mean, cov = kalman.update(mean, cov, box + [3.0 * t, -1.0 * t, 3.0 * t, -1.0 * t])
    mean, _ = kalman.predict(mean, cov)
    np.testing.assert_allclose(kalman.cxcywh_to_xyxy(mean[:, :4])[0], box[0] + [45, -15, 45, -15], atol=0.5)


# ------------------------------------------------------------------ masks
def _shift_full(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    ys, xs = ys + dy, xs + dx
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    out[ys[inside], xs[inside]] = True
    return out


def test_shifted_crop_iou_equals_a_full_frame_reference():
    rng = np.random.default_rng(0)
    h, w = 50, 70
    masks = np.zeros((6, h, w), dtype=bool)
    for k in range(6):
        x0, y0 = rng.integers(5, 40), rng.integers(5, 25)
        masks[k, y0 : y0 + rng.integers(5, 20), x0 : x0 + rng.integers(5, 25)] = rng.random() < 2  # filled
        masks[k] &= rng.random((h, w)) < 0.8  # ragged
    rles = encode_masks(masks)
    rects = rle_boxes(rles, h, w)
    crops = [MaskCrop.from_mask(m, tuple(r)) for m, r in zip(masks, rects, strict=True)]
    shifts = np.array([[3, -2], [0, 0], [-7, 4]])
    got = shifted_crop_iou(crops[:3], crops[3:], shifts)
    for i in range(3):
        for j in range(3):
            b = _shift_full(masks[3 + j], *shifts[j])  # shifted inside the frame: nothing falls out here
            assert b.sum() == masks[3 + j].sum()
            union = (masks[i] | b).sum()
            assert got[i, j] == pytest.approx((masks[i] & b).sum() / union if union else 0.0)
    assert shifted_crop_iou([], crops, np.zeros((6, 2))).shape == (0, 6)


def test_rle_boxes_hold_every_pixel():
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 3:9, 10:21] = True
    masks[1, H - 1, W - 1] = True
    np.testing.assert_array_equal(rle_boxes(encode_masks(masks), H, W), [[10, 3, 21, 9], [W - 1, H - 1, W, H]])


def test_assign_is_globally_optimal_and_respects_the_gate():
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    # Greedy per row would give row 0 column 0 and leave row 1 badly placed; the global optimum crosses.
    assert sorted(assign(cost, 0.95, "hungarian")) == [(0, 1), (1, 0)]
    assert assign(np.array([[0.96]]), 0.95, "hungarian") == []
    assert assign(np.zeros((0, 2)), 0.95, "hungarian") == []


def test_assignment_power_keeps_one_close_pair_over_two_loose_ones():
    # Detection 0 overlaps track 1 closely (cost 0.2) and track 0 loosely (0.5); detection 1 only track 1 (0.6).
    cost = np.array([[0.5, 0.2], [2.0, 0.6]])
    assert sorted(assign(cost, 1.0, "hungarian")) == [(0, 0), (1, 1)]  # margins 0.5 + 0.4 > 0.8
    assert assign(cost, 1.0, "hungarian", power=2.0) == [(0, 1)]  # 0.25 + 0.16 < 0.64
    assert assign(cost, 1.0, "hungarian", power=4.0) == [(0, 1)]
    with pytest.raises(Exception, match="assignment_power must be positive"):
        MemoryTracker(memory(assignment_power=0.0))


# ------------------------------------------------------------------ scenarios
def test_same_class_objects_passing_over_each_other_keep_their_identities():
    # The greedy tracker's own test shows it swaps here (no motion model); the Kalman filter knows who goes where.
    frames = [dets((x, 10, x + 10, 20, 0), (50 - x, 11, 60 - x, 21, 0)) for x in range(0, 50, 4)]
    _, ids = run(frames, memory())
    assert ids == [[1, 2]] * len(frames)


def test_fast_object_moving_more_than_its_size_is_followed():
    # 12 px per frame, 8 px wide: consecutive masks never overlap, the moved mask does.
    frames = [dets((4 + 12 * t, 10, 12 + 12 * t, 18, 1)) for t in range(5)]
    _, ids = run(frames, memory())
    assert ids[2:] == [[1]] * 3  # the first step has no velocity yet; from then on one identity
    _, greedy_ids = run(frames, TrackerConfig(method="greedy", min_length=1))
    assert len({i for f in greedy_ids for i in f}) == 5  # the paper's tracker: a new track every frame


def test_an_object_hidden_for_several_frames_is_found_again_on_its_path():
    path = [(2 + 3 * t, 15, 12 + 3 * t, 25, 0) for t in range(14)]
    frames = [dets(path[t]) if not 5 <= t < 10 else dets() for t in range(14)]
    tracker, ids = run(frames, memory(max_age=8))
    assert {i for f in ids for i in f} == {1}
    assert len(tracker.tracks) == 1
    _, ids = run(frames, memory(max_age=3))  # lost longer than max_age processed frames: a new identity
    assert ids[10] == [2]


def test_max_age_counts_processed_frames_not_frame_numbers():
    tracker = MemoryTracker(memory(max_age=2))
    tracker.update(0, dets((0, 0, 10, 10, 0)))
    tracker.update(1, dets((0, 0, 10, 10, 0)))
    # With a stride of 5, frames 6 and 11 are the next two processed frames: the track is lost for 1, not 10.
    assert tracker.update(6, dets()) == []
    assert tracker.update(11, dets((1, 0, 11, 10, 0))) == [1]


def test_weak_detections_continue_tracks_in_the_second_stage_only():
    strong = dets((0, 0, 10, 10, 0))
    weak = dets((1, 0, 11, 10, 0), score=0.2)
    tracker, ids = run([strong, weak, strong], memory())
    assert ids == [[1], [1], [1]]
    _, ids = run([strong, weak, strong], memory(low_threshold=0.0))
    assert ids == [[1], [-1], [1]]  # one stage: the weak one is not tracked, the track survives the gap
    # A weak detection alone never starts a track.
    _, ids = run([weak, weak], memory())
    assert ids == [[-1], [-1]]


def test_a_tentative_track_missed_once_is_forgotten():
    tracker, ids = run([dets(), dets((0, 0, 10, 10, 0)), dets(), dets((0, 0, 10, 10, 0))], memory())
    # Frame 1 is not the first processed frame: its track needs a second hit, which frame 2 does not give.
    assert ids == [[], [1], [], [2]]
    _, ids = run([dets((0, 0, 10, 10, 0)), dets(), dets((0, 0, 10, 10, 0))], memory())
    assert ids == [[1], [], [1]]  # on the first frame, objects are confirmed at once


def test_a_confirmed_track_is_matched_before_a_tentative_one_beside_it():
    # Frame 1: a false detection beside the object starts a tentative track (too little inside the object's mask
    # to be a duplicate). Frame 2: the object's detection overlaps that track's mask (IoU 2/3) more than its own
    # track's (1/3); the confirmed track is served first and keeps its object.
    frames = [dets((10, 10, 30, 30, 0)), dets((10, 10, 30, 30, 0), (24, 10, 44, 30, 0)), dets((20, 10, 40, 30, 0))]
    _, ids = run(frames, memory())
    assert ids == [[1], [1, 2], [1]]
    _, ids = run(frames, memory(confirmed_first=False))  # one assignment over all: the closer tentative track wins
    assert ids == [[1], [1, 2], [2]]


def test_order_of_detections_does_not_change_identities():
    a = [(2 * t, 0, 2 * t + 10, 10, 0) for t in range(6)]
    b = [(40 - 2 * t, 20, 50 - 2 * t, 30, 0) for t in range(6)]
    _, ids_ab = run([dets(a[t], b[t]) for t in range(6)], memory())
    _, ids_ba = run([dets(a[t], b[t]) if t % 2 else dets(b[t], a[t]) for t in range(6)], memory())
    assert ids_ab == [[1, 2]] * 6
    # Listed b first at even frames: b took id 1 at frame 0 and keeps it, a keeps 2, wherever they are listed.
    assert ids_ba == [[1, 2] if t % 2 == 0 else [2, 1] for t in range(6)]


def test_appearance_tells_apart_two_objects_that_swap_places_out_of_sight():
    def frame(boxes, embeddings):
        d = dets(*boxes)
        d.embeddings = torch.tensor(embeddings, dtype=torch.float32)
        return d

    red, blue = [1.0, 0.0], [0.0, 1.0]
    left, right = (0, 10, 12, 22, 0), (40, 10, 52, 22, 0)
    frames = [frame([left, right], [red, blue])] * 3 + [dets()] * 2 + [frame([left, right], [blue, red])] * 2
    _, ids = run(frames, memory(appearance_weight=0.6, motion="none"))
    assert ids[0] == [1, 2] and ids[-1] == [2, 1]  # the colours moved: identities follow them
    _, ids = run(frames, memory(appearance_weight=0.0, motion="none"))
    assert ids[-1] == [1, 2]  # without appearance, position decides


def test_an_overlapping_detection_that_looks_different_starts_its_own_track():
    def frame(embedding):
        d = dets((0, 10, 12, 22, 0))
        d.embeddings = torch.tensor([embedding], dtype=torch.float32)
        return d

    red = [1.0, 0.0]
    near_red = [0.95, float(np.sqrt(1 - 0.95**2))]  # appearance distance 0.05
    blue = [0.0, 1.0]  # distance 1: another object where the red one was
    for later, gate, want in ((blue, 0.1, 2), (blue, 0.0, 1), (near_red, 0.1, 1)):
        _, ids = run([frame(red)] * 3 + [frame(later)], memory(motion="none", appearance_gate=gate, max_jump=0))
        assert ids[-1] == [want], (later, gate)


def test_the_appearance_gate_holds_for_weak_detections_and_jumps_too():
    def frame(box, embedding, score=0.9):
        d = dets(box, score=score)
        d.embeddings = torch.tensor([embedding], dtype=torch.float32)
        return d

    red, blue = [1.0, 0.0], [0.0, 1.0]
    near_red = [0.95, float(np.sqrt(1 - 0.95**2))]  # appearance distance 0.05, under the gate
    # Stage two: a weak detection on the track's mask continues it only if it looks like it.
    here = (0, 10, 12, 22, 0)
    for weak, gate, want in ((blue, 0.1, -1), (blue, 0.0, 1), (near_red, 0.1, 1)):
        frames = [frame(here, red), frame(here, weak, score=0.2), frame(here, red)]
        _, ids = run(frames, memory(appearance_gate=gate))
        assert ids == [[1], [want], [1]], (weak, gate)  # a weak detection starts no track; the track survives
    # Stage three: 12 px to the right of an 8 px wide object, before any velocity is known, overlaps nothing.
    start, jumped = (4, 10, 12, 18, 1), (16, 10, 24, 18, 1)
    for later, gate, want in ((blue, 0.1, 2), (blue, 0.0, 1), (near_red, 0.1, 1)):
        _, ids = run([frame(start, red), frame(jumped, later)], memory(appearance_gate=gate))
        assert ids[-1] == [want], (later, gate)


def test_a_tracks_embedding_takes_a_share_of_each_detection_that_grows_with_its_score():
    def frame(embedding, score):
        d = dets((0, 10, 12, 22, 0), score=score)
        d.embeddings = torch.tensor([embedding], dtype=torch.float32)
        return d

    red, blue = [1.0, 0.0], [0.0, 1.0]
    # momentum 0.9, floor 0.6: a detection scoring 1 gives 0.1, one scoring 0.8 half that, 0.6 or less nothing
    assert embedding_keep(0.9, 0.6, 1.0) == pytest.approx(0.9)
    assert embedding_keep(0.9, 0.6, 0.8) == pytest.approx(0.95)
    assert embedding_keep(0.9, 0.6, 0.5) == 1.0
    assert embedding_keep(0.9, 0.0, 0.3) == 0.9  # floor 0: the same share whatever the score
    for score, floor, kept in ((0.8, 0.6, 0.95), (0.5, 0.6, 1.0), (0.5, 0.0, 0.9), (1.0, 0.6, 0.9)):
        cfg = memory(embedding_score_floor=floor, appearance_weight=0.0)  # position alone matches
        tracker, ids = run([frame(red, 0.9), frame(blue, score)], cfg)
        assert ids == [[1], [1]]
        mixed = kept * np.array(red) + (1 - kept) * np.array(blue)
        np.testing.assert_allclose(tracker.live[0].embedding, mixed / np.linalg.norm(mixed), rtol=1e-6)
    with pytest.raises(UserError, match="embedding_score_floor"):
        MemoryTracker(memory(embedding_score_floor=1.0))


def test_a_piece_inside_a_higher_scoring_detection_does_not_continue_another_track():
    # Frame 0: two objects of one class, overlapping (1 and 2). Frame 1: only the first is seen. Frame 2: the first
    # again, and a piece of it (all inside its mask) that overlaps where the second was last seen (IoU 0.375): at
    # full score the piece continues the second track; decayed (0.8 x 0.3, weak) it may only continue a track seen
    # on the frame before, and the second was not.
    # Every detection looks alike (one embedding): appearance tells nothing here. Without embeddings the rule is off.
    first, second, piece = (0, 0, 20, 20, 0), (14, 0, 30, 20, 0), (14, 0, 20, 20, 0)
    frames = [dets(first, second), dets(first), dets(first, piece)]
    frames[2].scores = torch.tensor([0.9, 0.8])
    _, ids = run(frames, memory())
    assert ids[2] == [1, 2]
    for d in frames:
        d.embeddings = torch.ones((len(d), 1))
    _, ids = run(frames, memory(contained_decay=1.0))
    assert ids[2] == [1, 2]
    _, ids = run(frames, memory(appearance_weight=0.0))  # appearance unused: no gate, no decay
    assert ids[2] == [1, 2]
    tracker, ids = run(frames, memory())
    assert ids[2] == [1, -1]
    # An object's own detection inside a larger one that looks different (the appearance gate keeps the larger one
    # off its track): decayed and weak, it continues its track in stage two; the results keep its own score.
    frames = [dets((0, 0, 20, 20, 0)), dets((0, 0, 40, 20, 0), (0, 0, 20, 20, 0))]
    frames[1].scores = torch.tensor([0.95, 0.8])
    frames[0].embeddings, frames[1].embeddings = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    tracker, ids = run(frames, memory())
    assert ids == [[1], [2, 1]]
    assert tracker.tracks[0].frames[1].score == pytest.approx(0.8)
    for key, value in (("contained_overlap", 0.0), ("contained_overlap", 1.5), ("contained_decay", -0.1)):
        with pytest.raises(UserError, match="contained_"):
            MemoryTracker(memory(**{key: value}))


def test_appearance_scale_lets_a_clear_appearance_difference_outweigh_a_small_overlap_difference():
    def frame(objects, angles):
        d = dets(*objects)
        d.embeddings = torch.tensor([[np.cos(a), np.sin(a)] for a in angles], dtype=torch.float32)
        return d

    a, b = 0.0, np.radians(31.18)  # the two tracks: 0.144 apart
    seen = frame([(0, 10, 10, 20, 0), (12, 10, 22, 20, 0)], [a, b])
    # One detection overlapping A more (IoU 1/3 against 0.18) but 0.08 from A's look and 0.01 from B's.
    later = frame([(5, 10, 15, 20, 0)], [np.arccos(0.92)])
    for scale, want in ((1.0, 1), (0.2, 2)):
        # At appearance_weight 0.5: raw distances: A costs 0.5 x 0.667 + 0.5 x 0.08 = 0.37 against B's 0.5 x 0.824
        # + 0.5 x 0.01 = 0.42; in units of 0.2: A 0.33 + 0.5 x 0.4 = 0.53 against B 0.41 + 0.5 x 0.05 = 0.44
        cfg = memory(motion="none", max_jump=0, appearance_scale=scale, appearance_weight=0.5)
        _, ids = run([seen] * 3 + [later], cfg)
        assert ids[-1] == [want], scale
    with pytest.raises(UserError, match="appearance_scale must be positive"):
        MemoryTracker(memory(appearance_scale=0.0))


def test_memory_tracker_results_have_one_entry_per_frame():
    rng = np.random.default_rng(3)
    for _ in range(10):
        length = int(rng.integers(1, 15))
        frames = []
        for _ in range(length):
            objects = [(x, 5, x + 8, 15, int(rng.integers(0, 2))) for x in (0, 20, 40) if rng.random() < 0.6]
            frames.append(dets(*objects, score=float(rng.uniform(0.05, 1.0))))
        tracker, ids = run(frames, memory())
        results = tracker.results(1, length)
        assert all(len(r["segmentations"]) == length for r in results)
        tracked = [sum(i >= 0 for i in f) for f in ids]
        assert [sum(r["segmentations"][t] is not None for r in results) for t in range(length)] == tracked


def test_short_tracks_rank_by_their_evidence_and_the_papers_tracker_by_the_plain_mean():
    # Object A on frames 0-7 (score 0.6), object B on frames 0-2 only (0.9): by the mean alone B ranks first.
    frames = [dets((0, 0, 10, 10, 0), (30, 0, 40, 10, 0)) for _ in range(3)] + [dets((0, 0, 10, 10, 0))] * 5
    for d in frames:
        d.scores = torch.tensor([0.6, 0.9][: len(d)])
    scores = {}
    for method, score_frames in (("memory", 6), ("memory", 0), ("greedy", 6)):
        tracker, _ = run(frames, TrackerConfig(method=method, min_length=1, score_frames=score_frames))
        scores[method, score_frames] = sorted(round(r["score"], 6) for r in tracker.results(1, len(frames)))
    assert scores["memory", 6] == [0.45, 0.6]  # B: 0.9 x 3 / 6; A, seen on 8 >= 6 frames: its mean
    assert scores["memory", 0] == [0.6, 0.9] == scores["greedy", 6]  # SPEC §5: greedy ignores score_frames


def test_track_method_selects_the_tracker():
    assert isinstance(build_tracker(TrackerConfig(method="greedy")), GreedyTracker)
    assert isinstance(build_tracker(TrackerConfig(method="memory")), MemoryTracker)
    with pytest.raises(Exception, match="track.method 'sort' is unknown"):
        build_tracker(TrackerConfig(method="sort"))


def test_a_lost_object_is_found_again_by_appearance_within_reach_only():
    def frame(box, embedding):
        d = dets(box)
        d.embeddings = torch.tensor([embedding], dtype=torch.float32)
        return d

    look = [0.6, 0.8]
    # Seen on the left for 3 frames, gone for 3, back further right without any overlap, same look: the same
    # object (a re-find costs more than an overlap, but it is the only candidate here).
    frames = [frame((0, 10, 10, 20, 0), look)] * 3 + [dets()] * 3 + [frame((25, 10, 35, 20, 0), look)]
    _, ids = run(frames, memory(motion="none"))
    assert ids[-1] == [1]
    # Too far (reach 1 box size), or looking different (distance above reid_distance): a new identity.
    _, ids = run(frames, memory(motion="none", reid_reach=1.0))
    assert ids[-1] == [2]
    _, ids = run(frames[:-1] + [frame((25, 10, 35, 20, 0), [0.8, -0.6])], memory(motion="none"))
    assert ids[-1] == [2]
    # Without embeddings nothing is re-found that does not overlap.
    plain = [dets((0, 10, 10, 20, 0))] * 3 + [dets()] * 3 + [dets((25, 10, 35, 20, 0))]
    _, ids = run(plain, memory(motion="none"))
    assert ids[-1] == [2]


def test_a_lost_object_that_stopped_is_found_where_it_was():
    # Moving right 4 px per frame, then hidden 3 frames, during which it stopped: the Kalman filter predicts it
    # further right; its mask where it was last seen still overlaps (`lost_static`, off by default).
    frames = [dets((4 * t, 10, 4 * t + 12, 22, 0)) for t in range(6)] + [dets()] * 3
    frames += [dets((21, 10, 33, 22, 0))] * 2
    _, ids = run(frames, memory(max_jump=0.0, lost_static=True))
    assert ids[-1] == [1]
    _, ids = run(frames, memory(max_jump=0.0))
    assert ids[-1] == [2]


def test_a_turn_costs_in_proportion_to_its_angle_and_only_where_there_is_a_direction():
    tracker = MemoryTracker(memory())
    for t in range(6):  # moving right at 4 px a frame, 10 px wide
        tracker.update(t, dets((4 * t, 10, 4 * t + 10, 20, 0)))
    (track,) = tracker.live
    last = (track.box[:2] + track.box[2:]) / 2
    steps = np.array([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0], [0.1, 0.0]])  # on, back, sideways, about where it was
    found = np.concatenate([last + steps - 5, last + steps + 5], axis=1)
    turn = tracker._turn([track], found)[:, 0]
    vx, vy = track.mean[4:6]
    sideways = np.degrees(np.arctan2(vx, vy)) / 180  # the velocity is not exactly horizontal after 6 frames
    np.testing.assert_allclose(turn, [0.0, 1.0, sideways, 0.0], atol=0.02)
    track.mean[4:6] = 0.05  # under 0.02 box sizes a frame: no direction to keep
    assert not tracker._turn([track], found).any()
    track.mean[4:6] = (vx, vy)
    track.embedding = np.array([1.0, 0.0])  # appearance decides where there is some
    assert not tracker._turn([track], found).any()
    with pytest.raises(UserError, match="direction_weight must be >= 0"):
        MemoryTracker(memory(direction_weight=-0.1))


def test_a_track_keeps_its_direction_when_a_look_alike_behind_it_overlaps_its_prediction_more():
    # The object speeds up (1 px a frame, then 5): its prediction lags, and a look-alike that appears behind it
    # overlaps the lagging prediction more than the object itself does.
    seen = [dets((t, 10, t + 10, 20, 0)) for t in range(4)]
    ahead, behind = (8, 10, 18, 20, 0), (1, 10, 11, 20, 0)
    for objects, want in (((ahead, behind), [1, 2]), ((behind, ahead), [2, 1])):  # either order
        _, ids = run([*seen, dets(*objects)], memory())
        assert ids[-1] == want
        _, ids = run([*seen, dets(*objects)], memory(direction_weight=0.0))  # by overlap alone: the one behind
        assert ids[-1] == want[::-1]
