"""Training throughput (images per second) of each scale: forward, loss (with the mask head on ground truth and
proposals) and backward, on synthetic frames, batch 8.

    python benchmarks/train_speed.py [--img-size 416] [--steps 5] [--device cpu|cuda] [--scales tiny small full]
                                     [--amp on off]

Prints the median time of `--steps` optimizer steps after two warm-up steps. On CUDA, channels_last as
`yolovis train` uses it, and a row per `--amp` setting (on, as `yolovis train` trains, and off: float32).
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
    parser.add_argument("--amp", nargs="+", choices=["on", "off"], default=["on", "off"], help="CUDA only")
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
    cuda = device.type == "cuda"
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    where = torch.cuda.get_device_name(device) if cuda else f"{args.threads} threads"
    print(f"# torch {torch.__version__}, {device} ({where}), batch {args.batch_size}, {s}x{s}")
    print("| scale | AMP | ms / step | images / s |")
    print("|---|---|---|---|")
    settings = [(name, amp == "on") for name in args.scales for amp in (args.amp if cuda else ["off"])]
    for name, amp in settings:
        cfg = load_config(Config, None, [f"model.scale={name}", "model.num_classes=3"])
        model = build_model(cfg.model).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        criterion = Criterion(cfg.train.criterion, len(model.strides), model.assoc_head is not None).to(device)
        model.train()
        optimizer = build_optimizer(model, criterion, cfg.train)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
        times = []
        for i in range(args.steps + 2):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(device.type, enabled=amp):
                loss, _ = criterion(model(images, targets), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if cuda:
                torch.cuda.synchronize()
            if i > 1:
                times.append(time.perf_counter() - t)
        ms = statistics.median(times) * 1000
        on = "on" if amp else "off"
        print(f"| {name} | {on} | {ms:.0f} | {args.batch_size / ms * 1000:.1f} |", flush=True)


if __name__ == "__main__":
    main()
