"""`yolovis export`: the exported network (ONNX Runtime, OpenVINO) gives the checkpoint's detections and tracks;
bad folders fail in one line that names the file."""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from pycocotools import mask as mask_utils

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine.checkpoint import save_inference_checkpoint
from yolovis.engine.inference import Detector
from yolovis.errors import UserError
from yolovis.export.folder import export_checkpoint, load_exported
from yolovis.io.video import VideoWriter, open_source
from yolovis.model.detector import build_model

RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}


def _untrained_checkpoint(path, data, overrides: list[str]):
    """An untrained 3-class model for 160x96 inputs, with `overrides`, saved at `path` in `data`'s categories."""
    cfg = load_config(Config, None, ["model.num_classes=3", "img_size=[96, 160]", "postprocess.score_threshold=0.0",
                                     "postprocess.max_per_image=8", *overrides])  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.postprocess)
    with torch.no_grad():  # spread the untrained scores apart, so that no two detections tie to 1e-5
        for pred in model.head.preds:
            pred.weight.mul_(8.0)
    categories = json.loads((data / "instances.json").read_text())["categories"]
    save_inference_checkpoint(path, config=cfg, categories=categories, model=model)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    generate(root / "data", SynthConfig(videos=1, frames=6, classes=3, width=160, height=96, seed=3))
    ckpt = _untrained_checkpoint(root / "model.pt", root / "data", ["track.detection_threshold=0.0",
                                 "track.min_length=1", "track.new_track_threshold=0.0"])  # fmt: skip
    frames = [frame for _, frame in open_source(root / "data" / "JPEGImages" / "video_0000")]
    video = root / "clip.mp4"
    writer = VideoWriter(video, fps=10)
    for frame in frames:
        writer.write(frame)
    writer.close()
    return root, ckpt, frames, video


@pytest.fixture(scope="module", params=["onnx", "openvino"])
def exported(request, setup):
    pytest.importorskip(RUNTIME[request.param])
    root, ckpt, _, _ = setup
    summary = export_checkpoint(ckpt, request.param)
    assert summary.folder == root / f"model_{request.param}" and summary.max_abs_diff < 1e-4
    return request.param, summary.folder


def test_export_folder_holds_the_network_and_what_inference_needs(exported):
    fmt, folder = exported
    network = {"onnx": {"network.onnx"}, "openvino": {"network.xml", "network.bin"}}[fmt]
    assert {p.name for p in folder.iterdir()} == network | {"config.yaml", "categories.json", "roi_heads.pt"}
    loaded = load_exported(folder)
    assert loaded.network.runtime == RUNTIME[fmt] and loaded.network.input_size == (96, 160)
    assert loaded.model.backbone is None and loaded.model.mask_head is not None  # only the PyTorch part is held
    assert [c["id"] for c in loaded.categories] == [1, 2, 3]


def test_exported_detections_agree_with_the_checkpoint(setup, exported):
    _, ckpt, frames, _ = setup
    reference, runtime = Detector.from_checkpoint(ckpt), Detector.from_checkpoint(exported[1])
    assert runtime.network is not None
    compared = 0
    for want, got in zip(reference(frames), runtime(frames), strict=True):
        assert len(want) == len(got) > 0
        assert torch.equal(want.labels, got.labels)
        torch.testing.assert_close(got.boxes, want.boxes, atol=1e-2, rtol=0)  # frame pixels
        torch.testing.assert_close(got.scores, want.scores, atol=1e-5, rtol=0)
        inter = (want.masks & got.masks).flatten(1).sum(1).float()
        union = (want.masks | got.masks).flatten(1).sum(1).float()
        assert bool((inter >= 0.99 * union).all())
        compared += len(want)
    assert compared >= 6 * 4


def _segmentation_iou(a: dict | None, b: dict | None) -> float:
    if a is None or b is None:
        return float(a is None and b is None)
    return float(mask_utils.iou([a], [b], [0])[0, 0]) if a["counts"] != b["counts"] else 1.0


def test_exported_tracks_agree_with_the_checkpoint(setup, exported):
    root, ckpt, _, video = setup
    outs = {}
    for name, model in (("checkpoint", ckpt), ("exported", exported[1])):
        outs[name] = root / f"tracks_{exported[0]}_{name}"
        assert cli_main(["track", str(model), str(video), "--out", str(outs[name]), "--no-video"]) == 0
    want = json.loads((outs["checkpoint"] / "results.json").read_text())
    got = json.loads((outs["exported"] / "results.json").read_text())
    assert len(want) == len(got) > 0
    for w, g in zip(want, got, strict=True):
        assert w["category_id"] == g["category_id"] and abs(w["score"] - g["score"]) < 1e-5
        ious = [_segmentation_iou(a, b) for a, b in zip(w["segmentations"], g["segmentations"], strict=True)]
        assert min(ious) > 0.99
    rows = [(outs[k] / "tracks.txt").read_text().splitlines() for k in ("checkpoint", "exported")]
    assert [r.split(",")[:2] for r in rows[0]] == [r.split(",")[:2] for r in rows[1]]  # frames and track ids


