"""The YouTube-VIS and COCO readers: mask encodings, null and empty frames, labels, pairs/clips, the by-video
split, laziness, and bad input. `make_dataset` (also used by test_augment.py) writes a tiny dataset whose
frames are flat-coloured shapes, one colour per track, so that image and masks can be checked against each
other."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from yolovis.cli import main as cli_main
from yolovis.data import (
    YTVISDataset,
    collate_frames,
    load_coco_annotations,
    load_vis_annotations,
    split_by_video,
    subset_annotation_dict,
)
from yolovis.data import annotations as annotations_module
from yolovis.data.masks import decode_segmentation, encode_mask
from yolovis.errors import UserError

BACKGROUND = (40, 40, 40)
W, H = 64, 48
# track id -> (category id, colour, {frame: polygon}) ; video 7: tracks 1 (null at frame 1) and 2 (static);
# video 3: track 3 on frame 0 only, frames 1 and 2 empty. Ids are deliberately not contiguous.
RECT = [10, 5, 30, 5, 30, 20, 10, 20]
DIAMOND = [45, 20, 58, 32, 45, 44, 32, 32]
TRACKS = {
    1: (7, 5, (230, 30, 30), {0: RECT, 2: [v + 4 * (i % 2 == 0) for i, v in enumerate(RECT)]}),
    2: (7, 9, (30, 220, 40), {0: DIAMOND, 1: DIAMOND, 2: DIAMOND}),
    3: (3, 5, (40, 60, 230), {0: [20, 10, 50, 10, 35, 40]}),
}
VIDEOS = {7: 3, 3: 3}  # id -> length


def polygon_mask(poly: list[float]) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], H, W)))


def uncompressed_rle(mask: np.ndarray) -> dict:
    """Run lengths over the column-major pixels, starting with a run of zeros (written here, not by pycocotools)."""
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for px in flat:
        if px == value:
            run += 1
        else:
            counts.append(run)
            value, run = px, 1
    counts.append(run)
    return {"size": [H, W], "counts": [int(c) for c in counts]}


def make_dataset(root: Path, encoding: str = "rle") -> Path:
    """Frames as PNG (lossless, so colours are exact) and an annotation file with masks in `encoding`."""
    videos, annotations = [], []
    for vid, length in VIDEOS.items():
        names = [f"v{vid}/{t:03d}.png" for t in range(length)]
        videos.append({"id": vid, "width": W, "height": H, "length": length, "file_names": names})
        for t, name in enumerate(names):
            image = np.full((H, W, 3), BACKGROUND, dtype=np.uint8)
            for video_id, _, colour, polys in TRACKS.values():
                if video_id == vid and t in polys:
                    image[polygon_mask(polys[t]).astype(bool)] = colour
            (root / "JPEGImages" / name).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "JPEGImages" / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    for tid, (vid, cat, _, polys) in TRACKS.items():
        segs, boxes, areas = [], [], []
        for t in range(VIDEOS[vid]):
            if t not in polys:
                segs.append(None), boxes.append(None), areas.append(None)
                continue
            m = polygon_mask(polys[t])
            seg = {"rle": encode_mask(m), "uncompressed": uncompressed_rle(m), "polygon": [polys[t]]}[encoding]
            segs.append(seg)
            boxes.append([float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(m)))])
            areas.append(int(m.sum()))
        annotations.append(
            {
                "id": tid,
                "video_id": vid,
                "category_id": cat,
                "iscrowd": 0,
                "segmentations": segs,
                "bboxes": boxes,
                "areas": areas,
            }
        )
    categories = [{"id": 9, "name": "nine"}, {"id": 5, "name": "five"}]  # not sorted on purpose
    ann = root / "instances.json"
    ann.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": categories}))
    return ann


def find(ds: YTVISDataset, video_id: int, frame: int):
    for i in range(len(ds)):
        pos, frames = ds._items[i]
        if ds.annotations.videos[pos].id == video_id and frames[0] == frame:
            return ds[i]
    raise KeyError((video_id, frame))


@pytest.mark.parametrize("encoding", ["rle", "uncompressed", "polygon"])
def test_each_encoding_gives_the_same_masks_and_boxes(tmp_path, encoding):
    ds = YTVISDataset(make_dataset(tmp_path, encoding), img_size=(64, 64))  # 64x48 -> no resize, 8 px pad
    s = find(ds, 7, 0)
    assert s.image.shape == (3, 64, 64) and s.image.dtype == torch.uint8
    assert s.letterbox.pad_y == 8 and s.letterbox.scale == 1
    order = s.instance_ids.argsort()
    assert s.instance_ids[order].tolist() == [1, 2]
    # RECT covers x 10..30, y 5..20 -> pixels 10..29 x 5..19 (pycocotools rasterisation) -> +8 rows of padding.
    ref = np.zeros((64, 64), np.uint8)
    ref[8:56] = polygon_mask(RECT)
    assert np.array_equal(s.masks[order[0]].numpy(), ref)
    box = mask_utils.toBbox(mask_utils.encode(np.asfortranarray(polygon_mask(RECT))))
    assert s.boxes[order[0]].tolist() == pytest.approx([box[0], box[1] + 8, box[0] + box[2], box[1] + box[3] + 8])
    assert s.labels[order].tolist() == [0, 1]  # category 5 -> 0, 9 -> 1 (sorted by id)
    # the image agrees with the masks: each mask sits on its track's colour
    assert (s.image[:, s.masks[order[0]].bool()].T == torch.tensor([230, 30, 30], dtype=torch.uint8)).all()


def test_null_and_empty_frames(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64))
    assert len(ds) == 6  # every annotated frame is a sample, empty ones included
    s = find(ds, 7, 1)  # track 1 is null here
    assert s.instance_ids.tolist() == [2]
    for t in (1, 2):
        e = find(ds, 3, t)
        assert len(e) == 0
        assert e.boxes.shape == (0, 4) and e.masks.shape == (0, 64, 64) and e.labels.dtype == torch.int64
    assert len(YTVISDataset(make_dataset(tmp_path), img_size=(64, 64), skip_empty=True)) == 4
    images, targets = collate_frames([find(ds, 7, 0), find(ds, 3, 1)])
    assert images.shape == (2, 3, 64, 64) and targets[0].image is None and len(targets[1]) == 0


def test_labels_map_to_category_ids_and_back(tmp_path):
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64))
    assert ds.num_classes == 2
    assert [c["id"] for c in ds.categories] == [5, 9]
    assert [ds.label_to_category_id(i) for i in range(2)] == [5, 9]
    assert all(ds.category_id_to_label(ds.label_to_category_id(i)) == i for i in range(2))


def test_masks_are_decoded_only_for_the_frames_asked_for(tmp_path, monkeypatch):
    calls = []
    real = annotations_module.decode_segmentation
    monkeypatch.setattr(annotations_module, "decode_segmentation", lambda *a: calls.append(1) or real(*a))
    ds = YTVISDataset(make_dataset(tmp_path), img_size=(64, 64))
    assert calls == []
    find(ds, 7, 1)  # scans the index, decodes one frame: one instance
    assert len(calls) == 1


def test_pairs_and_clips(tmp_path):
    ann = make_dataset(tmp_path)
    pairs = YTVISDataset(ann, img_size=(64, 64), mode="pairs")
    assert len(pairs) == 4  # 2 videos x (3 - 1)
    first = pairs[0]
    assert [f.frame_index for f in first] == [0, 1] and first[0].video_id == first[1].video_id
    clips = YTVISDataset(ann, img_size=(64, 64), mode="clips", clip_length=2, frame_gap=2)
    assert len(clips) == 2 and [f.frame_index for f in clips[0]] == [0, 2]


def test_split_by_video_never_splits_a_video(tmp_path):
    data = {
        "videos": [
            {"id": i, "width": 8, "height": 8, "length": 1, "file_names": [f"{i}.jpg"]}
            for i in (4, 8, 15, 16, 23, 42, 50, 51, 60, 61)
        ],
        "annotations": [],
        "categories": [],
    }
    (tmp_path / "a.json").write_text(json.dumps(data))
    train, val = split_by_video(tmp_path / "a.json", val_fraction=0.3, seed=1)
    assert len(val) == 3 and not set(train) & set(val)
    assert sorted(train + val) == [v["id"] for v in data["videos"]]
    assert split_by_video(tmp_path / "a.json", 0.3, seed=1) == (train, val)  # seeded
    assert split_by_video(tmp_path / "a.json", 0.3, seed=2) != (train, val)
    held_out = subset_annotation_dict(data, val)
    assert [v["id"] for v in held_out["videos"]] == val
    # the datasets built from the split see only their videos, every frame of them
    ann = make_dataset(tmp_path)
    tr, va = split_by_video(ann, val_fraction=0.5, seed=0)
    ds_tr = YTVISDataset(ann, img_size=(64, 64), video_ids=tr)
    ds_va = YTVISDataset(ann, img_size=(64, 64), video_ids=va)
    assert {ds_tr[i].video_id for i in range(len(ds_tr))} == set(tr) and len(ds_tr) == 3 and len(ds_va) == 3


def test_coco_images_become_one_frame_videos(tmp_path):
    m = polygon_mask(RECT)
    crowd = uncompressed_rle(polygon_mask(DIAMOND))
    data = {
        "images": [{"id": 11, "file_name": "a.png", "width": W, "height": H}],
        "annotations": [
            {
                "id": 1,
                "image_id": 11,
                "category_id": 3,
                "segmentation": [RECT],
                "bbox": [10, 5, 20, 15],
                "iscrowd": 0,
                "area": 300,
            },
            {
                "id": 2,
                "image_id": 11,
                "category_id": 3,
                "segmentation": crowd,
                "bbox": [32, 20, 26, 24],
                "iscrowd": 1,
                "area": 300,
            },
        ],
        "categories": [{"id": 3, "name": "thing"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(data))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((H, W, 3), np.uint8))
    ann = load_coco_annotations(tmp_path / "coco.json")
    assert [v.length for v in ann.videos] == [1]
    ds = YTVISDataset(ann, images_dir=tmp_path, img_size=(64, 64))
    s = ds[0]
    assert s.instance_ids.tolist() == [1]  # the crowd region is left out of the targets
    assert np.array_equal(s.masks[0, 8:56].numpy(), m)
    assert YTVISDataset(ann, images_dir=tmp_path, img_size=(64, 64), include_crowd=True)[0].masks.shape[0] == 2


# ------------------------------------------------------------------------------------------------ bad input
def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_truncated_and_malformed_json_name_the_file(tmp_path):
    good = make_dataset(tmp_path).read_text()
    with pytest.raises(UserError, match=r"bad\.json: truncated JSON at line 1"):
        load_vis_annotations(_write(tmp_path, good[: len(good) // 2]))
    with pytest.raises(UserError, match=r"bad\.json: malformed JSON"):
        load_vis_annotations(_write(tmp_path, good.replace('"videos"', "videos", 1)))
    with pytest.raises(UserError, match="not found"):
        load_vis_annotations(tmp_path / "nope.json")
    gz = tmp_path / "cut.json.gz"
    gz.write_bytes(gzip.compress(good.encode())[:100])
    with pytest.raises(UserError, match=r"cut\.json\.gz: truncated or corrupt gzip"):
        load_vis_annotations(gz)


def test_wrong_list_length_names_video_and_annotation(tmp_path):
    data = json.loads(make_dataset(tmp_path).read_text())
    data["annotations"][1]["segmentations"].append(None)
    with pytest.raises(UserError, match=r"bad\.json: video 7 annotation 2: 4 segmentations for a video of 3"):
        load_vis_annotations(_write(tmp_path, data))
    data = json.loads(make_dataset(tmp_path).read_text())
    data["videos"][0]["length"] = 5
    with pytest.raises(UserError, match=r"video 7: length 5 but 3 file_names"):
        load_vis_annotations(_write(tmp_path, data))
    data = json.loads(make_dataset(tmp_path).read_text())
    data["annotations"][0]["segmentations"][2]["size"] = [10, 10]
    with pytest.raises(UserError, match=r"video 7 annotation 1 frame 2 \(v7/002.png\): mask size 10x10"):
        load_vis_annotations(_write(tmp_path, data))


def test_missing_image_and_size_mismatch_name_file_video_and_frame(tmp_path):
    ann = make_dataset(tmp_path)
    (tmp_path / "JPEGImages/v7/001.png").unlink()
    cv2.imwrite(str(tmp_path / "JPEGImages/v3/002.png"), np.zeros((10, 12, 3), np.uint8))
    ds = YTVISDataset(ann, img_size=(64, 64))
    with pytest.raises(UserError, match=r"instances\.json: video 7 frame 1: missing image .*v7/001\.png"):
        find(ds, 7, 1)
    with pytest.raises(UserError, match=r"video 3 frame 2: image .*v3/002\.png is 12x10, the annotation says 64x48"):
        find(ds, 3, 2)
    with pytest.raises(UserError, match="image folder .* not found"):
        YTVISDataset(ann, images_dir=tmp_path / "nowhere")


def test_bad_input_through_the_cli_is_one_line_and_status_2(tmp_path, capsys):
    path = _write(tmp_path, '{"videos": [')
    assert cli_main(["anchors", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("yolovis anchors: error: ") and "bad.json: truncated JSON" in err and "\n" not in err


def test_undecodable_segmentation_is_a_user_error(tmp_path):
    data = json.loads(make_dataset(tmp_path).read_text())
    data["annotations"][1]["segmentations"][0] = {"size": [H, W], "counts": [5, 5]}  # runs do not cover the frame
    ann = load_vis_annotations(_write(tmp_path, data))
    with pytest.raises(UserError, match=r"video 7 annotation 2 frame 0 \(v7/000.png\): uncompressed RLE covers 10"):
        ann.frame_instances(7, 0)
    with pytest.raises(ValueError, match="mask size"):
        decode_segmentation({"size": [4, 4], "counts": "0"}, H, W)


# ------------------------------------------------------------------------------- real files (not in the repo)
REAL = Path("/work/shared/data/real_vis")


@pytest.mark.parametrize("name", ["bdd100k_mots_b1c66a42_as_ytvis_gt.json.gz", "davis17val_osvos_as_ytvis_gt.json.gz"])
def test_real_youtube_vis_files_parse_and_decode(name):
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    raw = json.loads(gzip.decompress(path.read_bytes()))
    ann = load_vis_annotations(path)
    assert len(ann.videos) == len(raw["videos"]) and len(ann.tracks) == len(raw["annotations"])
    assert ann.num_frames == sum(len(v["file_names"]) for v in raw["videos"])
    rng = np.random.default_rng(0)
    for a in (raw["annotations"][i] for i in rng.choice(len(raw["annotations"]), 8, replace=False)):
        video = ann.video(a["video_id"])
        t = next(i for i, s in enumerate(a["segmentations"]) if s is not None)
        frame = ann.frame_instances(video.id, t)
        k = frame.track_ids.tolist().index(a["id"])
        mask = frame.masks[k]
        assert mask.shape == (video.height, video.width)
        # these files hold uncompressed RLE: compare with pycocotools' own reading of the same entry
        ref = mask_utils.decode(mask_utils.frPyObjects(a["segmentations"][t], video.height, video.width))
        assert np.array_equal(mask, ref) and int(mask.sum()) == a["areas"][t]
        nulls = sum(s is None for s in a["segmentations"])
        assert nulls == sum(s is None for s in ann.tracks[[tr.id for tr in ann.tracks].index(a["id"])].segmentations)
