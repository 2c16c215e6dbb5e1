"""The results-vs-annotation check: every problem named with its result, video and frame; nothing scored."""

from __future__ import annotations

import numpy as np
import pytest
from eval_cases import dataset, rect, result, track
from pycocotools import mask as mask_utils

from yolovis.data.annotations import parse_vis_annotations
from yolovis.eval import ResultsError, check_results, evaluate_results
from yolovis.eval.checks import rle_string_totals

H, W = 24, 32
BOX = (2, 3, 12, 20)


def annotation() -> dict:
    return dataset(
        [(1, 3, H, W), (2, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 3)}]
    )


def problems(results) -> list[str]:
    gt = annotation()
    return [str(p) for p in check_results(parse_vis_annotations(gt, "ann.json"), results)]


def test_rle_string_totals_match_pycocotools():
    rng = np.random.default_rng(0)
    masks = [(rng.random((h, w)) < rng.random()).astype(np.uint8) for h, w in rng.integers(1, 50, (200, 2))]
    masks += [np.zeros((7, 9), np.uint8), np.ones((7, 9), np.uint8), np.ones((300, 400), np.uint8)]
    strings = [mask_utils.encode(np.asfortranarray(m))["counts"] for m in masks]
    totals, ok = rle_string_totals(strings)
    assert ok.all()
    assert totals.tolist() == [m.size for m in masks]
    # Corrupted strings: cut, extended, a foreign character, an endless value. None may pass.
    bad = [s[:-1] for s in strings if len(s) > 1] + [s + b"1" for s in strings] + [b"Q2~", b"o" * 12, b""]
    sizes = [m.size for m, s in zip(masks, strings, strict=True) if len(s) > 1] + [m.size for m in masks] + [1, 1, 1]
    totals, ok = rle_string_totals(bad)
    assert not np.any(ok & (totals == np.array(sizes)))


def test_valid_results_have_no_problem():
    uncompressed = {"size": [H, W], "counts": [5, 10, H * W - 15]}
    assert problems([result(1, 1, 0.3, track(H, W, [BOX, None, BOX])), result(2, 2, 1, [uncompressed, None])]) == []


def test_each_problem_is_named():
    # A compressed string whose runs cover one pixel too few (5 + 10 + H*W - 16): pycocotools accepts it.
    short = mask_utils.frPyObjects({"size": [H, W], "counts": [5, 10, H * W - 16]}, H, W)
    short = {"size": [H, W], "counts": short["counts"].decode()}
    found = problems(
        [
            result(1, 1, 0.5, track(H, W, [BOX] * 2)),  # 2 segmentations for 3 frames
            result(1, 1, 0.5, [rect(H, W + 1, *BOX), None, rect(H, W, *BOX)]),  # frame size
            result(1, 5, 0.5, track(H, W, [BOX] * 3)),  # unknown category
            result(1, 1, 0.5, [None, short, None]),  # malformed RLE
            result(2, 1, 1.01, [None, None]),  # score above 1
            result(2, 1, float("nan"), [None, None]),
            result(2, 1, "0.5", [None, None]),
            result(3, 1, 0.5, [None]),  # unknown video
            {"video_id": 1, "score": 0.5},  # missing keys
            result(2, 1, 0.5, [{"size": [H, W], "counts": [1, 2]}, None]),  # uncompressed, wrong total
            result(2, 1, 0.5, [[1, 2, 3], None]),  # polygons are no result format
        ]
    )
    assert found == [
        "result #0 (video 1): 2 segmentations for a video of 3 frames",
        "result #1 (video 1, frame 0): mask size 33x24 differs from the video's 32x24",
        "result #2 (video 1): unknown category_id 5",
        f"result #3 (video 1, frame 1): malformed RLE: covers {H * W - 1} pixels, not {H}x{W}",
        "result #4 (video 2): score 1.01 is not a number in [0, 1]",
        "result #5 (video 2): score nan is not a number in [0, 1]",
        "result #6 (video 2): score '0.5' is not a number in [0, 1]",
        "result #7 (video 3): video_id is not in the annotation file",
        "result #8 (video 1): missing key(s) ['category_id', 'segmentations']",
        f"result #9 (video 2, frame 0): malformed uncompressed RLE (runs must be >= 0 and cover {H}x{W} pixels)",
        "result #10 (video 2, frame 0): segmentation of type list, expected an RLE dict or null",
    ]


def test_nothing_is_scored_when_a_problem_exists():
    gt = annotation()
    good = result(1, 1, 0.9, track(H, W, [BOX] * 3))
    bad = result(1, 1, 0.9, track(H, W, [BOX] * 2))
    assert evaluate_results(gt, [good], tracking=False)["AP"] == pytest.approx(1.0)
    with pytest.raises(ResultsError) as e:
        evaluate_results(gt, [good, bad, bad], results_source="res.json")
    message = str(e.value)
    assert "\n" not in message and message.startswith("res.json: 2 problem(s) in the results, nothing scored: ")
    assert [p.index for p in e.value.problems] == [1, 2]


def test_results_not_a_list():
    assert problems({"video_id": 1}) == ["result #-1 (video None): expected a list of results, got dict"]
