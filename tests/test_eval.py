"""The official YouTube-VIS video metrics: hand-computed cases, and agreement with an independent reference."""

from __future__ import annotations

import copy
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from eval_cases import dataset, perfect_results, random_case, rect, result, track
from ytvis_reference import reference_metrics

from yolovis.cli import main
from yolovis.eval import OFFICIAL_KEYS, ResultsError, evaluate_files, evaluate_results, evaluate_vis

# pycocotools' decode (used by the reference only) warns on NumPy 2 about __array__'s copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
H, W = 64, 80
REAL = Path(os.environ.get("YOLOVIS_REAL_VIS", Path(__file__).resolve().parents[1] / "../shared/data/real_vis"))
THRESHOLDS = np.linspace(0.5, 0.95, 10)


def one_track_case(gt_boxes: list, *result_tracks: tuple[float, list], category: int = 1) -> dict:
    gt = dataset(
        [(1, len(gt_boxes), H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, gt_boxes)}]
    )
    results = [result(1, category, score, track(H, W, boxes)) for score, boxes in result_tracks]
    return evaluate_results(gt, results, tracking=False)


BOX = (10, 10, 30, 40)


def test_perfect_results_score_one():
    gt = dataset(
        [(1, 4, H, W), (2, 3, H, W)],
        [
            {"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX, BOX, None, BOX])},
            {"video_id": 1, "category_id": 2, "segmentations": track(H, W, [None, (0, 0, 5, 5), (0, 0, 6, 6), None])},
            {"video_id": 2, "category_id": 1, "segmentations": track(H, W, [(40, 5, 70, 60)] * 3)},
        ],
    )
    m = evaluate_results(gt, perfect_results(gt))
    for key in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs", "AP80"):
        assert m[key] == pytest.approx(1.0), key
    # No track is medium or large in 64x80 frames: the official code reports -1 there.
    assert m["APm"] == m["APl"] == m["ARm"] == m["ARl"] == -1.0
    assert list(m)[:12] == list(OFFICIAL_KEYS)
    assert m["tracking"]["HOTA"] == pytest.approx(1.0) and m["tracking"]["IDF1"] == pytest.approx(1.0)
    assert m["tracking"]["IDSW"] == 0 and m["tracking"]["Frag"] == 0
    assert m["confusion"]["matrix"] == [[2, 0, 0], [0, 1, 0]]


def test_track_shifted_by_one_frame():
    # Present in frames 0-4 of 6; the result in frames 1-5: IoU = 4 / 6 = 0.667, matched at 0.50 ... 0.65.
    m = one_track_case([BOX] * 5 + [None], (0.9, [None] + [BOX] * 5))
    assert m["AP"] == pytest.approx(0.4) and m["AR100"] == pytest.approx(0.4)
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == 0.0 and m["AP80"] == 0.0


def test_track_split_in_two():
    # Frames 0-3 and 4-5 of a 6-frame track: IoUs 4/6 and 2/6. Only the first can match (at 0.50 ... 0.65).
    first, second = [BOX] * 4 + [None] * 2, [None] * 4 + [BOX] * 2
    m = one_track_case([BOX] * 6, (0.9, first), (0.8, second))
    assert m["AP"] == pytest.approx(0.4)  # the false positive ranks below the full recall: no loss
    m = one_track_case([BOX] * 6, (0.8, first), (0.9, second))
    assert m["AP"] == pytest.approx(0.2)  # ranked first, it halves the precision at recall 1
    assert m["AR100"] == pytest.approx(0.4) and m["AR1"] == 0.0  # the best-scored track alone never matches


def test_wrong_class():
    m = one_track_case([BOX] * 3, (0.9, [BOX] * 3), category=2)
    assert m["AP"] == 0.0 and m["AR100"] == 0.0
    assert m["per_category"]["class1"]["AP"] == 0.0 and m["per_category"]["class2"]["AP"] == -1.0
    assert m["confusion"]["matrix"] == [[0, 1, 0], [0, 0, 0]]  # matched regardless of class, as class 2


def test_missing_frame():
    # One of 6 frames missing: IoU 5/6 = 0.833, matched at 0.50 ... 0.80 (7 of 10 thresholds).
    m = one_track_case([BOX] * 6, (0.9, [BOX, BOX, None, BOX, BOX, BOX]))
    assert m["AP"] == pytest.approx(0.7) and m["AP80"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(1.0)


def test_iou_sums_over_frames_not_averages():
    # Frame 0: result = ground truth (20x30 px); frame 1: result covers a quarter of a 40x40 ground truth.
    # Summed: (600 + 400) / (600 + 1600) = 0.4545 (no match); averaging per-frame IoUs would give 0.625.
    gt_boxes = [BOX, (0, 0, 40, 40)]
    m = one_track_case(gt_boxes, (0.9, [BOX, (0, 0, 20, 20)]))
    assert m["AP"] == 0.0


def test_size_buckets_use_mean_area_over_frames():
    h = w = 320
    tracks = [
        {"video_id": 1, "category_id": 1, "segmentations": track(h, w, [(0, 0, 100, 100)] * 3)},  # 10000: small
        # 100x100 then 200x200, null third frame: mean (10000 + 40000) / 2 = 25000, medium.
        {"video_id": 1, "category_id": 1, "segmentations": track(h, w, [(0, 0, 100, 100), (0, 0, 200, 200), None])},
        {"video_id": 1, "category_id": 1, "segmentations": track(h, w, [(0, 0, 300, 300)] * 3)},  # 90000: large
    ]
    gt = dataset([(1, 3, h, w)], tracks)
    res = [result(1, 1, 0.9, t["segmentations"]) for t in (tracks[0], tracks[2])]  # the medium one is missed
    m = evaluate_results(gt, res, tracking=False)
    assert (m["APs"], m["APm"], m["APl"]) == pytest.approx((1.0, 0.0, 1.0))
    assert (m["ARs"], m["ARm"], m["ARl"]) == pytest.approx((1.0, 0.0, 1.0))
    assert m["AP"] == pytest.approx(67 / 101)  # recall 2/3 at precision 1: recall points 0.00 ... 0.66
    assert m["AR100"] == pytest.approx(2 / 3)
    # The bucket comes from the file's `areas`, as in the official code, not from the masks.
    gt["annotations"][0]["areas"] = [30000, 30000, 30000]
    assert evaluate_results(gt, res, tracking=False)["APm"] == pytest.approx(51 / 101)  # 2 medium, 1 found


def test_100_detections_cap_per_video_and_category():
    decoy = [(50, 50, 60, 60)] * 2
    truth = (0.5, [BOX] * 2)
    m = one_track_case([BOX] * 2, *([(0.9, decoy)] * 99), truth)  # the true track is the 100th
    assert m["AR100"] == pytest.approx(1.0) and m["AR10"] == 0.0 and m["AP"] == pytest.approx(0.01)
    m = one_track_case([BOX] * 2, *([(0.9, decoy)] * 100), truth)  # the 101st: cut
    assert m["AR100"] == 0.0 and m["AP"] == 0.0
    # Decoys of another class do not count against this class's 100.
    gt = dataset([(1, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 2)}])
    res = [result(1, 2, 0.9, track(H, W, decoy)) for _ in range(150)] + [result(1, 1, 0.5, track(H, W, [BOX] * 2))]
    assert evaluate_results(gt, res, tracking=False)["AP"] == pytest.approx(1.0)


def test_empty_results():
    gt = dataset([(1, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 2)}])
    m = evaluate_results(gt, [])
    assert m["AP"] == 0.0 and m["AR100"] == 0.0 and m["APm"] == -1.0
    assert m["tracking"]["IDF1"] == 0.0 and m["tracking"]["CLR_FN"] == 2


