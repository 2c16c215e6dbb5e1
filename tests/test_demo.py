import json

import torch

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config
from yolovis.engine import demo


def test_demo_end_to_end_on_a_tiny_budget(tmp_path, monkeypatch):
    """The whole demo pipeline, shrunk: 2 training videos, 1 held-out, a few seconds of training."""
    monkeypatch.setattr(demo, "TRAIN_VIDEOS", 2)
    monkeypatch.setattr(demo, "HELD_OUT_VIDEOS", 1)
    monkeypatch.setattr(demo, "FRAMES", 4)

    def small_config(device: torch.device, minutes: float) -> Config:
        cfg = load_config(Config, None, ["img_size=[96, 128]", "train.batch_size=4", "train.workers=0",
                                         "track.detection_threshold=0.0", "track.min_length=1"])  # fmt: skip
        cfg.train.time_limit_minutes = minutes
        cfg.train.epochs = 1000
        cfg.train.val_every_epochs = 10**6
        return cfg

    monkeypatch.setattr(demo, "demo_config", small_config)
    out = tmp_path / "demo"
    assert cli_main(["demo", "--out", str(out), "--minutes", "0.03"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics)[:12] == [
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "AR100",
        "ARs",
        "ARm",
        "ARl",
    ]
    results = json.loads((out / "results.json").read_text())
    assert all(len(r["segmentations"]) == 4 for r in results)
    for name in ("overlay.mp4", "config.yaml", "run/last.pt", "plots/feature_maps.png", "plots/pr_curves.png"):
        assert (out / name).is_file(), name
    # The three figures side by side: per frame, tracked, perfect association (of the same detections).
    diagnosis = json.loads((out / "diagnosis.json").read_text())
    assert {"frame", "tracker", "oracle", "lost_to_association", "per_video"} <= set(diagnosis)
    assert diagnosis["tracker"]["AP50"] == metrics["AP50"] and diagnosis["tracker"]["method"] == "memory"


def test_demo_rejects_a_non_positive_budget(tmp_path, capsys):
    assert cli_main(["demo", "--out", str(tmp_path), "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
