"""The network alone (the fully convolutional part, BN folded, batch 1) in PyTorch eager, exported to ONNX and
run by ONNX Runtime, and run by OpenVINO; and why ONNX Runtime is slow on it.

    python benchmarks/export_speed.py [--sizes 320 416 640] [--scale tiny] [--repeats 20] [--peer]
    python benchmarks/export_speed.py --why          # ONNX Runtime's time per op type and per map resolution,
                                                     # and the same graph with Mish swapped out

--peer adds Ultralytics YOLOv8n-seg (built from its yaml, BN folded) in PyTorch and exported by Ultralytics to
OpenVINO. Median of --repeats after 3 warm-ups, 2 threads for every runtime.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from forward import median_ms  # benchmarks/forward.py, beside this script
from torch import nn

from yolovis.config import ModelConfig
from yolovis.export.onnx import OnnxRuntimeNetwork, export_onnx
from yolovis.export.openvino import OpenVINONetwork, convert_onnx
from yolovis.model import build_model
from yolovis.model.fuse import fuse_conv_bn


def ours(scale: str, num_classes: int, mish: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = fuse_conv_bn(build_model(ModelConfig(scale=scale, num_classes=num_classes)).eval())
    if not mish:  # only to measure what Mish costs: not the trained network
        for module in list(model.modules()):
            for child_name, child in module.named_children():
                if isinstance(child, nn.Mish):
                    setattr(module, child_name, nn.LeakyReLU(0.1))
    return model


def time_network(model: nn.Module, size: int, root: Path, repeats: int) -> dict[str, float]:
    x = torch.rand(1, 3, size, size)
    onnx_path, xml_path = root / f"net_{size}.onnx", root / f"net_{size}.xml"
    export_onnx(model, onnx_path, (size, size))
    convert_onnx(onnx_path, xml_path)
    with torch.no_grad():
        out = {"pytorch": median_ms(lambda: model.forward_dense(x), repeats)}
    ort, ov = OnnxRuntimeNetwork(onnx_path), OpenVINONetwork(xml_path)
    out["onnxruntime"] = median_ms(lambda: ort(x), repeats)
    out["openvino"] = median_ms(lambda: ov(x), repeats)
    return out


def time_peer(size: int, root: Path, repeats: int) -> dict[str, float]:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    x = torch.rand(1, 3, size, size)
    model = YOLO("yolov8n-seg.yaml")
    net = model.model.eval().fuse(verbose=False)
    with torch.no_grad():
        out = {"pytorch": median_ms(lambda: net(x), repeats)}
    cwd = Path.cwd()
    os.chdir(root)
    try:
        folder = root / YOLO("yolov8n-seg.yaml").export(format="openvino", imgsz=size, half=False, verbose=False)
    finally:
        os.chdir(cwd)
    import openvino

    config = {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }  # as OpenVINONetwork runs ours (its outputs have no names to read)
    request = openvino.Core().compile_model(str(next(folder.glob("*.xml"))), "CPU", config).create_infer_request()
    out["openvino"] = median_ms(lambda: request.infer({0: x.numpy()}), repeats)
    return out


def why_onnxruntime(scale: str, num_classes: int, size: int, root: Path, repeats: int) -> None:
    """ORT's own profile of one graph: time per op type and per output resolution; then Mish swapped out."""
    import onnxruntime as rt

    model = ours(scale, num_classes)
    path = root / "why.onnx"
    export_onnx(model, path, (size, size))
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    options = rt.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.enable_profiling = True
    options.profile_file_prefix = str(root / "ort_profile")
    session = rt.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(3 + repeats):
        session.run(None, {"images": x})
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op, by_res = defaultdict(float), defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        us = e["dur"] / (3 + repeats)
        by_op[e["args"]["op_name"]] += us
        shapes = e["args"].get("output_type_shape") or [{}]
        dims = next(iter(shapes[0].values()), [])
        by_res[f"{size // dims[-1]}" if len(dims) == 4 and dims[-1] else "other"] += us
    total = sum(by_op.values())
    print(f"ONNX Runtime {rt.__version__}, {scale} at {size}x{size}: {total / 1000:.1f} ms of kernels per run")
    print("| op type (after ORT's fusions) | ms | share |\n|---|---|---|")
    for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])[:10]:
        print(f"| {op} | {us / 1000:.2f} | {us / total:.0%} |")
    print("| output stride | ms | share |\n|---|---|---|")
    for res, us in sorted(by_res.items(), key=lambda kv: -kv[1]):
        print(f"| {res} | {us / 1000:.2f} | {us / total:.0%} |")
    print(f"\nthe same graph with every Mish replaced by LeakyReLU (timing only), {scale} at {size}:")
    for name, net in (("Mish (as exported)", model), ("LeakyReLU instead", ours(scale, num_classes, mish=False))):
        got = time_network(net, size, root / name.split()[0], repeats)
        print(f"  {name}: PyTorch {got['pytorch']:.1f} ms, ONNX Runtime {got['onnxruntime']:.1f} ms, "
              f"OpenVINO {got['openvino']:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 416, 640])
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--num-classes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", action="store_true", help="also Ultralytics YOLOv8n-seg, PyTorch and OpenVINO")
    parser.add_argument("--why", action="store_true", help="ONNX Runtime's profile of our graph, Mish swapped out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime
    import openvino

    print(f"# torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.__version__}, "
          f"{platform.machine()}, {args.threads} threads, batch 1, median of {args.repeats}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.why:
            for sub in ("Mish", "LeakyReLU"):
                (root / sub).mkdir()
            why_onnxruntime(args.scale, args.num_classes, args.sizes[len(args.sizes) // 2], root, args.repeats)
            return
        sizes = " / ".join(str(s) for s in args.sizes)
        print(f"| network | PyTorch eager {sizes} (ms) | ONNX Runtime (ms) | OpenVINO (ms) |\n|---|---|---|---|")
        rows = defaultdict(list)
        for size in args.sizes:
            for runtime, ms in time_network(ours(args.scale, args.num_classes), size, root, args.repeats).items():
                rows[runtime].append(f"{ms:.1f}")
        print(f"| yolovis {args.scale} | {' / '.join(rows['pytorch'])} | {' / '.join(rows['onnxruntime'])} | "
              f"{' / '.join(rows['openvino'])} |", flush=True)  # fmt: skip
        if args.peer:
            rows = defaultdict(list)
            for size in args.sizes:
                for runtime, ms in time_peer(size, root, args.repeats).items():
                    rows[runtime].append(f"{ms:.1f}")
            print(f"| YOLOv8n-seg | {' / '.join(rows['pytorch'])} | | {' / '.join(rows['openvino'])} |")


if __name__ == "__main__":
    main()
