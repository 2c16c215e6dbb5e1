"""Ultralytics' own OpenVINO export of YOLOv8n-seg running its own `track` (ByteTrack) on a video: the peer of
`yolovis track EXPORTED` in `track_speed.py --peer`. Not a dependency of yolovis:

    pip install --no-deps ultralytics ultralytics-thop psutil polars && pip install lap

The model is built from its yaml (nothing is downloaded: random weights), so its scores are meaningless; to give
it the work ours does in the same run, it keeps `max_det` detections per frame (conf 0) and tracks every one of
them (ByteTrack's thresholds at 0), and it writes its annotated video as ours writes its overlay. What it does
not do that ours does: RLE-encode every mask and write results.json / tracks.txt.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def export_yolov8n_seg(folder: Path, img_size: int) -> Path:
    """YOLOv8n-seg (random weights) exported by Ultralytics to OpenVINO at `img_size`; returns the model folder."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    cwd = Path.cwd()
    os.chdir(folder)  # Ultralytics writes the export beside the working directory's model file
    try:
        return folder / YOLO("yolov8n-seg.yaml").export(format="openvino", imgsz=img_size, half=False, verbose=False)
    finally:
        os.chdir(cwd)


def track_fps(model_dir: Path, video: Path, out: Path, img_size: int, max_det: int, frames: int) -> dict:
    """Ultralytics `track` of `video` with its OpenVINO model: frames/s end to end and its own mean network ms."""
    from ultralytics import YOLO

    tracker = out / "bytetrack_all.yaml"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text("tracker_type: bytetrack\ntrack_high_thresh: 0.0\ntrack_low_thresh: 0.0\n"
                       "new_track_thresh: 0.0\ntrack_buffer: 30\nmatch_thresh: 0.8\nfuse_score: True\n")  # fmt: skip
    model = YOLO(str(model_dir), task="segment")
    model.predict(np.zeros((720, 1280, 3), np.uint8), imgsz=img_size, verbose=False)  # load and compile: untimed
    start = time.perf_counter()
    inference, count = 0.0, 0
    for result in model.track(source=str(video), stream=True, conf=0.0, max_det=max_det, imgsz=img_size,
                              tracker=str(tracker), save=True, project=str(out), name="run", exist_ok=True,
                              verbose=False):  # fmt: skip
        inference += result.speed["inference"]
        count += 1
    total = time.perf_counter() - start
    assert count == frames, f"ultralytics tracked {count} frames of {frames}"
    return {"fps": frames / total, "ms_per_frame": total / frames * 1000, "network_ms": inference / count}
