"""Accuracy of training recipes, at a fixed number of steps, over several seeds: what decides a default.

    python benchmarks/accuracy.py --steps 300 --seeds 3 \
        --variant base: --variant assoc:model.assoc_dim=64,track.method=memory [--out results.json]

Trains `tiny` on the demo's synthetic data (40 training videos; the demo's CPU recipe, anchors by IoU k-means)
for exactly --steps optimizer steps (not minutes: runs compare across machines and loads), once per seed and
variant (a variant is a name and `key=value` overrides), then records the detections on --held-out held-out
videos once and scores them three ways (`yolovis diagnose`): per-frame mask AP, the video AP of the configured
tracker, and the video AP of perfect association. Prints mean and standard deviation over seeds.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--held-out", type=int, default=24, help="held-out videos (the demo scores 8)")
    p.add_argument("--variant", type=variant, action="append", default=[], metavar="NAME:KEY=VALUE,...")
    p.add_argument("--work", default=None, help="folder for data and runs (default: a temporary one)")
    p.add_argument("--out", default=None, help="write every run's figures here (JSON)")
    p.add_argument("--threads", type=int, default=2)
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
    for name, overrides in variants:
        for seed in range(args.seeds):
            cfg = demo.demo_config(torch.device("cpu"), 0.0)
            fit = fit_anchors(load_vis_annotations(train_ann), len(cfg.model.anchors[0]), max(cfg.img_size))
            cfg.model.anchors, cfg.model.anchor_img_size = fit.per_level(), max(cfg.img_size)
            for text in [*overrides, f"train.seed={seed}", f"train.max_steps={args.steps}", "train.epochs=1000"]:
                cfg = merge(cfg, parse_override(text), text)
            start = time.monotonic()
            out = work / "runs" / f"{name}_seed{seed}"
            train(cfg, train_ann, out, device="cpu")
            minutes = (time.monotonic() - start) / 60
            diagnosis, _ = diagnose(Detector.from_checkpoint(out / "last.pt"), held_out)
            row = {"variant": name, "seed": seed, "train_minutes": minutes, **diagnosis.summary}
            row.pop("per_video")
            runs.append(row)
            print(f"{name} seed {seed}: " + ", ".join(f"{a} {b} {row[a][b]:.3f}" for a, b in FIGURES[:6]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=2))
    header = " | ".join(f"{a} {b}" for a, b in FIGURES)
    print(f"\n{args.steps} steps, {args.seeds} seeds, {args.held_out} held-out videos: mean ± std over seeds")
    print(f"| variant | {header} | train min |\n|{'---|' * (len(FIGURES) + 2)}")
    for name, _ in variants:
        rows = [r for r in runs if r["variant"] == name]
        cells = []
        for a, b in FIGURES:
            values = [float(r[a][b]) for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        minutes = statistics.mean(r["train_minutes"] for r in rows)
        print(f"| {name} | " + " | ".join(cells) + f" | {minutes:.1f} |")


if __name__ == "__main__":
    main()
