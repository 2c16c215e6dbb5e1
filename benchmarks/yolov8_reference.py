"""A reference row for `benchmarks/accuracy.py`: Ultralytics YOLOv8n-seg trained from scratch on the same
YouTube-VIS data for a wall-clock budget, then scored exactly as our model is scored.

    pip install --no-deps ultralytics ultralytics-thop ultralytics-platform psutil polars nvidia-ml-py lap
    python benchmarks/yolov8_reference.py --train TRAIN.json --held-out HELD.json --minutes M --img-size 320 \
        [--seed S] [--work DIR]

Three steps, each importable (`from yolov8_reference import ...` from the benchmarks folder, as peers.py imports
forward.py):
- `to_yolo_dataset`: the annotation file as an Ultralytics segmentation dataset (images linked, one polygon per
  instance and frame, classes in the order of the sorted category ids, as yolovis orders them);
- `train_yolov8`: `YOLO("yolov8n-seg.yaml")` (no weights: nothing can be downloaded) trained with Ultralytics'
  default recipe for `minutes` (its `time=` budget) on the CPU, with 2 torch threads;
- `score_yolov8`: its detections on every held-out frame (conf 0.05 and at most 50 per frame, as our postprocess,
  masks at frame size) scored by `yolovis diagnose`'s code (per-frame mask AP, our memory tracker's video AP,
  perfect association's), and Ultralytics' own ByteTrack on the same frames, scored by `evaluate_vis`.
Ultralytics' NMS (IoU 0.7, per class) and ByteTrack's thresholds are its defaults: the row is YOLOv8 as a user
would run it, only the score threshold and the detection cap are ours.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import yaml

from yolovis.config import TrackerConfig
from yolovis.data.annotations import VideoRecord, VISAnnotations, load_vis_annotations, read_json
from yolovis.engine.diagnose import TRACKING_KEYS, diagnose_detections
from yolovis.eval.ytvis_eval import evaluate_vis
from yolovis.track.mask_iou import encode_masks
from yolovis.track.recorded import FrameRecord, VideoDetections
from yolovis.track.results import Appearance, ResultRule, Track, tracks_to_results

THREADS = 2  # what accuracy.py gives our model (its --threads default)
CONF = 0.05  # our PostprocessConfig.score_threshold
MAX_DET = 50  # our PostprocessConfig.max_per_image (Ultralytics' default is 300)
BATCH = 8
TRAIN_STATS = "reference_training.json"  # written by train_yolov8 in its run folder, read by score_yolov8
FIGURE_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10")
ROW = (("frame", "AP50"), ("frame", "AP"), ("tracker", "AP50"), ("tracker", "AP"), ("oracle", "AP50"),
       ("oracle", "AP"), ("bytetrack", "AP50"), ("bytetrack", "AP"))  # fmt: skip


def _ultralytics() -> Any:
    """Import Ultralytics offline. YOLO_OFFLINE must be set before the import: `ultralytics.utils.ONLINE` is
    computed then, and with it off no update check, event or hub call is made."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    # Ultralytics sets OMP_NUM_THREADS=1 at import when it is unset; torch.set_num_threads overrides it anyway,
    # but a thread pool that reads the variable later would get one thread.
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    import ultralytics

    return ultralytics


