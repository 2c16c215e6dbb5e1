"""Training throughput (images per second) of each scale: forward, loss (with the mask head on ground truth and
proposals) and backward, on synthetic frames, batch 8.

    python benchmarks/train_speed.py [--img-size 416] [--steps 5] [--device cpu|cuda] [--scales tiny small full]

Prints the median time of `--steps` optimizer steps after one warm-up step. On CUDA it uses AMP and
channels_last, as `yolovis train` does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from yolovis.config import Config, load_config
from yolovis.data.sample import collate_frames
from yolovis.data.synth import SynthConfig, generate
from yolovis.data.ytvis import YTVISDataset
from yolovis.engine.optim import build_optimizer
from yolovis.loss.criterion import Criterion
from yolovis.model import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img-size", type=int, default=416)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scales", nargs="+", default=["tiny", "small", "full"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    s = args.img_size
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, SynthConfig(videos=1, frames=args.batch_size, classes=3, width=s, height=s, seed=0))
        ds = YTVISDataset(f"{tmp}/instances.json", img_size=(s, s), augment=None)
        images, targets = collate_frames([ds[i] for i in range(args.batch_size)])
    images = images.to(device).float() / 255
    targets = [t.to(device) for t in targets]
    amp = device.type == "cuda"
    if amp:
        images = images.contiguous(memory_format=torch.channels_last)
    print(f"# torch {torch.__version__}, device {device}, {args.threads} threads, batch {args.batch_size}, {s}x{s}")
    print("| scale | ms / step | images / s |")
    print("|---|---|---|")
    for name in args.scales:
        cfg = load_config(Config, None, [f"model.scale={name}", "model.num_classes=3"])
        model = build_model(cfg.model).to(device)
        if amp:
            model = model.to(memory_format=torch.channels_last)
        criterion = Criterion(cfg.train.criterion, len(model.strides), model.assoc_head is not None).to(device)
        model.train()
        optimizer = build_optimizer(model, criterion, cfg.train)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
        times = []
        for i in range(args.steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(device.type, enabled=amp):
                loss, _ = criterion(model(images, targets), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i > 0:
                times.append(time.perf_counter() - t)
        ms = statistics.median(times) * 1000
        print(f"| {name} | {ms:.0f} | {args.batch_size / ms * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()