def test_crowd_regions_are_ignored():
    crowd_box = (40, 20, 78, 60)
    gt = dataset(
        [(1, 2, H, W)],
        [
            {"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 2)},
            {"video_id": 1, "category_id": 1, "segmentations": track(H, W, [crowd_box] * 2), "iscrowd": 1},
        ],
    )
    on_crowd = track(H, W, [crowd_box] * 2)
    res = [result(1, 1, 0.9, on_crowd), result(1, 1, 0.85, on_crowd), result(1, 1, 0.8, track(H, W, [BOX] * 2))]
    m = evaluate_results(gt, res)
    # Both hits on the crowd region are ignored (several results may match a crowd): no false positive.
    assert m["AP"] == pytest.approx(1.0) and m["AR1"] == 0.0 and m["AR10"] == pytest.approx(1.0)
    assert m["tracking"]["CLR_FP"] == 4  # crowd ground truth is left out of the tracking metrics
    gt["annotations"][1]["iscrowd"] = 0  # now a real object: the first hit matches it, the second is a duplicate
    m = evaluate_results(gt, res, tracking=False)
    assert m["AR1"] == 0.5 and m["AR10"] == pytest.approx(1.0)
    assert m["AP"] == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)  # precision 1 up to recall 0.5, then 2/3


