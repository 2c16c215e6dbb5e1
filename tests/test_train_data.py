"""Training data from YouTube-VIS and COCO files, alone or mixed (`yolovis train ANN.json --extra ...`)."""

import json

import pytest

from yolovis.cli import main as cli_main
from yolovis.data.mixture import in_label_space, load_annotations, training_data
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine.checkpoint import read_checkpoint
from yolovis.errors import UserError


def as_coco(vis: dict, rename: dict | None = None) -> dict:
    """A YouTube-VIS dict as a COCO instances dict: each frame an image, each non-null mask an annotation."""
    images, annotations = [], []
    for v in vis["videos"]:
        for t, name in enumerate(v["file_names"]):
            images.append({"id": v["id"] * 1000 + t, "file_name": name, "width": v["width"], "height": v["height"]})
    for a in vis["annotations"]:
        for t, seg in enumerate(a["segmentations"]):
            if seg:
                annotations.append({"id": len(annotations) + 1, "image_id": a["video_id"] * 1000 + t,
                                    "category_id": a["category_id"], "segmentation": seg,
                                    "bbox": a["bboxes"][t], "iscrowd": 0})  # fmt: skip
    categories = [{**c, "name": (rename or {}).get(c["name"], c["name"])} for c in vis["categories"]]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    vis = generate(root / "vis", SynthConfig(videos=2, frames=4, classes=2, width=96, height=64, seed=4))
    (root / "coco.json").write_text(json.dumps(as_coco(vis)))
    first = vis["categories"][0]["name"]
    (root / "other.json").write_text(json.dumps(as_coco(vis, rename={first: "zebra"})))
    return root, vis


def test_formats_are_recognised(data, tmp_path):
    root, vis = data
    assert len(load_annotations(root / "vis" / "instances.json").videos) == 2
    coco = load_annotations(root / "coco.json")
    assert len(coco.videos) == 8 and all(v.length == 1 for v in coco.videos)  # one-frame videos
    (tmp_path / "x.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(UserError, match="neither a YouTube-VIS"):
        load_annotations(tmp_path / "x.json")


def test_extra_files_join_the_first_files_categories_by_name(data):
    root, vis = data
    other = load_annotations(root / "other.json")
    mapped = in_label_space(other, vis["categories"])
    assert mapped.categories == vis["categories"]
    kept = {t.category_id for t in mapped.tracks}
    assert kept == {vis["categories"][1]["id"]}  # the renamed category ("zebra") is not a training class
    assert len(mapped.tracks) == sum(t.category_id == vis["categories"][1]["id"] for t in other.tracks)
    mix = training_data(root / "vis" / "instances.json", None, [f"{root / 'coco.json'}={root / 'vis' / 'JPEGImages'}"],
                        (64, 96), None)  # fmt: skip
    assert len(mix.dataset) == 8 + 8 and len(mix.categories) == 2
    partners = mix.partner_candidates(1)
    assert partners[0] == [1] and partners[8:] == [[]] * 8  # COCO images have no other frames
    label = {c["id"]: k for k, c in enumerate(mix.categories)}
    sample = mix.dataset[8 + 1]
    assert set(sample.labels.tolist()) <= set(label.values())


def test_cli_trains_on_a_coco_file_and_on_a_mixture(data, tmp_path):
    root, _ = data
    common = ["--img-size", "96x64", "--epochs", "1", "--batch-size", "4", "--set", "train.workers=0"]
    assert cli_main(["train", str(root / "coco.json"), "--images", str(root / "vis" / "JPEGImages"),
                     "--out", str(tmp_path / "coco_run"), *common]) == 0  # fmt: skip
    ckpt = read_checkpoint(tmp_path / "coco_run" / "last.pt")
    assert [c["id"] for c in ckpt["categories"]] == [1, 2] and ckpt["state"]["global_step"] == 2  # 8 images / 4
    assert cli_main(["train", str(root / "vis" / "instances.json"), "--extra",
                     f"{root / 'coco.json'}={root / 'vis' / 'JPEGImages'}", "--out", str(tmp_path / "mix_run"),
                     "--set", "model.assoc_dim=16", *common]) == 0  # fmt: skip
    ckpt = read_checkpoint(tmp_path / "mix_run" / "last.pt")
    assert ckpt["state"]["global_step"] == 4  # 16 frames / 4
    assert ckpt["config"]["train"]["extra_data"] == [f"{root / 'coco.json'}={root / 'vis' / 'JPEGImages'}"]
    assert cli_main(["train", str(root / "vis" / "instances.json"), "--extra", str(tmp_path / "none.json"),
                     "--out", str(tmp_path / "bad"), *common]) == 2  # fmt: skip
