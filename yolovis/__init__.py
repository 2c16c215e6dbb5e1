"""yolovis: YoloV4+1 video instance segmentation with the paper's greedy tracker and a memory tracker.

The public API (imported on first use, so that `yolovis --help` answers at once):

    import yolovis
    model = yolovis.build_model(yolovis.ModelConfig(scale="tiny", num_classes=40))
    detector = yolovis.Detector.from_checkpoint("run/best.pt")          # frames -> Detections
    tracker = yolovis.VideoTracker.from_checkpoint("run/best.pt")       # a video -> tracked frames, results
    yolovis.train(yolovis.load_config(yolovis.Config), "train.json", "run/")
    metrics = yolovis.evaluate("valid.json", "results.json")            # official YouTube-VIS metrics
    diagnosis, _ = yolovis.diagnose(detector, "valid.json")             # frame / tracker / oracle AP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# name -> module that defines it
_API = {
    "Config": "yolovis.config",
    "ModelConfig": "yolovis.config",
    "TrackerConfig": "yolovis.config",
    "load_config": "yolovis.config",
    "build_model": "yolovis.model.detector",
    "Detections": "yolovis.model.detections",
    "Detector": "yolovis.engine.inference",
    "VideoTracker": "yolovis.engine.stream",
    "build_tracker": "yolovis.track.build",
    "train": "yolovis.engine.train",
    "predict_videos": "yolovis.engine.predict",
    "diagnose": "yolovis.engine.diagnose",
    "evaluate": "yolovis.eval.evaluate",
}

__all__ = [
    "Config",
    "Detections",
    "Detector",
    "ModelConfig",
    "TrackerConfig",
    "VideoTracker",
    "__version__",
    "build_model",
    "build_tracker",
    "diagnose",
    "evaluate",
    "load_config",
    "predict_videos",
    "train",
]

if TYPE_CHECKING:
    from yolovis.config import Config, ModelConfig, TrackerConfig, load_config
    from yolovis.engine.diagnose import diagnose
    from yolovis.engine.inference import Detector
    from yolovis.engine.predict import predict_videos
    from yolovis.engine.stream import VideoTracker
    from yolovis.engine.train import train
    from yolovis.eval.evaluate import evaluate_files as evaluate
    from yolovis.model.detections import Detections
    from yolovis.model.detector import build_model
    from yolovis.track.build import build_tracker


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'yolovis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), "evaluate_files" if name == "evaluate" else name)
    globals()[name] = value  # later lookups skip this function
    return value
