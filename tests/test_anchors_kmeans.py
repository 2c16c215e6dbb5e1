"""IoU k-means anchors: the IoU against hand-computed values, known answers, the letterbox scaling and the
config file the trainer reads."""

from __future__ import annotations

import numpy as np
import pytest

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config
from yolovis.data.anchors_kmeans import kmeans_anchors, letterboxed_box_sizes, wh_iou
from yolovis.data.annotations import parse_vis_annotations


def test_wh_iou_by_hand():
    iou = wh_iou(np.array([[2.0, 2.0], [4.0, 1.0]]), np.array([[4.0, 1.0], [1.0, 1.0]]))
    # (2x2 vs 4x1): inter 2x1 = 2, union 4 + 4 - 2 = 6; (2x2 vs 1x1): 1/4; (4x1 vs 4x1): 1; (4x1 vs 1x1): 1/4
    assert iou == pytest.approx(np.array([[1 / 3, 1 / 4], [1.0, 1 / 4]]))


def test_exact_clusters_are_found_exactly():
    truth = np.array([[10.0, 10.0], [30.0, 15.0], [60.0, 80.0], [200.0, 150.0]])
    sizes = np.repeat(truth, [5, 7, 3, 9], axis=0)
    fit = kmeans_anchors(sizes, k=4, seed=0)
    assert fit.anchors == pytest.approx(truth)  # sorted by area
    assert fit.mean_best_iou == pytest.approx(1.0) and fit.num_boxes == 24


def test_noisy_clusters_and_the_mean_best_iou():
    rng = np.random.default_rng(0)
    truth = np.array([[8.0, 16.0], [32.0, 24.0], [64.0, 128.0], [300.0, 200.0]])
    sizes = np.concatenate([c * rng.uniform(0.95, 1.05, (50, 2)) for c in truth])
    fit = kmeans_anchors(sizes, k=4, seed=1)
    assert np.abs(fit.anchors / truth - 1).max() < 0.02
    assert fit.mean_best_iou == pytest.approx(wh_iou(sizes, fit.anchors).max(axis=1).mean())
    assert 0.9 < fit.mean_best_iou < 1.0
    more = kmeans_anchors(sizes, k=8, seed=1)
    assert more.mean_best_iou > fit.mean_best_iou  # more anchors never fit worse


def test_boxes_are_scaled_as_the_letterbox_scales_them():
    data = {
        "videos": [
            {"id": 1, "width": 640, "height": 480, "length": 2, "file_names": ["a", "b"]},
            {"id": 2, "width": 100, "height": 400, "length": 1, "file_names": ["c"]},
        ],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "segmentations": [None, None], "bboxes": [[0, 0, 64, 48], None]},
            {"id": 2, "video_id": 2, "category_id": 1, "segmentations": [None], "bboxes": [[5, 5, 10, 20]]},
            {
                "id": 3,
                "video_id": 2,
                "category_id": 1,
                "segmentations": [None],
                "bboxes": [[5, 5, 99, 99]],
                "iscrowd": 1,
            },
        ],
        "categories": [{"id": 1, "name": "x"}],
    }
    sizes = letterboxed_box_sizes(parse_vis_annotations(data, "mem"), 320)
    assert sizes.tolist() == [[32.0, 24.0], [8.0, 16.0]]  # 640 -> 320: x0.5; 400 high -> 320: x0.8; crowd out


def test_cli_writes_a_config_the_trainer_reads(tmp_path, capsys):
    from yolovis.data.synth import SynthConfig, generate

    generate(tmp_path / "d", SynthConfig(videos=3, frames=6, seed=2))
    out = tmp_path / "anchors.yaml"
    assert (
        cli_main(
            [
                "anchors",
                str(tmp_path / "d" / "instances.json"),
                "--per-level",
                "2",
                "--img-size",
                "320",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "mean best IoU" in printed and "level 3 (stride 32)" in printed
    cfg = load_config(Config, out)
    anchors = np.array(cfg.model.anchors)
    assert anchors.shape == (4, 2, 2) and cfg.model.anchor_img_size == 320
    areas = anchors.prod(axis=2).ravel()
    assert (np.diff(areas) >= 0).all()  # small anchors to the fine levels
