"""Accuracy of training recipes, at a fixed number of steps, over several seeds: what decides a default.

    python benchmarks/accuracy.py --steps 300 --seeds 3 \
        --variant base: --variant assoc:model.assoc_dim=64,track.method=memory [--out results.json]
    python benchmarks/accuracy.py --minutes 8 --seeds 3 --peer-minutes 8   # at the demo's budget, with YOLOv8

Trains `tiny` on the demo's synthetic data (40 training videos; the demo's CPU recipe, anchors by IoU k-means)
for exactly --steps optimizer steps (not minutes: runs compare across machines and loads), once per seed and
variant (a variant is a name and `key=value` overrides), then records the detections on --held-out held-out
videos once and scores them three ways (`yolovis diagnose`): per-frame mask AP, the video AP of the configured
tracker, and the video AP of perfect association. Prints mean and standard deviation over seeds.

--minutes trains for a wall-clock budget instead (as the demo does: the figure a user sees, but it varies with
the machine's load). --peer-minutes adds Ultralytics YOLOv8n-seg trained from its yaml on the same frames for
that budget, per seed, scored the same way (`yolov8_reference.py`; Ultralytics is not a dependency: see there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from yolovis.config import merge, parse_override
from yolovis.data.anchors_kmeans import fit_anchors
from yolovis.data.annotations import load_vis_annotations
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine import demo
from yolovis.engine.diagnose import diagnose
from yolovis.engine.inference import Detector
from yolovis.engine.train import train

FIGURES = (("frame", "AP50"), ("frame", "AP"), ("tracker", "AP50"), ("tracker", "AP"), ("oracle", "AP50"),
           ("oracle", "AP"), ("tracker", "HOTA"), ("tracker", "IDSW"))  # fmt: skip


def variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition(":")
    return name, [o for o in overrides.split(",") if o]


def _steps(checkpoint: Path) -> int | None:
    if not checkpoint.is_file():
        return None
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]["global_step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--minutes", type=float, default=0.0, help="a time budget per run instead of --steps")
    p.add_argument("--peer-minutes", type=float, default=0.0, help="also YOLOv8n-seg for this budget (0: no)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1 (to add one)")
    p.add_argument("--held-out", type=int, default=24, help="held-out videos (the demo scores 8)")
    p.add_argument("--variant", type=variant, action="append", default=[], metavar="NAME:KEY=VALUE,...")
    p.add_argument("--work", default=None, help="folder for data and runs (default: a temporary one)")
    p.add_argument("--out", default=None, help="write every run's figures here (JSON)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reuse", action="store_true",
                   help="with --work: keep runs whose last.pt holds --steps steps already")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variant or [("default", [])]
    work = Path(args.work or tempfile.mkdtemp(prefix="yolovis_accuracy_"))
    train_ann, held_out = work / "train" / "instances.json", work / "held_out" / "instances.json"
    if not train_ann.is_file():
        generate(
            work / "train", SynthConfig(videos=demo.TRAIN_VIDEOS, frames=demo.FRAMES, classes=demo.CLASSES, seed=0)
        )
    if not held_out.is_file():
        generate(work / "held_out", SynthConfig(videos=args.held_out, frames=demo.FRAMES, classes=demo.CLASSES,
                                                seed=demo.HELD_OUT_SEED))  # fmt: skip
    runs = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:  # every variant once before the next seed: early rows compare already
        for name, overrides in variants:
            cfg = demo.demo_config(torch.device("cpu"), 0.0)
            fit = fit_anchors(load_vis_annotations(train_ann), len(cfg.model.anchors[0]), max(cfg.img_size))
            cfg.model.anchors, cfg.model.anchor_img_size = fit.per_level(), max(cfg.img_size)
            budget = f"train.time_limit_minutes={args.minutes}" if args.minutes else f"train.max_steps={args.steps}"
            for text in [*overrides, f"train.seed={seed}", budget, "train.epochs=1000"]:
                cfg = merge(cfg, parse_override(text), text)
            start = time.monotonic()
            out = work / "runs" / f"{name}_seed{seed}"
            if args.reuse and not args.minutes and _steps(out / "last.pt") == args.steps:
                minutes = float("nan")  # trained by an earlier call
            else:
                train(cfg, train_ann, out, device="cpu")
                minutes = (time.monotonic() - start) / 60
            diagnosis, _ = diagnose(Detector.from_checkpoint(out / "last.pt"), held_out)
            steps = _steps(out / "last.pt")
            row = {"variant": name, "seed": seed, "train_minutes": minutes, "steps": steps, **diagnosis.summary}
            row.pop("per_video")
            runs.append(row)
            print(f"{name} seed {seed}: " + ", ".join(f"{a} {b} {row[a][b]:.3f}" for a, b in FIGURES[:6]), flush=True)
    if args.peer_minutes > 0:
        from yolov8_reference import score_yolov8, to_yolo_dataset, train_yolov8  # beside this script

        data_yaml = to_yolo_dataset(train_ann, None, work / "yolov8_dataset")
        for seed in seeds:
            weights = train_yolov8(data_yaml, args.peer_minutes, max(cfg.img_size), work / f"yolov8_seed{seed}", seed)
            scores = score_yolov8(weights, held_out, img_size=max(cfg.img_size))
            figures = {k: scores[k] for k in ("frame", "tracker", "oracle", "bytetrack")}
            row = {"variant": "YOLOv8n-seg", "seed": seed, "train_minutes": scores["train_minutes"],
                   "steps": scores["steps"], **figures}  # fmt: skip
            runs.append(row)
            print(f"YOLOv8n-seg seed {seed}: " + ", ".join(f"{a} {b} {row[a][b]:.3f}" for a, b in FIGURES[:6])
                  + f", bytetrack AP50 {row['bytetrack']['AP50']:.3f}", flush=True)  # fmt: skip
        variants.append(("YOLOv8n-seg", []))
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=2))
    header = " | ".join(f"{a} {b}" for a, b in FIGURES)
    budget = f"{args.minutes:g} minutes of training" if args.minutes else f"{args.steps} steps"
    print(f"\n{budget}, {args.seeds} seeds, {args.held_out} held-out videos: mean ± std over seeds")
    print(f"| variant | {header} | train min | steps |\n|{'---|' * (len(FIGURES) + 3)}")
    for name, _ in variants:
        rows = [r for r in runs if r["variant"] == name]
        cells = []
        for a, b in FIGURES:
            values = [float(r[a][b]) for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        minutes = statistics.mean(r["train_minutes"] for r in rows)
        steps = statistics.mean(r["steps"] for r in rows)
        print(f"| {name} | " + " | ".join(cells) + f" | {minutes:.1f} | {steps:.0f} |")
    byte = [r["bytetrack"]["AP50"] for r in runs if "bytetrack" in r]
    if byte:
        print(f"YOLOv8n-seg + its ByteTrack: video AP50 {statistics.mean(byte):.3f} ± {statistics.pstdev(byte):.3f}")


if __name__ == "__main__":
    main()
