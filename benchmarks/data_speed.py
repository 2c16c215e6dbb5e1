"""Data-loader throughput: frames per second through YTVISDataset + DataLoader, with and without augmentation.

    python benchmarks/data_speed.py [--workers 2] [--img-size 416] [--batch 8] [--frames 400]

Generates a synthetic dataset (10 videos x 20 frames of 320x240, `yolovis synth` defaults) in a temporary
folder and times `--frames` samples (after one warm-up batch) for each setting.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from yolovis.data import AugmentConfig, YTVISDataset, collate_frames
from yolovis.data.synth import SynthConfig, generate


def throughput(ds: YTVISDataset, workers: int, batch: int, frames: int) -> float:
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_frames,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    seen, start, it = 0, None, iter(loader)
    while seen < frames:
        try:
            images, _ = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if start is None:  # the first batch pays for starting the workers
            start = time.perf_counter()
            continue
        seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--img-size", type=int, default=416)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=400)
    args = p.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        generate(tmp, SynthConfig())
        print(f"synth: 10 videos x 20 frames (320x240) in {time.perf_counter() - t:.2f} s")
        ann = Path(tmp) / "instances.json"
        size = (args.img_size, args.img_size)
        settings = [
            ("letterbox only", None),
            ("flip+scale+translate+hsv", AugmentConfig(mosaic=0.0)),
            ("all, mosaic p=0.5", AugmentConfig(mosaic=0.5)),
            ("all, mosaic p=1.0", AugmentConfig(mosaic=1.0)),
        ]
        for name, aug in settings:
            fps = throughput(YTVISDataset(ann, img_size=size, augment=aug), args.workers, args.batch, args.frames)
            print(f"{name:>28}: {fps:7.1f} frames/s  ({args.workers} workers, batch {args.batch}, {size[0]}x{size[1]})")


if __name__ == "__main__":
    main()
