import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolovis.config import TrackerConfig
from yolovis.model.detections import Detections
from yolovis.track import GreedyTracker, ResultRule, encode_masks, greedy_match, mask_iou, tracks_to_results

H, W = 40, 60


def dets(*objects: tuple[int, int, int, int, int], score: float = 0.9) -> Detections:
    """objects: (x0, y0, x1, y1, label) rectangles -> Detections with rectangular masks."""
    if not objects:
        return Detections.empty(H, W)
    masks = torch.zeros((len(objects), H, W), dtype=torch.bool)
    for k, (x0, y0, x1, y1, _) in enumerate(objects):
        masks[k, y0:y1, x0:x1] = True
    boxes = torch.tensor([o[:4] for o in objects], dtype=torch.float32)
    labels = torch.tensor([o[4] for o in objects])
    return Detections(boxes, torch.full((len(objects),), score), labels, masks)


def run(frames: list[Detections], cfg: TrackerConfig | None = None) -> tuple[GreedyTracker, list[list[int]]]:
    tracker = GreedyTracker(cfg or TrackerConfig(min_length=1))
    return tracker, [tracker.update(t, d) for t, d in enumerate(frames)]


def per_frame_presence(results: list[dict]) -> list[list[bool]]:
    return [[s is not None for s in r["segmentations"]] for r in results]


def test_greedy_match_by_hand():
    cost = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert greedy_match(cost, gate=0.99, margin=0.01) == [(0, 0), (1, 1)]
    # Gating: nothing below the gate.
    assert greedy_match(np.array([[0.995]]), gate=0.99, margin=0.01) == []
    # Best Friend: row 1's best is column 0, but column 0's best is row 0.
    assert greedy_match(np.array([[0.1, 0.5], [0.3, 0.6]]), gate=0.99, margin=0.01) == [(0, 0)]
    # Lonely Best Friend: the second best of row 0 is within the margin.
    assert greedy_match(np.array([[0.300, 0.305]]), gate=0.99, margin=0.01) == []
    assert greedy_match(np.zeros((0, 3)), 0.99, 0.01) == []


def test_two_objects_crossing_keep_their_identities():
    # Same class, moving towards each other, overlapping at the crossing (one passes a little lower): each
    # overlaps its own last mask more (IoU 6/14) than the other's (at most 40/160).
    frames = [dets((x, 10, x + 10, 20, 0), (50 - x, 16, 60 - x, 26, 0)) for x in range(0, 50, 4)]
    tracker, ids = run(frames)
    assert ids == [[1, 2]] * len(frames)
    # Passing exactly over each other, the mask IoU alone cannot tell them apart: the greedy tracker swaps
    # (it has no motion model, as the report's has none); the result keeps one list entry per frame anyway.
    frames = [dets((x, 10, x + 10, 20, 0), (50 - x, 11, 60 - x, 21, 0)) for x in range(0, 50, 4)]
    tracker, ids = run(frames)
    assert [len(r["segmentations"]) for r in tracker.results(1, len(frames))] == [len(frames)] * 2


def test_object_leaving_and_coming_back_within_max_age():
    frames = [dets((10, 10, 20, 20, 1)), dets(), dets(), dets((11, 10, 21, 20, 1))]
    tracker, ids = run(frames, TrackerConfig(max_age=5, min_length=1))
    assert ids == [[1], [], [], [1]]
    assert per_frame_presence(tracker.results(7, 4)) == [[True, False, False, True]]
    _, ids = run(frames, TrackerConfig(max_age=2))
    assert ids[-1] == [2]  # gone too long: a new identity


def test_new_object_in_the_middle_and_empty_frames_everywhere():
    frames = [dets(), dets((0, 0, 10, 10, 0)), dets(), dets((1, 0, 11, 10, 0), (30, 20, 40, 30, 2)), dets()]
    tracker, ids = run(frames)
    assert ids == [[], [1], [], [1, 2], []]
    results = tracker.results(3, len(frames), label_to_category=[5, 6, 7])
    assert [len(r["segmentations"]) for r in results] == [5, 5]  # one entry per frame, never more
    assert per_frame_presence(results) == [[False, True, False, True, False], [False, False, False, True, False]]
    assert [r["category_id"] for r in results] == [5, 7]
    # The masks land on their own frames: frame 3's mask of track 1 is the shifted rectangle.
    decoded = mask_utils.decode(results[0]["segmentations"][3])
    assert decoded[:10, 1:11].all() and decoded.sum() == 100
    assert isinstance(results[0]["segmentations"][1]["counts"], str)


