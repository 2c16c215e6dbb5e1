"""`yolovis diagnose`: per-frame mask AP, the tracker's video AP and perfect association's, on hand-made
detections whose right answers are known; the command's files and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolovis.cli import main as cli_main
from yolovis.config import Config, TrackerConfig, load_config
from yolovis.data.annotations import parse_vis_annotations
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine.checkpoint import save_inference_checkpoint
from yolovis.engine.diagnose import diagnose_detections
from yolovis.eval.frame_ap import frame_mask_ap
from yolovis.track.oracle import identity_changes, match_by_iou
from yolovis.track.recorded import FrameRecord, VideoDetections

H, W, T = 60, 100, 6


def rect(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask))


def json_rle(mask: np.ndarray) -> dict:
    r = rle(mask)
    return {"size": r["size"], "counts": r["counts"].decode()}


# Instance A walks right; instance B (same class) jumps across the frame after frame 1: the paper's tracker,
# which matches a detection only where the track's last mask was, splits B in two; perfect association does not.
A = [rect(5 + 3 * t, 5, 25 + 3 * t, 20) for t in range(T)]
B = [rect(10, 35, 30, 55) if t < 2 else rect(70, 35, 90, 55) for t in range(T)]
FALSE_POSITIVE = rect(60, 2, 75, 12)  # frames 0-3, nothing there


def ground_truth() -> dict:
    video = {"id": 7, "length": T, "height": H, "width": W, "file_names": [f"v/{t:05d}.jpg" for t in range(T)]}
    annotations = [
        {"id": k + 1, "video_id": 7, "category_id": 3, "iscrowd": 0, "segmentations": [json_rle(m) for m in masks],
         "areas": [int(m.sum()) for m in masks], "bboxes": [list(mask_utils.toBbox(rle(m))) for m in masks]}
        for k, masks in enumerate((A, B))
    ]  # fmt: skip
    return {"videos": [video], "annotations": annotations, "categories": [{"id": 3, "name": "thing"}]}


def recorded(with_b: bool = True, false_positive: bool = True) -> VideoDetections:
    frames = []
    for t in range(T):
        masks, scores = [A[t]], [0.9]
        if with_b:
            masks, scores = [*masks, B[t]], [*scores, 0.8]
        if false_positive and t < 4:
            masks, scores = [*masks, FALSE_POSITIVE], [*scores, 0.4]  # tracked (>= 0.3), ranked below every truth
        boxes = np.array([mask_utils.toBbox(rle(m)) for m in masks], dtype=np.float32)
        boxes[:, 2:] += boxes[:, :2]
        labels = np.zeros(len(masks), dtype=np.int64)
        frames.append(FrameRecord(boxes, np.array(scores, np.float32), labels, [rle(m) for m in masks]))
    return VideoDetections(7, H, W, frames)


def test_match_by_iou_is_one_to_one_optimal_and_thresholded():
    iou = np.array([[0.9, 0.6], [0.8, 0.1], [0.3, 0.4]])
    # Greedy would give row 0 column 0 and leave row 1 unmatched; the optimum is 0-1 and 1-0 (sum 1.4).
    assert sorted(match_by_iou(iou)) == [(0, 1), (1, 0)]
    assert match_by_iou(np.array([[0.49]])) == [] and match_by_iou(np.zeros((0, 3))) == []


def test_frame_ap_of_half_the_instances_is_hand_computed():
    ann = parse_vis_annotations(ground_truth(), "gt")
    every = [{"video_id": 7, "frame": t, "category_id": 3, "score": 0.9, "segmentation": rle(m)}
             for t in range(T) for m in (A[t], B[t])]  # fmt: skip
    assert frame_mask_ap(ann, every)["AP"] == pytest.approx(1.0)
    only_a = [d for d in every if mask_utils.area(d["segmentation"]) == A[0].sum() and d["segmentation"]
              in [rle(m) for m in A]]  # fmt: skip
    # Recall stops at 0.5 with precision 1: 51 of COCO's 101 recall points, at every IoU threshold.
    assert len(only_a) == T and frame_mask_ap(ann, only_a)["AP"] == pytest.approx(51 / 101)


def test_perfect_association_mends_what_the_paper_tracker_splits():
    gt = ground_truth()
    greedy = TrackerConfig(method="greedy")
    d = diagnose_detections(gt, [recorded()], greedy, label_to_category=[3], gt_source="gt").summary
    assert d["frame"]["AP"] == pytest.approx(1.0)  # the detector is perfect (its false positive ranks last)
    assert d["oracle"]["AP"] == pytest.approx(1.0) and d["oracle"]["AP50"] == pytest.approx(1.0)
    assert d["tracker"]["method"] == "greedy" and d["tracker"]["AP"] < 0.9
    lost = d["lost_to_association"]["AP"]
    assert lost == pytest.approx(d["oracle"]["AP"] - d["tracker"]["AP"]) and lost > 0.1
    (video,) = d["per_video"]
    assert video["video_id"] == 7 and video["gt_tracks"] == 2 and video["AP50_lost_to_association"] >= 0
    # B's first two frames form a track shorter than min_length (3), dropped: B is found on 4 frames of 6.
    assert d["oracle"]["IDSW"] == 0 and d["tracker"]["IDF1"] < d["oracle"]["IDF1"]
    # B's jump: one identity change while tracked the frame before, to a new track; nothing else.
    assert d["identity_changes"] == {**dict.fromkeys(d["identity_changes"], 0), "seen_new_track": 1}
    assert video["identity_changes"] == 1


def test_identity_changes_are_counted_by_what_took_the_instance_and_when():
    # Two instances (10, 20), two detections per frame at most; tracker ids written by hand.
    tracker_ids = [[1, 2], [1, 2], [3, 1], [3, -1], [1], [2], [5]]
    identities = [{0: 10, 1: 20}, {0: 10, 1: 20}, {0: 10, 1: 20}, {0: 10, 1: 20}, {0: 10}, {0: 20}, {0: 10}]
    assert identity_changes(tracker_ids, identities) == {
        "seen_new_track": 1,  # frame 2: 10 -> track 3, which starts there
        "seen_other_instance": 2,  # frame 2: 20 -> track 1 (held 10); frame 4: 10 -> track 1 (held 20 since)
        "seen_own_older": 0,
        "after_gap_new_track": 1,  # frame 6: 10, unseen on frame 5, -> track 5
        "after_gap_other_instance": 0,
        "after_gap_own_older": 1,  # frame 5: 20, untracked on frame 3 and absent on 4, back to its track 2
        "untracked": 1,  # frame 3: 20's detection was not tracked
    }


def test_oracle_keeps_the_trackers_false_positive_and_the_filters():
    gt = ground_truth()
    d = diagnose_detections(gt, [recorded()], TrackerConfig(method="greedy"), [3], "gt")
    oracle = d.results["oracle"]
    assert len(oracle) == 3  # A, B, and the false positive as the tracker linked it
    fp = [r for r in oracle if r["segmentations"][4] is None and r["segmentations"][0] is not None
          and mask_utils.area(r["segmentations"][0]) == FALSE_POSITIVE.sum()]  # fmt: skip
    assert len(fp) == 1 and sum(s is not None for s in fp[0]["segmentations"]) == 4
    # A false positive shorter than min_length is dropped from both, as a user's results would drop it.
    d = diagnose_detections(gt, [recorded()], TrackerConfig(method="greedy", min_length=5), [3], "gt")
    assert len(d.results["oracle"]) == 2


def test_missing_detections_cost_the_oracle_too():
    d = diagnose_detections(ground_truth(), [recorded(with_b=False)], TrackerConfig(), [3], "gt").summary
    assert d["frame"]["AP"] == pytest.approx(51 / 101, abs=0.01)
    assert d["oracle"]["AP"] == pytest.approx(d["tracker"]["AP"]) and d["oracle"]["AP"] < 0.6


@pytest.fixture(scope="module")
def checkpoint_and_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnose")
    generate(root / "data", SynthConfig(videos=2, frames=4, classes=2, width=96, height=64, seed=5))
    cfg = load_config(Config, None, ["model.num_classes=2", "img_size=[64, 96]", "postprocess.score_threshold=0.0",
                                     "postprocess.max_per_image=5", "track.min_length=1"])  # fmt: skip
    torch.manual_seed(0)
    categories = json.loads((root / "data" / "instances.json").read_text())["categories"]
    save_inference_checkpoint(root / "model.pt", config=cfg, categories=categories)
    return root


def test_cli_writes_the_diagnosis_and_its_results(checkpoint_and_data, capsys):
    root = checkpoint_and_data
    out = root / "diag"
    args = ["diagnose", str(root / "model.pt"), str(root / "data" / "instances.json"), "--out", str(out),
            "--set", "track.method=greedy"]  # fmt: skip
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "per-frame mask AP" in printed and "perfect association" in printed and "'greedy'" in printed
    assert {p.name for p in out.iterdir()} >= {"diagnosis.json", "results_tracker.json", "results_oracle.json",
                                               "config.yaml"}  # fmt: skip
    summary = json.loads((out / "diagnosis.json").read_text())
    assert summary["tracker"]["method"] == "greedy" and len(summary["per_video"]) == 2
    for name in ("results_tracker.json", "results_oracle.json"):
        results = json.loads((out / name).read_text())
        assert all(len(r["segmentations"]) == 4 for r in results)
    assert "method: greedy" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("problem", ["missing", "malformed"])
def test_cli_bad_annotations_fail_in_one_line(checkpoint_and_data, tmp_path, capsys, problem):
    ann = tmp_path / "ann.json"
    if problem == "malformed":
        ann.write_text('{"videos": [')
    code = cli_main(["diagnose", str(checkpoint_and_data / "model.pt"), str(ann), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(ann) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "diagnosis.json").exists()
