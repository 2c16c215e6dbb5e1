"""Forward latency, parameters and GFLOPs of each scale (batch 1, 2 threads), the backbone alone, and the mask
head per RoI.

    python benchmarks/forward.py [--img-size 416] [--repeats 10] [--num-classes 40] [--device cuda [--half]]

Latency is the median of `--repeats` timed runs after two warm-up runs. GFLOPs are counted by
torch.utils.flop_counter (one multiply-add = 2 FLOPs) on the same input.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from yolovis.config import ModelConfig
from yolovis.model import SCALES, build_model


def gflops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def median_ms(fn, repeats: int) -> float:
    # CUDA launches are asynchronous: without a synchronize the timer would see only the launches.
    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    with torch.no_grad():
        for _ in range(2):
            fn()
        times = []
        for _ in range(repeats):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def row(name: str, x: torch.Tensor, args: argparse.Namespace) -> str:
    s = x.shape[-1]
    model = build_model(ModelConfig(scale=name, num_classes=args.num_classes)).eval().to(x.device, x.dtype)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    bb_params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
    with torch.no_grad():
        embeddings = model.forward_dense(x).embeddings
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(args.rois, 2, generator=g) * s * 0.7
    wh = torch.rand(args.rois, 2, generator=g) * s * 0.3 + 8
    rois = [torch.cat((xy, xy + wh), 1).to(x.device, x.dtype)]

    def network():  # the fully convolutional part: the mask head per RoI is measured below
        return model.forward_dense(x)

    def backbone():
        return model.backbone(x)

    def mask_head():
        return model.mask_head(embeddings, rois)

    cells = [
        f"{params:.2f}",
        f"{gflops(network):.1f}",
        f"{median_ms(network, args.repeats):.0f}",
        f"{bb_params:.2f}",
        f"{gflops(backbone):.1f}",
        f"{median_ms(backbone, args.repeats):.0f}",
        f"{gflops(mask_head) / args.rois:.3f}",
        f"{median_ms(mask_head, args.repeats) / args.rois:.2f}",
    ]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img-size", type=int, default=416)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--num-classes", type=int, default=40)
    parser.add_argument("--rois", type=int, default=50, help="RoIs per mask-head call (the per-frame maximum)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="float16 weights and input (CUDA), as Detector(half=True)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    s = args.img_size
    x = torch.rand(1, 3, s, s, device=args.device, dtype=torch.float16 if args.half else torch.float32)
    if x.is_cuda:
        where = f"{torch.cuda.get_device_name(x.device)}, {'float16' if args.half else 'float32'}"
    else:
        where = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    print(f"# torch {torch.__version__}, {where}, input 1x3x{s}x{s}, K={args.num_classes}")
    print("| scale | params (M) | GFLOPs | latency (ms) | backbone params (M) | backbone GFLOPs | backbone ms "
          "| mask head GFLOPs/RoI | mask head ms/RoI |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in SCALES:
        print(row(name, x, args), flush=True)


if __name__ == "__main__":
    main()
