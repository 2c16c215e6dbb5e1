"""`yolovis synth`: the YouTube-VIS layout, pycocotools-decodable masks, determinism, and the hard cases the
generator promises (occlusion, entering/leaving, vanishing, empty frames, same-class crossings)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolovis.cli import main as cli_main
from yolovis.data import YTVISDataset
from yolovis.data.synth import SynthConfig, generate
from yolovis.data.synth_shapes import random_look
from yolovis.errors import UserError


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    data = generate(root, SynthConfig(videos=10, frames=20, classes=3, seed=0))
    return root, data


def test_layout_is_youtube_vis(synth):
    root, data = synth
    assert json.loads((root / "instances.json").read_text()) == data
    assert set(data) >= {"videos", "annotations", "categories"}
    for v in data["videos"]:
        assert set(v) >= {"id", "width", "height", "length", "file_names"} and v["length"] == len(v["file_names"])
        assert all((root / "JPEGImages" / f).is_file() for f in v["file_names"])
        assert v["file_names"][0].split("/")[0] == f"video_{v['id'] - 1:04d}"
    for a in data["annotations"]:
        assert set(a) >= {"id", "video_id", "category_id", "iscrowd", "segmentations", "bboxes", "areas"}
        assert len(a["segmentations"]) == len(a["bboxes"]) == len(a["areas"]) == 20
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    assert len({c["name"] for c in data["categories"]}) == 3


def test_masks_decode_with_pycocotools_and_agree_with_boxes_and_areas(synth):
    _, data = synth
    for a in data["annotations"]:
        for seg, box, area in zip(a["segmentations"], a["bboxes"], a["areas"], strict=True):
            assert (seg is None) == (box is None) == (area is None)
            if seg is None:
                continue
            assert isinstance(seg["counts"], str) and seg["size"] == [240, 320]
            rle = {"size": seg["size"], "counts": seg["counts"].encode()}
            assert int(mask_utils.area(rle)) == area >= 16
            assert mask_utils.toBbox(rle).tolist() == pytest.approx(box)


def test_visible_masks_of_a_frame_do_not_overlap(synth):
    _, data = synth
    for v in data["videos"]:
        tracks = [a for a in data["annotations"] if a["video_id"] == v["id"]]
        for t in range(v["length"]):
            rles = [
                {"size": a["segmentations"][t]["size"], "counts": a["segmentations"][t]["counts"].encode()}
                for a in tracks
                if a["segmentations"][t] is not None
            ]
            if len(rles) > 1:
                iou = mask_utils.iou(rles, rles, [0] * len(rles))
                assert np.allclose(iou - np.eye(len(rles)), 0)


def test_the_hard_cases_are_there(synth):
    _, data = synth
    by_video: dict[int, list] = {}
    for a in data["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    vanish = enter_or_leave = empty = crossings = occluded = 0
    for v in data["videos"]:
        tracks = by_video.get(v["id"], [])
        for a in tracks:
            present = [s is not None for s in a["segmentations"]]
            first, last = present.index(True), len(present) - present[::-1].index(True) - 1
            vanish += not all(present[first : last + 1])  # absent between two appearances
            enter_or_leave += any(
                b[0] <= 0 or b[1] <= 0 or b[0] + b[2] >= 320 or b[1] + b[3] >= 240 for b in a["bboxes"] if b is not None
            )
        for t in range(v["length"]):
            here = [a for a in tracks if a["segmentations"][t] is not None]
            empty += not here
            for i, a in enumerate(here):
                for b in here[i + 1 :]:
                    ba, bb = a["bboxes"][t], b["bboxes"][t]
                    overlap = min(ba[0] + ba[2], bb[0] + bb[2]) > max(ba[0], bb[0]) and min(
                        ba[1] + ba[3], bb[1] + bb[3]
                    ) > max(ba[1], bb[1])
                    occluded += overlap
                    crossings += overlap and a["category_id"] == b["category_id"]
    assert vanish >= 1 and enter_or_leave >= 3 and empty >= 1 and crossings >= 3 and occluded >= 5


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    cfg = SynthConfig(videos=2, frames=5, classes=4, width=96, height=64, seed=7)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    generate(tmp_path / "c", SynthConfig(videos=2, frames=5, classes=4, width=96, height=64, seed=8))
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and len(a) == 11
    assert a["instances.json"] != c["instances.json"]


def test_reader_reads_what_synth_writes(synth):
    root, data = synth
    ds = YTVISDataset(root / "instances.json", img_size=(256, 320))
    assert len(ds) == 200 and ds.num_classes == 3
    s = ds[5]
    raw = [a for a in data["annotations"] if a["video_id"] == s.video_id and a["segmentations"][5] is not None]
    assert sorted(s.instance_ids.tolist()) == sorted(a["id"] for a in raw)
    for k, tid in enumerate(s.instance_ids.tolist()):
        a = next(a for a in raw if a["id"] == tid)
        x, y, w, h = a["bboxes"][5]
        assert s.boxes[k].tolist() == pytest.approx([x, y + 8, x + w, y + h + 8])  # 240 -> 256: 8 px pad
        assert ds.label_to_category_id(int(s.labels[k])) == a["category_id"]


def test_cli(tmp_path, capsys):
    assert (
        cli_main(
            [
                "synth",
                str(tmp_path / "d"),
                "--videos",
                "1",
                "--frames",
                "3",
                "--classes",
                "8",
                "--size",
                "64x48",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert "wrote 1 videos, 3 frames" in capsys.readouterr().out
    assert len(list((tmp_path / "d" / "JPEGImages" / "video_0000").glob("*.jpg"))) == 3
    assert cli_main(["synth", str(tmp_path / "e"), "--classes", "9"]) == 2
    assert "--classes must be between 1 and 8" in capsys.readouterr().err


def test_the_evaluation_checks_accept_the_ground_truth_as_results(synth):
    checks = pytest.importorskip("yolovis.eval.checks")
    from yolovis.data import load_vis_annotations

    root, data = synth
    results = [
        {"video_id": a["video_id"], "category_id": a["category_id"], "score": 1.0, "segmentations": a["segmentations"]}
        for a in data["annotations"]
    ]
    assert checks.check_results(load_vis_annotations(root / "instances.json"), results) == []


def test_hard_videos_have_long_absences_crowds_and_told_apart_instances(tmp_path, capsys):
    """`--hard`: objects hidden (occluders, exits) for several frames and seen again, videos whose objects all
    share a class, and same-class objects whose colours differ (instance_variety)."""
    out = tmp_path / "hard"
    args = ["synth", str(out), "--hard", "--videos", "4", "--frames", "30", "--size", "160x120", "--seed", "2"]
    assert cli_main(args) == 0
    data = json.loads((out / "instances.json").read_text())
    assert all(v["length"] == 30 for v in data["videos"])
    gaps = 0
    for a in data["annotations"]:
        seen = [s is not None for s in a["segmentations"]]
        first, last = seen.index(True), len(seen) - 1 - seen[::-1].index(True)
        run = longest = 0
        for visible in seen[first : last + 1]:
            run = 0 if visible else run + 1
            longest = max(longest, run)
        gaps += longest >= 3
    assert gaps >= 3  # hidden for 3+ frames, then back
    by_video: dict[int, set[int]] = {}
    for a in data["annotations"]:
        by_video.setdefault(a["video_id"], set()).add(a["category_id"])
    assert any(len(cats) == 1 for cats in by_video.values())  # a same-class crowd
    assert min(sum(a["video_id"] == v for a in data["annotations"]) for v in by_video) >= 4

    with pytest.raises(UserError, match="instance_variety"):
        SynthConfig(instance_variety=1.5).check()
    looks = [random_look(0, np.random.default_rng(k), 0.8) for k in range(4)]
    plain = [random_look(0, np.random.default_rng(k)) for k in range(4)]
    spread = np.ptp([look.colour_b for look in looks], axis=0).max()
    plain_spread = np.ptp([look.colour_b for look in plain], axis=0).max()
    assert spread > 2 * plain_spread and SynthConfig().instance_variety == 0.0  # default data: plain looks
