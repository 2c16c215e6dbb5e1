import warnings

import numpy as np
import pytest
import torch

from yolovis.config import Config, ConfigError, load_config, save_config
from yolovis.data.letterbox import PAD_VALUE, LetterboxInfo, letterbox_image
from yolovis.engine.checkpoint import save_inference_checkpoint
from yolovis.engine.inference import Detector
from yolovis.errors import UserError


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  scale: small\n  num_classes: 7\npostprocess:\n  nms_iou: 0.5\n")
    cfg = load_config(Config, path, ["model.num_classes=3", "img_size=[320, 480]", "postprocess.class_aware_nms=true"])
    assert (cfg.model.scale, cfg.model.num_classes, cfg.img_size) == ("small", 3, [320, 480])
    assert cfg.postprocess.nms_iou == 0.5 and cfg.postprocess.class_aware_nms is True
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(Config, tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize(
    ("text", "match"),
    [("model.nope=1", "unknown key"), ("model.num_classes=abc", "integer"), ("model", "key=value")],
)
def test_bad_overrides_name_the_key(text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(Config, None, [text])


def test_bad_yaml_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: malformed YAML"):
        load_config(Config, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Config, tmp_path / "missing.yaml")


@pytest.mark.parametrize(("h", "w"), [(240, 320), (320, 240), (100, 100), (416, 416)])
def test_letterbox_round_trip(h, w):
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    out, info = letterbox_image(image, 256, 320)
    assert out.shape == (256, 320, 3) and out.dtype == np.uint8
    boxes = torch.tensor([[0.0, 0.0, w, h], [10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(info.boxes_to_original(info.boxes_to_input(boxes)), boxes, atol=1e-3, rtol=0)
    x0, y0, x1, y1 = info.boxes_to_input(boxes[:1])[0].tolist()
    # The frame fills the un-padded region; padding is grey.
    assert abs((x1 - x0) - info.resized_hw[1]) < 1 and abs((y1 - y0) - info.resized_hw[0]) < 1
    if info.pad_y >= 1:
        assert (out[0] == PAD_VALUE).all()
    if info.pad_x >= 1:
        assert (out[:, 0] == PAD_VALUE).all()


def test_letterbox_takes_read_only_frames_silently():
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frozen = image.copy()
    frozen.flags.writeable = False  # what np.asarray gives for a PIL image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = letterbox_image(frozen, 32, 32)
    np.testing.assert_array_equal(out, letterbox_image(image, 32, 32)[0])


def test_letterbox_rejects_bad_frames():
    with pytest.raises(ValueError, match="empty frame"):
        LetterboxInfo.fit(0, 10, 32, 32)
    with pytest.raises(ValueError, match="H, W, 3"):
        letterbox_image(np.zeros((10, 10), np.uint8), 32, 32)


def test_detector_runs_on_frames_of_any_size(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_inference_checkpoint(path, load_config(Config, None, ["model.num_classes=2"]).model)
    det = Detector.from_checkpoint(path, img_size=(96, 128))
    det.config.postprocess.score_threshold = 0.0  # an untrained model: let detections through
    frames = [np.zeros((120, 160, 3), np.uint8), np.full((90, 50, 3), 200, np.uint8)]
    out = det(frames)
    assert [d.image_size for d in out] == [(120, 160), (90, 50)]
    assert all(len(d) <= det.config.postprocess.max_per_image for d in out)
    assert len(det.categories) == 2 and det.num_classes == 2
    with pytest.raises(UserError, match="uint8 RGB"):
        det([np.zeros((10, 10), np.uint8)])


def test_detector_refuses_bad_checkpoints(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Detector.from_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match="not a readable"):
        Detector.from_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a yolovis checkpoint"):
        Detector.from_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize(("h", "w"), [(720, 1280), (240, 320), (100, 37)])
def test_letterbox_resize_is_the_antialiased_bilinear_of_the_float_image_within_one_grey_level(h, w):
    """The uint8 resize (torch's fixed-point kernel) against the same filter computed in float and rounded."""
    import torch.nn.functional as F

    image = np.random.default_rng(1).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out, info = letterbox_image(image, 256, 320)
    new_h, new_w = info.resized_hw
    top, left = int(info.pad_y), int(info.pad_x)
    reference = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(new_h, new_w),
                              mode="bilinear", align_corners=False, antialias=True)  # fmt: skip
    reference = reference[0].permute(1, 2, 0).round().clamp(0, 255).numpy()
    got = out[top : top + new_h, left : left + new_w].astype(np.float32)
    assert np.abs(got - reference).max() <= 1