@contextlib.contextmanager
def ultralytics_session(threads: int = THREADS) -> Iterator[None]:
    """Ultralytics with `threads` torch threads and no download, restored afterwards.

    - threads: `select_device()` (called by the trainer and by the predictor) runs
      `torch.set_num_threads(NUM_THREADS)` with `NUM_THREADS = min(8, cpu_count - 1)`, i.e. 1 on a 2-core machine;
      the module global it reads is set to `threads` here, so every later `select_device()` sets `threads`.
    - fonts: `check_det_dataset()` calls `check_font("Arial.ttf")` even with plots off, which asks the network
      (a 3 s timeout offline); no plot is drawn, so it is made a no-op.
    - determinism: the trainer turns `torch.use_deterministic_algorithms` on for the whole process; it is restored,
      so that our model trained next in the same process runs as it would alone.
    """
    _ultralytics()
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.torch_utils as torch_utils

    ul_threads, check_font, torch_threads = torch_utils.NUM_THREADS, data_utils.check_font, torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch_utils.NUM_THREADS = threads
    data_utils.check_font = lambda *args, **kwargs: None
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch_utils.NUM_THREADS, data_utils.check_font = ul_threads, check_font
        torch.set_num_threads(torch_threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


# ---------------------------------------------------------------------------------------------------- conversion


def instance_polygon(mask: np.ndarray) -> np.ndarray | None:
    """(K, 2) float pixel polygon of one (H, W) instance mask, None when the mask is empty.

    Ultralytics takes one polygon per instance; a mask in several pieces (an occluded object) has several external
    contours, joined as Ultralytics' own COCO converter joins multi-polygon segmentations (`merge_multi_segment`:
    each piece linked to the next at their closest points by a zero-width bridge, traversed there and back).
    Holes are lost (external contours only). Pieces under 3 contour points (1-2 pixel specks) are dropped; if no
    piece is left, the mask's bounding rectangle stands for it, as in the converter.
    """
    from ultralytics.data.converter import merge_multi_segment

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    pieces = [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 3]
    if not pieces:
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return None
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate(merge_multi_segment([p.reshape(-1).tolist() for p in pieces]), axis=0)


def frame_label_lines(masks: np.ndarray, labels: list[int], width: int, height: int) -> list[str]:
    """Ultralytics segmentation label lines, `class x1 y1 x2 y2 ...` normalised to [0, 1], one per instance."""
    lines = []
    for mask, label in zip(masks, labels, strict=True):
        polygon = instance_polygon(mask)
        if polygon is None:
            continue
        xy = np.clip(polygon / np.array([width, height]), 0.0, 1.0).reshape(-1)
        lines.append(f"{label} " + " ".join(f"{v:.6f}" for v in xy))
    return lines


def _link(src: Path, dst: Path) -> None:
    """Symlink (no copy of the frames), or copy where the file system refuses links."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copyfile(src, dst)


def _write_split(
    ann: VISAnnotations, images_dir: Path, out_dir: Path, split: str, frames: Callable[[VideoRecord], Iterable[int]]
) -> int:
    """Link the frames `frames(video)` picks and write their label files under images/SPLIT and labels/SPLIT
    (Ultralytics finds a label by replacing /images/ by /labels/ in the image path). Returns the frame count."""
    label_of = {c["id"]: k for k, c in enumerate(sorted(ann.categories, key=lambda c: c["id"]))}
    count = 0
    for video in ann.videos:
        for t in frames(video):
            name = Path(video.file_names[t])
            _link(images_dir / name, out_dir / "images" / split / name)
            inst = ann.frame_instances(video.id, t)
            keep = ~inst.iscrowd  # the format has no crowd regions: they are left out, not learnt as objects
            labels = [label_of[int(c)] for c in inst.category_ids[keep]]
            lines = frame_label_lines(inst.masks[keep], labels, video.width, video.height)
            label_file = (out_dir / "labels" / split / name).with_suffix(".txt")
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("".join(line + "\n" for line in lines))  # empty: a background frame
            count += 1
    return count


def to_yolo_dataset(
    ann_json: str | os.PathLike, images_dir: str | os.PathLike | None, out_dir: str | os.PathLike
) -> Path:
    """Convert a YouTube-VIS annotation file (frames under `images_dir`, default: JPEGImages beside it) into an
    Ultralytics segmentation dataset in `out_dir`; returns its data.yaml.

    Every annotated frame is a training image. Ultralytics validates at the end of training whatever `val=` says,
    so `val` is the first frame of each training video (no held-out frame leaks in): it only picks best.pt, which
    with a single validation is the last weights anyway.
    """
    ann = load_vis_annotations(ann_json)
    images = Path(images_dir) if images_dir is not None else Path(ann_json).parent / "JPEGImages"
    out = Path(out_dir).resolve()
    for stale in ("images", "labels"):  # a previous conversion's files (and label caches) would mix in
        shutil.rmtree(out / stale, ignore_errors=True)
    _write_split(ann, images, out, "train", lambda v: range(v.length))
    _write_split(ann, images, out, "val", lambda v: range(min(1, v.length)))
    categories = sorted(ann.categories, key=lambda c: c["id"])
    data = {"path": str(out), "train": "images/train", "val": "images/val",
            "names": {k: str(c.get("name", c["id"])) for k, c in enumerate(categories)}}  # fmt: skip
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


# ------------------------------------------------------------------------------------------------------ training


class _Counter:
    """Training callbacks: batches seen, optimizer steps taken (Ultralytics accumulates gradients up to a nominal
    batch of 64: after its warm-up, max(100 batches, 3 epochs), during which it steps more and more rarely, 8
    batches of 8 make one step) and the torch threads the loop really ran with."""

    def __init__(self, threads: int) -> None:
        self.threads, self.batches, self.steps, self.seen_threads = threads, 0, 0, 0
        self.loop_seconds = 0.0

    def on_train_start(self, trainer: Any) -> None:
        torch.set_num_threads(self.threads)  # should already hold (ultralytics_session); checked below
        self.seen_threads = torch.get_num_threads()
        step = trainer.optimizer_step

        def counted_step() -> None:
            self.steps += 1
            step()

        trainer.optimizer_step = counted_step

    def on_train_batch_start(self, trainer: Any) -> None:
        self.batches += 1

    def on_train_epoch_end(self, trainer: Any) -> None:
        # The loop's time so far: after the batches, before the (end-of-training) validation.
        self.loop_seconds = time.time() - trainer.train_time_start


def train_yolov8(
    data_yaml: str | os.PathLike,
    minutes: float,
    img_size: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    threads: int = THREADS,
) -> Path:
    """Train YOLOv8n-seg from its yaml for `minutes` of wall clock (Ultralytics' `time=` budget, which counts
    the training loop, not the setup or the final validation, and is checked after each optimizer step, so a run
    overshoots by up to one step's batches) on the CPU; returns best.pt (else last.pt).
    The run's figures (minutes, epochs, batches, optimizer steps, threads) go to TRAIN_STATS in the run folder."""
    ul = _ultralytics()
    out = Path(out_dir).resolve()
    counter = _Counter(threads)
    with ultralytics_session(threads):
        model = ul.YOLO("yolov8n-seg.yaml")  # built from the yaml: random weights, nothing downloaded
        model.add_callback("on_train_start", counter.on_train_start)
        model.add_callback("on_train_batch_start", counter.on_train_batch_start)
        model.add_callback("on_train_epoch_end", counter.on_train_epoch_end)
        start = time.monotonic()
        model.train(data=str(data_yaml), time=minutes / 60, imgsz=img_size, device="cpu", batch=BATCH, workers=1,
                    seed=seed, plots=False, val=False, amp=False, exist_ok=True, project=str(out), name="train",
                    verbose=False)  # fmt: skip
        wall = (time.monotonic() - start) / 60
    trainer = model.trainer
    if counter.seen_threads != threads:
        raise RuntimeError(f"YOLOv8 trained with {counter.seen_threads} torch threads, not {threads}")
    weights = trainer.best if Path(trainer.best).is_file() else trainer.last
    stats = {"train_minutes": counter.loop_seconds / 60, "wall_minutes": wall,
             "epochs": trainer.epoch + 1, "batches": counter.batches, "steps": counter.steps, "batch": BATCH,
             "threads": counter.seen_threads, "img_size": img_size, "seed": seed}  # fmt: skip
    (Path(trainer.save_dir) / TRAIN_STATS).write_text(json.dumps(stats, indent=2))
    return Path(weights)


def training_stats(weights: str | os.PathLike) -> dict:
    """What `train_yolov8` recorded for these weights ({} for weights it did not train)."""
    path = Path(weights).parent.parent / TRAIN_STATS  # RUN/weights/best.pt -> RUN/TRAIN_STATS
    return json.loads(path.read_text()) if path.is_file() else {}


# ------------------------------------------------------------------------------------------------------- scoring


def _frame_masks(result: Any, height: int, width: int) -> np.ndarray:
    """(N, H, W) bool masks of an Ultralytics result (retina masks: already at frame size)."""
    if result.masks is None or len(result) == 0:
        return np.zeros((0, height, width), dtype=bool)
    masks = result.masks.data.cpu()
    masks = masks if masks.dtype == torch.bool else masks > 0.5
    if tuple(masks.shape[1:]) != (height, width):
        raise RuntimeError(f"YOLOv8 masks are {tuple(masks.shape[1:])}, the frame {(height, width)}")
    return masks.numpy()


def frame_record(result: Any, height: int, width: int) -> FrameRecord:
    """One frame's YOLOv8 detections as `yolovis diagnose` records ours: frame-pixel boxes, RLE masks."""
    boxes = result.boxes
    rles = encode_masks(_frame_masks(result, height, width))
    return FrameRecord(
        boxes.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4),
        boxes.conf.cpu().numpy().astype(np.float32),
        boxes.cls.cpu().numpy().astype(np.int64),
        rles,
    )


def _add_to_tracks(tracks: dict[int, Track], result: Any, t: int, height: int, width: int) -> None:
    """ByteTrack's output of frame t appended to its tracks (ids of unconfirmed tracks are None: not shown)."""
    if result.boxes is None or result.boxes.id is None or len(result) == 0:
        return
    rles = encode_masks(_frame_masks(result, height, width))
    b = result.boxes
    for rle, tid, box, score, label in zip(rles, b.id.tolist(), b.xyxy.tolist(), b.conf.tolist(), b.cls.tolist(),
                                           strict=True):  # fmt: skip
        track = tracks.setdefault(int(tid), Track(int(tid)))
        track.frames[t] = Appearance(rle, float(score), int(label), tuple(box))
        track.last_frame = t


def _reset_trackers(model: Any) -> None:
    """A new video: ByteTrack forgets its tracks (frames are arrays, so Ultralytics cannot see the video change)."""
    for tracker in getattr(model.predictor, "trackers", None) or []:
        tracker.reset()


def _read_frame(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR: what Ultralytics expects of an array
    if frame is None:
        raise FileNotFoundError(f"unreadable or missing frame {path}")
    return frame


def run_videos(
    weights: str | os.PathLike, ann: VISAnnotations, images_dir: Path, cfg: TrackerConfig, img_size: int | None
) -> tuple[list[VideoDetections], list[dict]]:
    """YOLOv8's recorded detections on every frame, and ByteTrack's YouTube-VIS results on the same frames."""
    ul = _ultralytics()
    detector, tracker = ul.YOLO(str(weights)), ul.YOLO(str(weights))  # two predictors: tracking state apart
    options = {"conf": CONF, "max_det": MAX_DET, "retina_masks": True, "device": "cpu", "verbose": False}
    if img_size is not None:
        options["imgsz"] = img_size  # else Ultralytics' default: the training size, which the checkpoint keeps
    label_to_category = [c["id"] for c in sorted(ann.categories, key=lambda c: c["id"])]
    videos, results = [], []
    for video in ann.videos:
        frames, tracks = [], {}
        _reset_trackers(tracker)
        for t, name in enumerate(video.file_names):
            image = _read_frame(images_dir / name)
            frames.append(frame_record(detector.predict(image, **options)[0], video.height, video.width))
            tracked = tracker.track(image, persist=True, tracker="bytetrack.yaml", **options)[0]
            _add_to_tracks(tracks, tracked, t, video.height, video.width)
        videos.append(VideoDetections(video.id, video.height, video.width, frames))
        # Ours drops tracks shorter than min_length (and under min_score): ByteTrack's are filtered alike.
        results += tracks_to_results(tracks.values(), video.id, video.length, label_to_category,
                                     ResultRule(cfg.min_length, cfg.min_score))  # fmt: skip
    return videos, results


def _figures(metrics: dict) -> dict:
    out = {k: metrics[k] for k in FIGURE_KEYS}
    out.update({k: metrics["tracking"][k] for k in TRACKING_KEYS if metrics.get("tracking")})
    return out


def score_yolov8(
    weights: str | os.PathLike,
    held_out_ann: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    img_size: int | None = None,
    threads: int = THREADS,
) -> dict:
    """Score trained YOLOv8 weights on a held-out annotation file as `yolovis diagnose` scores our model.

    Returns {"frame", "tracker" (our memory tracker on YOLOv8's detections), "oracle" (perfect association),
    "bytetrack" (Ultralytics' ByteTrack): {AP, AP50, AP75, AR1, AR10, HOTA, ...}} and, for weights train_yolov8
    trained, its `training_stats` (train_minutes, epochs, steps, batches, ...)."""
    gt = read_json(held_out_ann)
    ann = load_vis_annotations(held_out_ann)
    images = Path(images_dir) if images_dir is not None else Path(held_out_ann).parent / "JPEGImages"
    cfg = TrackerConfig(method="memory")
    img_size = img_size or training_stats(weights).get("img_size")
    with ultralytics_session(threads):
        videos, bytetrack = run_videos(weights, ann, images, cfg, img_size)
    label_to_category = [c["id"] for c in sorted(ann.categories, key=lambda c: c["id"])]
    summary = diagnose_detections(gt, videos, cfg, label_to_category, str(held_out_ann)).summary
    byte_eval = evaluate_vis(gt, bytetrack, gt_source=str(held_out_ann), track_score_threshold=cfg.detection_threshold)
    return {
        "frame": summary["frame"],
        "tracker": summary["tracker"],
        "oracle": summary["oracle"],
        "bytetrack": {"method": "bytetrack", **_figures(byte_eval.metrics)},
        **training_stats(weights),  # top level, as accuracy.py keeps its runs' train_minutes
    }


# ----------------------------------------------------------------------------------------------------------- CLI


def markdown_header() -> str:
    cells = " | ".join(f"{a} {b}" for a, b in ROW)
    return f"| model | {cells} | train min | epochs | steps (batches) |\n|{'---|' * (len(ROW) + 4)}"


def markdown_row(name: str, scores: dict) -> str:
    cells = " | ".join(f"{float(scores[a][b]):.3f}" for a, b in ROW)
    minutes = f"{scores['train_minutes']:.1f}" if "train_minutes" in scores else "?"
    steps = f"{scores.get('steps', '?')} ({scores.get('batches', '?')})"
    return f"| {name} | {cells} | {minutes} | {scores.get('epochs', '?')} | {steps} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="YouTube-VIS training annotations (frames in JPEGImages beside)")
    p.add_argument("--held-out", required=True, help="YouTube-VIS held-out annotations (frames in JPEGImages beside)")
    p.add_argument("--minutes", type=float, required=True, help="training wall-clock budget")
    p.add_argument("--img-size", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="folder for the dataset and the run (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write every figure here")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="yolov8_reference_"))
    data_yaml = to_yolo_dataset(args.train, None, work / "dataset")
    weights = train_yolov8(data_yaml, args.minutes, args.img_size, work / "runs", args.seed)
    scores = score_yolov8(weights, args.held_out, img_size=args.img_size)
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=2))
    print(markdown_header())
    print(markdown_row(f"YOLOv8n-seg, {args.minutes:g} min, seed {args.seed}", scores))


if __name__ == "__main__":
    main()