def test_results_for_unknown_video_are_refused():
    gt = dataset([(1, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 2)}])
    with pytest.raises(ResultsError, match="result #0 \\(video 7\\): video_id is not in the annotation file"):
        evaluate_results(gt, [result(7, 1, 0.5, track(H, W, [BOX] * 2))])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_the_reference_on_imperfect_results(seed):
    gt, res = random_case(seed)
    ours = evaluate_results(gt, res, tracking=False)
    ref = reference_metrics(gt, res)
    for key in [*OFFICIAL_KEYS, "AP80"]:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key
    for name, values in ours["per_category"].items():
        assert values["AP"] == pytest.approx(ref["per_category_AP"][values["id"]], abs=1e-12), name
    assert 0.0 < ours["AP"] < 1.0  # imperfect indeed


def _subset(gt: dict, res: list, videos: int | None = None, frames: int | None = None) -> tuple[dict, list]:
    gt, res = copy.deepcopy(gt), copy.deepcopy(res)
    if videos is not None:
        keep = {v["id"] for v in sorted(gt["videos"], key=lambda v: v["id"])[:videos]}
        gt["videos"] = [v for v in gt["videos"] if v["id"] in keep]
        gt["annotations"] = [a for a in gt["annotations"] if a["video_id"] in keep]
        res = [r for r in res if r["video_id"] in keep]
    if frames is not None:
        for v in gt["videos"]:
            v["file_names"] = v["file_names"][:frames]
            v["length"] = len(v["file_names"])
        for a in gt["annotations"]:
            for key in ("segmentations", "areas", "bboxes"):
                a[key] = a[key][:frames]
        for r in res:
            r["segmentations"] = r["segmentations"][:frames]
    return gt, res


@pytest.mark.parametrize(
    "pair,cut",
    [
        (("davis17val_osvos_as_ytvis_gt.json.gz", "davis17val_rvos_as_ytvis_results.json.gz"), {"videos": 2}),
        (
            ("bdd100k_mots_b1c66a42_as_ytvis_gt.json.gz", "bdd100k_mots_b1c66a42_as_ytvis_results.json.gz"),
            {"frames": 3},
        ),
    ],
)
def test_agrees_with_the_reference_on_real_data(pair, cut):
    paths = [REAL / name for name in pair]
    if not all(p.exists() for p in paths):
        pytest.skip(f"real data absent from {REAL}")
    gt, res = (json.loads(gzip.decompress(p.read_bytes())) for p in paths)
    gt, res = _subset(gt, res, **cut)
    ours = evaluate_results(gt, res, tracking=False)
    ref = reference_metrics(gt, res)
    for key in [*OFFICIAL_KEYS, "AP80"]:
        assert ours[key] == pytest.approx(ref[key], abs=1e-12), key


def test_in_memory_and_files_agree_and_cli_writes_metrics(tmp_path, capsys):
    gt, res = random_case(5, num_videos=2)
    ann_path, res_path = tmp_path / "ann.json", tmp_path / "results.json.gz"
    ann_path.write_text(json.dumps(gt))
    res_path.write_bytes(gzip.compress(json.dumps(res).encode()))
    expected = evaluate_vis(gt, res).metrics
    assert evaluate_files(ann_path, res_path) == expected
    out, plots = tmp_path / "m" / "metrics.json", tmp_path / "plots"
    assert main(["evaluate", str(ann_path), str(res_path), "--out", str(out), "--plots", str(plots)]) == 0
    written = json.loads(out.read_text())
    assert {k: written[k] for k in OFFICIAL_KEYS} == {k: expected[k] for k in OFFICIAL_KEYS}
    assert sorted(p.name for p in plots.iterdir()) == ["ap_per_category.png", "confusion_matrix.png", "pr_curves.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots.iterdir())
    capsys.readouterr()
    assert main(["evaluate", str(ann_path), str(res_path)]) == 0
    assert "AR100" in capsys.readouterr().out


def test_cli_lists_every_problem_and_exits_2(tmp_path, capsys):
    gt = dataset([(1, 2, H, W)], [{"video_id": 1, "category_id": 1, "segmentations": track(H, W, [BOX] * 2)}])
    bad = [result(1, 9, 1.5, track(H, W, [BOX])), result(1, 1, 0.5, [rect(H + 1, W, *BOX), None])]
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(bad))
    assert main(["evaluate", str(tmp_path / "ann.json"), str(tmp_path / "res.json")]) == 2
    err = capsys.readouterr().err
    assert "result #0 (video 1): unknown category_id 9" in err
    assert "result #0 (video 1): score 1.5 is not a number in [0, 1]" in err
    assert "result #0 (video 1): 1 segmentations for a video of 2 frames" in err
    assert "result #1 (video 1, frame 0): mask size 80x65 differs from the video's 80x64" in err
    assert err.strip().splitlines()[-1].startswith("yolovis evaluate: error: ")
    assert main(["evaluate", str(tmp_path / "ann.json"), str(tmp_path / "nope.json")]) == 2
    assert "nope.json: results file not found" in capsys.readouterr().err