def test_frame_clock_is_explicit_with_a_stride():
    # Only every other frame is processed (frame stride 2): the skipped frames are null, not shifted.
    tracker = GreedyTracker(TrackerConfig(min_length=1))
    for t in (0, 2, 4):
        tracker.update(t, dets((t, 0, t + 10, 10, 0)))
    (result,) = tracker.results(1, 6)
    assert per_frame_presence([result]) == [[True, False, True, False, True, False]]
    with pytest.raises(ValueError, match="increasing"):
        tracker.update(4, dets())


def test_lonely_best_friend_refuses_two_candidates_too_close_to_call():
    # One track, then two detections overlapping it equally (mirror images): no identity is given away.
    frames = [dets((20, 10, 40, 30, 0)), dets((10, 10, 30, 30, 0), (30, 10, 50, 30, 0))]
    _, ids = run(frames)
    assert ids[1] == [2, 3]
    _, ids = run(frames, TrackerConfig(new_tracks=False))  # the original: such detections are dropped
    assert ids[1] == [-1, -1]


def test_class_change_is_penalised_and_the_vote_decides():
    frames = [dets((0, 0, 10, 10, 0)), dets((0, 0, 10, 10, 1)), dets((0, 0, 10, 10, 0))]
    tracker, ids = run(frames, TrackerConfig(class_penalty=0.5, min_length=1))
    assert ids == [[1], [1], [1]]  # IoU 1 - penalty 0.5: still within the gate
    assert tracker.results(1, 3)[0]["category_id"] == 0  # voted 2 to 1
    _, ids = run(frames, TrackerConfig(class_penalty=1.0))  # cost 1.0 > gate 0.99: classes must agree
    assert ids == [[1], [2], [1]]


def test_results_drop_short_and_weak_tracks():
    frames = [dets((0, 0, 10, 10, 0), (30, 20, 40, 30, 1)), dets((0, 0, 10, 10, 0))]
    tracker, _ = run(frames, TrackerConfig(min_length=2))
    assert len(tracker.results(1, 2)) == 1
    tracker, _ = run(frames, TrackerConfig(min_score=0.95, min_length=1))
    assert tracker.results(1, 2) == []


def test_order_of_detections_does_not_change_identities():
    a, b = (0, 0, 10, 10, 0), (30, 20, 40, 30, 0)
    _, ids_ab = run([dets(a, b), dets(a, b)])
    _, ids_ba = run([dets(a, b), dets(b, a)])
    assert ids_ab[1] == [1, 2] and ids_ba[1] == [2, 1]


def test_low_scoring_detections_are_not_tracked():
    tracker = GreedyTracker(TrackerConfig(detection_threshold=0.5, min_length=1))
    low = dets((0, 0, 10, 10, 0), score=0.4)
    both = Detections.cat([low, dets((30, 20, 40, 30, 1))])
    assert tracker.update(0, both) == [-1, 1]
    assert tracker.update(1, low) == [-1]


# ------------------------------------------------------------------ SPEC §6: the original's bookkeeping bugs
def test_spec6_clock_runs_before_the_first_detection():
    # The original's frame clock stood still until the first detection: frame 3's mask landed on frame 0.
    frames = [dets(), dets(), dets(), dets((0, 0, 10, 10, 0)), dets((1, 0, 11, 10, 0))]
    tracker, _ = run(frames)
    assert per_frame_presence(tracker.results(1, 5)) == [[False, False, False, True, True]]


def test_spec6_empty_frames_advance_the_clock_once_whatever_the_number_of_tracks():
    # The original advanced the clock once per track on an empty frame: with 3 tracks, lists grew by 3.
    three = dets((0, 0, 10, 10, 0), (20, 0, 30, 10, 0), (40, 20, 50, 30, 1))
    frames = [three, dets(), dets(), three]
    tracker, ids = run(frames)
    assert ids == [[1, 2, 3], [], [], [1, 2, 3]]
    assert per_frame_presence(tracker.results(1, 4)) == [[True, False, False, True]] * 3


