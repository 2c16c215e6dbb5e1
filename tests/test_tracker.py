import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolovis.config import TrackerConfig
from yolovis.model.detections import Detections
from yolovis.track import GreedyTracker, greedy_match

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
