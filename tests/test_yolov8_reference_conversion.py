"""benchmarks/yolov8_reference.py's conversion of YouTube-VIS annotations to Ultralytics' segmentation format."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolovis.data.annotations import load_vis_annotations
from yolovis.data.synth import SynthConfig, generate

os.environ.setdefault("YOLO_OFFLINE", "1")  # before the import: Ultralytics probes the network at import otherwise
pytest.importorskip("ultralytics")

_SPEC = importlib.util.spec_from_file_location(
    "yolov8_reference", Path(__file__).parents[1] / "benchmarks" / "yolov8_reference.py"
)
ref = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ref)


def _fill(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The polygon rasterised as Ultralytics rasterises label polygons (cv2.fillPoly)."""
    out = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(out, [np.round(polygon).astype(np.int32)], 1)
    return out.astype(bool)


def test_instance_polygon_joins_the_pieces_of_a_mask() -> None:
    mask = np.zeros((50, 80), dtype=np.uint8)
    mask[5:20, 5:20] = 1
    mask[30:45, 50:70] = 1
    filled = _fill(ref.instance_polygon(mask), mask.shape)
    assert filled[mask.astype(bool)].all()  # both pieces, in one polygon
    assert (filled & mask.astype(bool)).sum() / (filled | mask.astype(bool)).sum() > 0.9  # plus a thin bridge


def test_instance_polygon_of_a_speck_and_of_nothing() -> None:
    mask = np.zeros((10, 10), dtype=np.uint8)
    assert ref.instance_polygon(mask) is None
    mask[4, 6] = 1
    assert ref.instance_polygon(mask).tolist() == [[6, 4], [7, 4], [7, 5], [6, 5]]  # its pixel's rectangle


def test_to_yolo_dataset_labels_every_frame_in_sorted_category_order(tmp_path: Path) -> None:
    generate(tmp_path / "synth", SynthConfig(videos=2, frames=3, classes=3, seed=0))
    data = json.loads((tmp_path / "synth" / "instances.json").read_text())
    data["categories"] = data["categories"][::-1]  # file order must not matter, only the sorted ids
    ann_file = tmp_path / "synth" / "reversed.json"
    ann_file.write_text(json.dumps(data))

    data_yaml = ref.to_yolo_dataset(ann_file, None, tmp_path / "yolo")
    spec = yaml.safe_load(data_yaml.read_text())
    ann = load_vis_annotations(ann_file)
    sorted_ids = sorted(c["id"] for c in ann.categories)
    names = {c["id"]: c["name"] for c in ann.categories}
    assert spec["names"] == {k: names[c] for k, c in enumerate(sorted_ids)}
    root = Path(spec["path"])
    assert len(list((root / spec["val"]).rglob("*.jpg"))) == len(ann.videos)  # one frame per training video
    for video in ann.videos:
        for t, name in enumerate(video.file_names):
            assert (root / spec["train"] / name).is_file()
            lines = (root / "labels" / "train" / name).with_suffix(".txt").read_text().splitlines()
            inst = ann.frame_instances(video.id, t)
            assert [int(line.split()[0]) for line in lines] == [sorted_ids.index(int(c)) for c in inst.category_ids]
            for line, mask in zip(lines, inst.masks, strict=True):
                xy = np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2)
                assert (xy >= 0).all() and (xy <= 1).all()
                filled = _fill(xy * [video.width, video.height], mask.shape)
                inside = mask.astype(bool)
                assert (filled & inside).sum() / inside.sum() > 0.9  # the polygon covers its mask