def test_bad_exported_folders_fail_in_one_line(setup, exported, tmp_path, capsys):
    _, _, _, video = setup
    fmt, folder = exported
    broken = tmp_path / "no_network"
    broken.mkdir()
    (broken / "config.yaml").write_text((folder / "config.yaml").read_text())
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    for p in folder.iterdir():
        if p.name != "config.yaml":
            (no_config / p.name).write_bytes(p.read_bytes())
    cases = [
        ([str(tmp_path / "missing_openvino"), str(video)], "missing_openvino"),
        ([str(broken), str(video)], "no_network: holds no network file"),
        ([str(no_config), str(video)], "config.yaml: missing"),
        ([str(folder), str(video), "--img-size", "128"], "network."),
    ]
    for args, expected in cases:
        assert cli_main(["track", *args, "--out", str(tmp_path / "o")]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and expected in errors[0], (expected, errors)
    assert not (tmp_path / "o" / "results.json").exists()
    with pytest.raises(UserError, match="runs on the CPU"):
        Detector.from_checkpoint(folder, device="cuda")


def test_a_folder_written_before_mask_roi_scale_means_the_box_itself(exported, tmp_path):
    _, folder = exported
    older = tmp_path / "older"
    shutil.copytree(folder, older)
    config = yaml.safe_load((older / "config.yaml").read_text())
    del config["model"]["mask_roi_scale"]
    (older / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_exported(older)
    assert loaded.config.model.mask_roi_scale == 1.0 and loaded.model.mask_roi_scale == 1.0


def test_export_refuses_to_overwrite_a_foreign_folder(setup, tmp_path):
    pytest.importorskip("onnxruntime")
    _, ckpt, _, _ = setup
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not a folder written by"):
        export_checkpoint(ckpt, "onnx", out=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no temporary folder left behind


def test_export_without_its_packages_is_one_line_and_writes_nothing(setup, monkeypatch, capsys):
    root, ckpt, _, _ = setup
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    for fmt in ("onnx", "openvino"):
        assert cli_main(["export", str(ckpt), "--format", fmt, "--out", str(root / "nothing")]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert len(errors) == 1 and "needs onnx" in errors[0] and f"yolovis[{fmt}]" in errors[0], errors
    assert not (root / "nothing").exists()


def test_export_leaves_the_model_in_eval_mode(tmp_path):
    pytest.importorskip("onnx")  # torch's exporter writes through it (the `onnx` and `openvino` extras)
    from yolovis.config import ModelConfig
    from yolovis.export.onnx import export_onnx

    model = build_model(ModelConfig(scale="tiny", num_classes=2)).eval()
    export_onnx(model, tmp_path / "n.onnx", (64, 64))
    assert not any(m.training for m in model.modules())


def test_export_cli_takes_a_size_w_by_h_and_a_folder(setup, capsys):
    pytest.importorskip("onnxruntime")
    root, ckpt, _, _ = setup
    assert cli_main(["export", str(ckpt), "--format", "onnx", "--img-size", "64x96", "--out", str(root / "x")]) == 0
    assert "64x96 input" in capsys.readouterr().out
    assert load_exported(root / "x").network.input_size == (96, 64)
    assert np.array_equal(load_exported(root / "x").config.img_size, [96, 64])


def test_predict_diagnose_and_video_tracker_take_the_exported_folder(setup, exported, tmp_path):
    from yolovis.engine.stream import VideoTracker

    root, ckpt, _, video = setup
    ann = root / "data" / "instances.json"
    outs = {}
    for name, model in (("checkpoint", ckpt), ("exported", exported[1])):
        outs[name] = tmp_path / f"{name}.json"
        assert cli_main(["predict", str(model), str(ann), "--out", str(outs[name])]) == 0
        assert cli_main(["diagnose", str(model), str(ann), "--out", str(tmp_path / f"diag_{name}")]) == 0
    want, got = (json.loads(outs[k].read_text()) for k in ("checkpoint", "exported"))
    assert len(want) == len(got) > 0 and [r["category_id"] for r in want] == [r["category_id"] for r in got]
    tracked = list(VideoTracker.from_checkpoint(exported[1])(video))
    assert len(tracked) == 6 and all(f.detections.masks.shape[1:] == (96, 160) for f in tracked)


def test_an_exported_colour_association_head_gives_the_checkpoints_embeddings(setup, tmp_path):
    # The colour map (and the image, for the histogram) is a network output like the embedding maps: the exported
    # graph hands it to the RoI heads.
    pytest.importorskip("onnxruntime")
    root, _, frames, _ = setup
    ckpt = _untrained_checkpoint(tmp_path / "assoc.pt", root / "data", ["model.assoc_dim=16"])
    assert Detector.from_checkpoint(ckpt).model.assoc_head.colour
    summary = export_checkpoint(ckpt, "onnx")
    assert summary.max_abs_diff < 1e-4
    reference, runtime = Detector.from_checkpoint(ckpt), Detector.from_checkpoint(summary.folder)
    for want, got in zip(reference(frames[:2]), runtime(frames[:2]), strict=True):
        assert want.embeddings is not None and want.embeddings.shape == (len(want), 16 + 256)
        torch.testing.assert_close(got.embeddings, want.embeddings, atol=1e-3, rtol=0)
