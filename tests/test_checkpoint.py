"""Checkpoints and configs of earlier versions keep loading; the anchors have one home (the config)."""

import pytest
import torch
import yaml

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config, to_dict
from yolovis.engine.checkpoint import CHECKPOINT_FORMAT, load_init_weights, load_model, save_inference_checkpoint
from yolovis.engine.inference import Detector
from yolovis.model import build_model

OTHER_ANCHORS = [[[float(4 + i + 10 * level), float(5 + i + 10 * level)] for i in range(6)] for level in range(4)]


def legacy_checkpoint(path, anchors_in_weights):
    """A checkpoint as version 0.1 wrote it: the anchors also stored as a buffer in the weights, and the mask
    proposals under their old key."""
    cfg = load_config(Config, None, ["model.num_classes=2"])
    model = build_model(cfg.model)
    weights = {**model.state_dict(), "anchors": torch.tensor(anchors_in_weights)}
    config = to_dict(cfg)
    config["train"]["mask_proposals_per_image"] = config["model"].pop("train_proposals")
    for key in ("train_proposal_score", "train_proposal_nms"):
        config["model"].pop(key)
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    torch.save({"format": CHECKPOINT_FORMAT, "model": weights, "ema": None, "config": config,
                "categories": categories}, path)  # fmt: skip
    return cfg


def test_a_checkpoint_of_version_0_1_loads(tmp_path):
    cfg = legacy_checkpoint(tmp_path / "old.pt", Config().model.anchors)
    with pytest.warns(UserWarning, match="'train.mask_proposals_per_image' is now 'model.train_proposals'"):
        model, config, _ = load_model(tmp_path / "old.pt")
    assert config.model.train_proposals == cfg.model.train_proposals
    torch.testing.assert_close(model.anchors, torch.tensor(cfg.model.anchors))
    assert "anchors" not in model.state_dict()  # saved once, in the config


def test_a_config_written_before_mask_roi_scale_means_the_box_itself(tmp_path):
    legacy_checkpoint(tmp_path / "old.pt", Config().model.anchors)
    ckpt = torch.load(tmp_path / "old.pt", weights_only=False)
    assert ckpt["config"]["model"].pop("mask_roi_scale") == Config().model.mask_roi_scale
    torch.save(ckpt, tmp_path / "older.pt")
    with pytest.warns(UserWarning, match="mask_proposals_per_image"):
        model, config, _ = load_model(tmp_path / "older.pt")
    assert config.model.mask_roi_scale == 1.0 and model.mask_roi_scale == 1.0


def test_old_weights_anchors_that_differ_from_the_config_win_with_a_warning(tmp_path):
    legacy_checkpoint(tmp_path / "old.pt", OTHER_ANCHORS)
    with pytest.warns(UserWarning, match="anchors differ"):
        model, config, _ = load_model(tmp_path / "old.pt")
    assert config.model.anchors == OTHER_ANCHORS  # what the network was trained with
    torch.testing.assert_close(model.anchors, torch.tensor(OTHER_ANCHORS))


def test_init_from_another_checkpoint_keeps_the_configured_anchors(tmp_path):
    source = load_config(Config, None, ["model.num_classes=2"])
    source.model.anchors = OTHER_ANCHORS
    save_inference_checkpoint(tmp_path / "a.pt", config=source)
    target = build_model(load_config(Config, None, ["model.num_classes=2"]).model)
    before = target.anchors.clone()
    copied, total = load_init_weights(target, tmp_path / "a.pt")
    assert copied == total
    torch.testing.assert_close(target.anchors, before)
    assert not torch.equal(target.anchors, torch.tensor(OTHER_ANCHORS))


def test_renamed_config_keys_are_read_from_yaml_and_set(tmp_path):
    (tmp_path / "old.yaml").write_text("train:\n  mask_proposals_per_image: 5\n")
    with pytest.warns(UserWarning, match="now 'model.train_proposals'"):
        assert load_config(Config, tmp_path / "old.yaml").model.train_proposals == 5
    with pytest.warns(UserWarning):
        assert load_config(Config, None, ["train.mask_proposals_per_image=3"]).model.train_proposals == 3


def test_the_config_saved_with_outputs_records_the_input_size_used(tmp_path):
    from yolovis.data.synth import SynthConfig, generate

    generate(tmp_path / "data", SynthConfig(videos=1, frames=2, classes=2, width=96, height=64, seed=1))
    save_inference_checkpoint(tmp_path / "m.pt", config=load_config(Config, None, ["model.num_classes=2"]))
    frames = tmp_path / "data" / "JPEGImages" / "video_0000"
    assert cli_main(["track", str(tmp_path / "m.pt"), str(frames), "--out", str(tmp_path / "o"), "--no-video",
                     "--img-size", "96x64"]) == 0  # fmt: skip
    saved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert saved["img_size"] == [64, 96]
    assert Detector.from_checkpoint(tmp_path / "m.pt", img_size=(64, 96)).config.img_size == [64, 96]
