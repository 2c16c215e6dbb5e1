"""Our scales against the networks a user would pick instead, built without weights, on this machine:
Ultralytics YOLOv8n-seg and YOLOv8l-seg (from their yaml) and torchvision's Mask R-CNN R50-FPN (the detector of
MaskTrack R-CNN), at 416x416, batch 1, in one process.

    pip install --no-deps ultralytics ultralytics-thop ultralytics-platform psutil polars nvidia-ml-py
    python benchmarks/peers.py [--repeats 5] [--threads 2]

Per network: forward ms/frame (median of --repeats after 2 warm-ups, eval mode, no NMS or mask pasting),
GFLOPs (torch.utils.flop_counter, a multiply-add = 2 FLOPs), the GFLOP/s it achieves (BN folded into the convs
for ours and YOLOv8, as both inference paths do), and the machine's
float32 matrix-multiply GFLOP/s as the ceiling. What "forward" covers differs by design: ours and YOLOv8 are one
pass (boxes, classes and mask features); Mask R-CNN's forward includes its RPN, RoI heads and mask head on up to
100 detections.
"""

from __future__ import annotations

import argparse
import os
import platform

import torch
from forward import gflops, median_ms  # benchmarks/forward.py, beside this script

from yolovis.config import ModelConfig
from yolovis.model import build_model
from yolovis.model.fuse import fuse_conv_bn


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / (median_ms(lambda: a @ b, repeats) / 1000) / 1e9


def networks(num_classes: int):
    for scale in ("tiny", "small", "full"):
        model = build_model(ModelConfig(scale=scale, num_classes=num_classes)).eval()
        yield f"yolovis {scale} (BN folded)", fuse_conv_bn(model), "ours"
    try:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        for size in ("n", "l"):
            model = YOLO(f"yolov8{size}-seg.yaml").model.eval()  # built from its yaml: no weights downloaded
            yield f"YOLOv8{size}-seg (BN folded)", model.fuse(verbose=False), "ultralytics"  # as its predictor does
    except ImportError:
        print("# ultralytics not installed: YOLOv8-seg rows skipped (see the docstring for the install line)")
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    mrcnn = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes + 1,
                                  min_size=416, max_size=416).eval()  # fmt: skip
    yield "Mask R-CNN R50-FPN", mrcnn, "torchvision"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--img-size", type=int, default=416)
    parser.add_argument("--num-classes", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    s = args.img_size
    x = torch.rand(1, 3, s, s)
    ceiling = matmul_ceiling()
    print(f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads, 1x3x{s}x{s}, "
          f"float32 matmul ceiling {ceiling:.0f} GFLOP/s")  # fmt: skip
    print("| network | params (M) | GFLOPs | ms / frame | achieved GFLOP/s | % of matmul ceiling |")
    print("|---|---|---|---|---|---|")
    for name, model, kind in networks(args.num_classes):

        def forward(model=model, kind=kind):
            if kind == "ours":  # one pass of the network; NMS and the mask head are not in the peers' figure
                return model.forward_dense(x)
            return model([x[0]]) if kind == "torchvision" else model(x)

        params = sum(p.numel() for p in model.parameters()) / 1e6
        g = gflops(forward)
        ms = median_ms(forward, args.repeats)
        achieved = g / (ms / 1000)
        print(f"| {name} | {params:.1f} | {g:.1f} | {ms:.0f} | {achieved:.0f} | {100 * achieved / ceiling:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