def test_spec6_every_list_has_the_video_length_on_random_videos():
    rng = np.random.default_rng(0)
    for _ in range(20):
        length = int(rng.integers(1, 12))
        frames, present = [], []
        for _ in range(length):
            objects = [(x, 5, x + 8, 15, int(rng.integers(0, 2))) for x in (0, 20, 40) if rng.random() < 0.5]
            frames.append(dets(*objects))
            present.append(len(objects))
        tracker, ids = run(frames)
        results = tracker.results(1, length)
        assert all(len(r["segmentations"]) == length for r in results)
        # Every tracked detection is in exactly one result, on its own frame.
        assert [sum(r["segmentations"][t] is not None for r in results) for t in range(length)] == present
        assert sum(len(i) for i in ids) == sum(present)
    with pytest.raises(ValueError, match="outside"):
        tracker.results(1, tracker.last_frame)  # a length shorter than what was tracked is a caller's bug


# ------------------------------------------------------------------ masks, RLEs, results
def test_encode_masks_equals_pycocotools_reference():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 37, 53)) < 0.3  # odd sizes
    masks[1] = False
    masks[2] = True
    reference = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    assert encode_masks(torch.from_numpy(masks)) == reference
    assert encode_masks(masks.astype(np.uint8) * 255) == reference  # any non-zero value is "in"
    assert encode_masks(np.zeros((0, 37, 53), bool)) == []


def test_mask_iou_by_hand():
    a = dets((0, 0, 10, 10, 0), (20, 0, 30, 10, 0)).masks
    b = dets((5, 0, 15, 10, 0)).masks
    iou = mask_iou(encode_masks(a), encode_masks(b))
    np.testing.assert_allclose(iou, [[50 / 150], [0.0]])
    assert mask_iou([], encode_masks(b)).shape == (0, 1)


def test_precomputed_rles_give_the_same_tracks_and_live_tracks_stay_bounded():
    frames = [dets((t % 50, 0, t % 50 + 8, 8, 0), (t % 50, 20, t % 50 + 8, 28, 1)) for t in range(0, 60, 3)]
    plain, ids_plain = run(frames)
    tracker = GreedyTracker(TrackerConfig(min_length=1, max_age=2))
    ids = [tracker.update(t, d, tracker.encode(d)) for t, d in enumerate(frames)]
    assert ids == ids_plain and tracker.results(1, 20) == plain.results(1, 20)
    # Objects that vanish for good are no longer matched against: the per-frame cost does not grow.
    for t in range(20, 40):
        tracker.update(t, dets((0, 30, 5, 35, 0)) if t % 4 == 0 else dets())
    assert len(tracker.live) <= 2 and len(tracker.tracks) >= 5


def test_tracks_to_results_drops_and_converts():
    tracker, _ = run([dets((0, 0, 10, 10, 0)), dets((0, 0, 10, 10, 1), (30, 20, 40, 30, 1))])
    (long_track,) = tracks_to_results(tracker.tracks, 9, 3, [4, 8], ResultRule(min_length=2))
    assert long_track["video_id"] == 9 and long_track["segmentations"][2] is None
    assert long_track["category_id"] == 4  # a 1-1 vote: ties go to the higher total score, equal here: first seen
    assert long_track["score"] == pytest.approx(0.9)
    rle = long_track["segmentations"][0]
    assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == 100


def test_max_age_counts_processed_frames_with_a_stride():
    # --stride 5: frames 0, 5, 10, ... are processed. Back at frame 10 after missing frame 5, the track is two
    # processed frames old, within max_age 2, though 10 frame numbers passed (the landed code counted frame
    # numbers: a new identity). With a stride of 1 the two counts are the same thing.
    tracker = GreedyTracker(TrackerConfig(max_age=2, min_length=1))
    assert tracker.update(0, dets((0, 0, 10, 10, 0))) == [1]
    assert tracker.update(5, dets()) == []
    assert tracker.update(10, dets((1, 0, 11, 10, 0))) == [1]
    assert tracker.update(15, dets()) == [] and tracker.update(20, dets()) == []
    assert tracker.update(25, dets((1, 0, 11, 10, 0))) == [2]  # three processed frames old: gone
