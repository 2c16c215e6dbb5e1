"""Speed and memory of `yolovis track` on a synthetic 720p video (randomly initialised models: the figures are
about time and memory, not quality).

    python benchmarks/track_speed.py --only masks      # mask IoU and RLE encoding options, 50 x 50 masks
    python benchmarks/track_speed.py --only tracker    # GreedyTracker.update per frame at 10, 50, 200 instances
    python benchmarks/track_speed.py --only steps [--checkpoint RUN/last.pt]
                                                       # letterbox, box selection, mask head, apart
    python benchmarks/track_speed.py --only e2e        # frames/s per scale, split into phases
    python benchmarks/track_speed.py --only e2e --scales tiny --backend pytorch onnx openvino --peer
                                                       # the checkpoint, its exports, Ultralytics' OpenVINO
                                                       # YOLOv8n-seg `track`: one run, one video
    python benchmarks/track_speed.py --only memory     # peak RSS of `yolovis track` on 100 and 1000 frames

Phases of the end-to-end split: decode (PyAV), network (the fully convolutional part: PyTorch's forward_dense or
the exported network), postprocess (letterbox, box selection and NMS, mask head, pasting masks at the frame
size; the mask head is also shown apart), encode (RLE of every tracked mask), tracker (matching, given the
RLEs), write (overlay drawing, H.264, MOT rows, results.json).

    python benchmarks/track_speed.py --only e2e --checkpoint RUN/last.pt --backend pytorch openvino
                                                       # a demo-trained checkpoint at its own thresholds on a
                                                       # synthetic 720p video of the shapes it knows
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_utils

from yolovis.config import Config, TrackerConfig, load_config
from yolovis.data.masks import to_rle
from yolovis.engine.checkpoint import checkpoint_config, read_checkpoint, save_inference_checkpoint
from yolovis.engine.inference import Detector
from yolovis.engine.stream import Profile
from yolovis.engine.track import TrackOptions, track_video
from yolovis.io.video import VideoWriter
from yolovis.model.detections import Detections
from yolovis.track import encode_masks
from yolovis.track.build import build_tracker

H, W = 720, 1280


def blobs(n: int, rng: np.random.Generator, shift: float = 0.0, centres: np.ndarray | None = None) -> np.ndarray:
    """(n, H, W) bool elliptic blobs of 20-150 px radius."""
    yy, xx = np.ogrid[:H, :W]
    if centres is None:
        centres = np.column_stack([rng.uniform(0, W, n), rng.uniform(0, H, n), rng.uniform(20, 150, n)])
    masks = np.zeros((n, H, W), dtype=bool)
    for k, (cx, cy, r) in enumerate(centres):
        masks[k] = (xx - cx - shift) ** 2 + ((yy - cy) * 1.3) ** 2 < r * r
    return masks


def timeit(fn, repeats: int = 5) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def interleaved(fns: dict[str, object], repeats: int = 30, warmup: int = 3) -> dict[str, float]:
    """Mean ms per call of each function, the functions taking turns (A/B/A/B...) so drift hits all alike."""
    total = dict.fromkeys(fns, 0.0)
    for r in range(repeats + warmup):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if r >= warmup:
                total[name] += time.perf_counter() - start
    return {name: t / repeats * 1000 for name, t in total.items()}


def float_letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """The letterbox resize as it was until this change: through float32 (same filter), rounded to uint8."""
    import torch.nn.functional as F

    from yolovis.data.letterbox import PAD_VALUE, LetterboxInfo

    info = LetterboxInfo.fit(image.shape[0], image.shape[1], size, size)
    h, w = info.resized_hw
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    tensor = F.interpolate(tensor, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    out = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    out[:h, :w] = tensor[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def plain_selection_scores(predictions: list[torch.Tensor], threshold: float) -> list[torch.Tensor]:
    """The selection scoring as it was until this change: the class softmax over every cell, then the threshold."""
    out = []
    for pred in predictions:
        class_prob, _ = pred[..., 5:].contiguous().softmax(-1).flatten(1, 3).max(-1)
        scores = pred[..., 4].sigmoid().flatten(1) * class_prob
        out.append((scores[0] > threshold).nonzero())
    return out


def bench_steps(checkpoint: Path | None, img_size: int) -> None:
    """The steps after the network, apart: the letterbox (uint8 resize vs the float path it replaced), the box
    selection (objectness-first vs scoring every cell) and the mask head (RoIAlign, convolutions)."""
    from torchvision.ops import roi_align

    from yolovis.data.letterbox import letterbox_image
    from yolovis.model.detector import selection_for_inference
    from yolovis.model.mask_head import ROI_SIZE
    from yolovis.model.proposals import select_boxes

    rng = np.random.default_rng(0)
    print(f"steps after the network, mean ms of 30 interleaved calls, {torch.get_num_threads()} threads")
    for h, w in ((720, 1280), (1080, 1920)):
        frame = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        got = interleaved({"float path (before)": lambda frame=frame: float_letterbox(frame, img_size),
                           "uint8 path": lambda frame=frame: letterbox_image(frame, img_size, img_size)})  # fmt: skip
        print(f"  letterbox {w}x{h} -> {img_size}: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            checkpoint = Path(tmp) / "tiny.pt"
            save_inference_checkpoint(
                checkpoint, config=load_config(Config, None, [f"img_size=[{img_size}, {img_size}]"])
            )
        detector = Detector.from_checkpoint(checkpoint)
    model = detector.model
    frame = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    batch, _ = detector.preprocess([frame])
    with torch.no_grad():
        dense = model.forward_dense(batch)
    anchors = model.anchors_for(*dense.input_size)
    selection = selection_for_inference(detector.config.postprocess)
    got = interleaved({
        "its first step as it was (every cell scored)": lambda: plain_selection_scores(
            dense.predictions, selection.score_threshold
        ),
        "whole select_boxes now": lambda: select_boxes(dense.predictions, anchors, model.strides, selection),
    })  # fmt: skip
    print(f"  box selection, a noise frame at {dense.input_size}, threshold {selection.score_threshold} "
          f"({checkpoint.name}): "
          + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))  # fmt: skip
    for n in (3, 20, 50):
        corners = torch.rand(n, 2, generator=torch.Generator().manual_seed(n)) * 200
        rois = [torch.cat((corners, corners + 20 + corners.flip(1) / 2), dim=1)]
        with torch.no_grad():
            got = interleaved({
                "RoIAlign x levels": lambda rois=rois: [roi_align(e, rois, ROI_SIZE, 1.0 / s, 2, True)
                                              for e, s in zip(dense.embeddings, model.strides, strict=True)],
                "whole mask head": lambda rois=rois: model.mask_head(dense.embeddings, rois),
            })  # fmt: skip
        print(f"  mask head, {n} RoIs: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items()))


def bench_masks() -> None:
    import cv2

    rng = np.random.default_rng(0)
    a, b = torch.from_numpy(blobs(50, rng)), torch.from_numpy(blobs(50, rng))
    ra, rb = encode_masks(a), encode_masks(b)
    reference = np.asarray(mask_utils.iou(ra, rb, [0] * 50))

    def numpy_encode():
        return mask_utils.encode(np.asfortranarray(a.numpy().transpose(1, 2, 0).astype(np.uint8)))

    def matmul_iou(x: torch.Tensor, y: torch.Tensor, factor: int) -> np.ndarray:
        fx = (
            torch.nn.functional.avg_pool2d(x[None].float(), factor)[0].flatten(1)
            if factor > 1
            else x.flatten(1).float()
        )
        fy = (
            torch.nn.functional.avg_pool2d(y[None].float(), factor)[0].flatten(1)
            if factor > 1
            else y.flatten(1).float()
        )
        inter = fx @ fy.T
        return (inter / (fx.sum(1)[:, None] + fy.sum(1)[None] - inter)).numpy()

    print(f"50 blob masks at {W}x{H} vs 50 others, {torch.get_num_threads()} threads")
    print(f"  RLE encode, numpy transpose (pycocotools' usual way): {timeit(numpy_encode):8.1f} ms")
    print(f"  RLE encode, OpenCV transpose (encode_masks):          {timeit(lambda: encode_masks(a)):8.1f} ms")
    buf = np.empty((50, W, H), np.uint8)
    print(
        f"    of which the OpenCV transpose:                      "
        f"{timeit(lambda: [cv2.transpose(m, buf[k]) for k, m in enumerate(a.numpy().view(np.uint8))]):8.1f} ms"
    )
    print(
        f"  IoU, pycocotools RLE iou:                      {timeit(lambda: mask_utils.iou(ra, rb, [0] * 50)):8.2f} ms"
    )
    for factor in (4, 1):
        ms = timeit(lambda f=factor: matmul_iou(a, b, f), repeats=2)
        err = np.abs(matmul_iou(a, b, factor) - reference).max()
        print(f"  IoU, float matmul on masks down-sampled x{factor} (incl. pooling): {ms:8.1f} ms, max error {err:.4f}")
    packed = np.packbits(a.numpy().reshape(50, -1), axis=1)
    print(
        f"  memory per mask: bitmap {H * W / 1e3:.0f} kB, bit-packed {packed.shape[1] / 1e3:.0f} kB, "
        f"RLE {np.mean([len(r['counts']) for r in ra]) / 1e3:.2f} kB"
    )


def moving_detections(n: int, frames: int, rng: np.random.Generator) -> list[Detections]:
    centres = np.column_stack([rng.uniform(0, W, n), rng.uniform(0, H, n), rng.uniform(20, 150, n)])
    out = []
    for t in range(frames):
        masks = torch.from_numpy(blobs(n, rng, shift=3.0 * t, centres=centres))
        boxes = torch.tensor([[cx - r, cy - r, cx + r, cy + r] for cx, cy, r in centres], dtype=torch.float32)
        out.append(Detections(boxes, torch.full((n,), 0.9), torch.randint(0, 3, (n,)), masks))
    return out


def bench_tracker(frames: int = 20) -> dict[tuple[str, int], float]:
    per_frame = {}
    for method in ("greedy", "memory"):
        rng = np.random.default_rng(0)
        print(f"{method} tracker.update per frame at {W}x{H} ({frames} frames, moving blobs), "
              f"{torch.get_num_threads()} threads")  # fmt: skip
        for n in (10, 50, 200):
            per_frame[method, n] = bench_one_tracker(method, n, frames, rng)
    return per_frame


def bench_one_tracker(method: str, n: int, frames: int, rng: np.random.Generator) -> float:
    """ms per frame of `method`'s update at n moving instances (the RLE encoding timed apart)."""
    dets = moving_detections(n, frames, rng)
    tracker = build_tracker(TrackerConfig(method=method, detection_threshold=0.0, new_track_threshold=0.0))
    encode_s = track_s = 0.0
    for t, d in enumerate(dets):
        start = time.perf_counter()
        rles = tracker.encode(d)
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        tracker.update(t, d, rles)
        track_s += time.perf_counter() - start
    ms = track_s / frames * 1000
    print(f"  {n:4d} instances: tracker {ms:7.2f} ms/frame (RLE encoding, apart: "
          f"{encode_s / frames * 1000:7.1f} ms/frame); {len(tracker.tracks)} tracks")  # fmt: skip
    return ms


def make_video(path: Path, frames: int, fps: int = 25, size: tuple[int, int] = (H, W)) -> None:
    """(H, W) frames (720p by default) of a few moving discs over a gradient (cheap to draw, not empty to the
    codec)."""
    import cv2

    h, w = size
    writer = VideoWriter(path, fps)
    base = np.broadcast_to(np.linspace(0, 200, w, dtype=np.uint8)[None, :, None], (h, w, 3)).copy()
    for t in range(frames):
        frame = base.copy()
        for k in range(6):
            centre = (int(100 + 180 * k + 5 * t) % w, int(150 + 80 * k) % h)
            cv2.circle(frame, centre, 60 + 10 * k, (40 * k, 255 - 30 * k, 120), -1)
        writer.write(frame)
    writer.close()


def checkpoint(path: Path, scale: str, detections: int = 50, img_size: int = 416) -> None:
    overrides = [f"model.scale={scale}", "model.num_classes=40", "postprocess.score_threshold=0.0",
                 f"postprocess.max_per_image={detections}", "track.detection_threshold=0.0",
                 "track.new_track_threshold=0.0", f"img_size=[{img_size}, {img_size}]"]  # fmt: skip
    torch.manual_seed(0)
    save_inference_checkpoint(path, config=load_config(Config, None, overrides))


def load_backend(ckpt: Path, backend: str, device: str) -> Detector:
    """The checkpoint in PyTorch, or its export (written beside it) in ONNX Runtime or OpenVINO."""
    if backend == "pytorch":
        return Detector.from_checkpoint(ckpt, device=device)
    from yolovis.export.folder import default_folder, export_checkpoint

    folder = default_folder(ckpt, backend)
    if not folder.exists():
        export_checkpoint(ckpt, backend)
    return Detector.from_checkpoint(folder)


def timed_network(detector: Detector, profile: Profile, device: str) -> None:
    """Count the fully convolutional part under "network": the exported network, or PyTorch's forward_dense."""
    owner, name = (detector, "network") if detector.network is not None else (detector.model, "forward_dense")
    forward = getattr(owner, name)

    def timed(*args, **kwargs):
        with profile.phase("network"):
            out = forward(*args, **kwargs)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        return out

    setattr(owner, name, timed)


def timed_mask_head(detector: Detector, profile: Profile) -> None:
    """Count the mask head (RoIAlign and its convolutions) under "mask_head", inside the postprocess's time."""
    started = [0.0]

    def start(*_):
        started[0] = time.perf_counter()

    def stop(*_):
        profile.seconds["mask_head"] = profile.seconds.get("mask_head", 0.0) + time.perf_counter() - started[0]

    detector.model.mask_head.register_forward_pre_hook(start)
    detector.model.mask_head.register_forward_hook(stop)


def synth_video(path: Path, frames: int, size: tuple[int, int], classes: int) -> None:
    """A video of the synthetic data a demo checkpoint was trained on (its shapes and classes), at `size`."""
    from yolovis.data.synth import SynthConfig, generate
    from yolovis.io.video import open_source

    h, w = size
    generate(path.parent / "synth", SynthConfig(videos=1, frames=frames, classes=classes, width=w, height=h, seed=7))
    writer = VideoWriter(path, 25)
    for _, frame in open_source(path.parent / "synth" / "JPEGImages" / "video_0000"):
        writer.write(frame)
    writer.close()


def compare_results(results: list[dict], reference: list[dict], tolerance: float = 1e-4) -> str:
    """Whether two runtimes gave the same tracks: "same" (every segmentation equal), "same tracks, mask IoU >= x"
    (videos, categories, frames present and scores within `tolerance` equal; masks within float noise, as a pixel
    at the 0.5 threshold may flip between runtimes), or "DIFFER"."""
    if len(results) != len(reference):
        return "DIFFER"
    worst = 1.0
    for r, q in zip(results, reference, strict=True):
        same_track = (r["video_id"], r["category_id"]) == (q["video_id"], q["category_id"])
        if not same_track or abs(r["score"] - q["score"]) > tolerance:
            return "DIFFER"
        for a, b in zip(r["segmentations"], q["segmentations"], strict=True):
            if (a is None) != (b is None):
                return "DIFFER"
            if a is not None and a != b:
                worst = min(worst, float(mask_utils.iou([to_rle(a, *a["size"])], [to_rle(b, *b["size"])], [0])[0, 0]))
    return "same" if worst == 1.0 else f"same tracks, mask IoU >= {worst:.5f}" if worst >= 0.99 else "DIFFER"


def bench_e2e(scales: list[str], backends: list[str], frames: int, root: Path, device: str, size: tuple[int, int],
              detections: int, img_size: int, peer: bool, trained: Path | None = None,
              video_out: bool = True) -> None:  # fmt: skip
    video = root / f"clip_{frames}_{size[0]}.mp4"
    if trained is not None:  # the checkpoint as trained (its thresholds) on the synthetic data it knows
        scales = ["trained"]
        saved = read_checkpoint(trained)
        synth_video(video, frames, size, len(saved["categories"]))
        what = f"trained checkpoint {trained.name}, its thresholds, synthetic objects"
        img_h, img_w = checkpoint_config(saved, trained).img_size
    else:
        make_video(video, frames, size=size)
        what = f"{detections} detections/frame (untrained model, thresholds 0)"
        img_h = img_w = img_size
    overlay = "overlay written" if video_out else "no overlay (--no-video)"
    print(f"yolovis track on a {frames}-frame {size[1]}x{size[0]} H.264 video, input {img_w}x{img_h}, "
          f"{what}, {overlay}, {torch.get_num_threads()} threads, device {device}")  # fmt: skip
    print("| scale | backend | fps | ms/frame | decode | network | postprocess | (of which mask head) | encode (RLE) | "
          "tracker | write | tracks |\n|---|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for scale in scales:
        ckpt = root / f"{scale}.pt"
        if trained is not None:
            shutil.copy(trained, ckpt)
        else:
            checkpoint(ckpt, scale, detections, img_size)
        reference = None
        for backend in backends:
            detector = load_backend(ckpt, backend, device)
            profile = Profile()
            timed_network(detector, profile, device)
            timed_mask_head(detector, profile)
            out = root / f"out_{scale}_{backend}"
            start = time.perf_counter()
            track_video(detector, video, out, TrackOptions(device=device, video=video_out), profile, progress=False)
            total = time.perf_counter() - start
            s = profile.seconds
            phases = {"decode": s["decode"], "network": s["network"], "postprocess": s["detect"] - s["network"],
                      "mask head": s.get("mask_head", 0.0), "encode": s["encode"], "tracker": s["tracker"],
                      "write": s["write"]}  # fmt: skip
            cells = " | ".join(f"{v / frames * 1000:.1f} ms ({v / total:.0%})" for v in phases.values())
            results = json.loads((out / "results.json").read_text())
            reference = results if reference is None else reference
            same = "reference" if backend == backends[0] else compare_results(results, reference)
            print(f"| {scale} | {backend} | {frames / total:.2f} | {total / frames * 1000:.0f} | {cells} | "
                  f"{len(results)}, {same} |", flush=True)  # fmt: skip
    if peer:
        from ultralytics_track import export_yolov8n_seg, track_fps  # benchmarks/, beside this script

        model_dir = export_yolov8n_seg(root, img_size)
        got = track_fps(model_dir, video, root / "ultralytics", img_size, detections, frames)
        print(f"| YOLOv8n-seg | Ultralytics OpenVINO, its `track` (ByteTrack) | {got['fps']:.2f} | "
              f"{got['ms_per_frame']:.0f} | network {got['network_ms']:.1f} ms (its timer) |", flush=True)  # fmt: skip


def peak_rss_of_track(ckpt: Path, video: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of a `yolovis track` subprocess."""
    code = (
        "import resource, sys; from yolovis.cli import main; code = main(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, "track", str(ckpt), str(video), "--out", str(out)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    peak = next(int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK"))
    return peak / 1024, time.perf_counter() - start


def bench_memory(lengths: list[int], root: Path, scale: str, detections: int, img_size: int) -> None:
    ckpt = root / f"mem_{scale}.pt"
    checkpoint(ckpt, scale, detections, img_size)
    print(
        f"peak RSS of `yolovis track` ({scale}, input {img_size}, {W}x{H} video, {detections} detections/frame "
        "tracked, overlay written)"
    )
    base = None
    for n in lengths:
        video = root / f"mem_{n}.mp4"
        make_video(video, n)
        peak, seconds = peak_rss_of_track(ckpt, video, root / f"mem_out_{n}")
        results = json.loads((root / f"mem_out_{n}" / "results.json").read_text())
        base = base or peak
        print(
            f"  {n:5d} frames: peak RSS {peak:7.1f} MiB ({peak / base - 1:+.1%} vs the first), {seconds:.0f} s, "
            f"{len(results)} tracks, results.json {(root / f'mem_out_{n}' / 'results.json').stat().st_size / 1e6:.1f}MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["masks", "tracker", "steps", "e2e", "memory"], default=None)
    parser.add_argument("--scales", nargs="+", default=["tiny", "small", "full"])
    parser.add_argument("--frames", type=int, default=20, help="frames of the end-to-end run")
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000], help="frames of the memory runs")
    parser.add_argument("--memory-scale", default="tiny")
    parser.add_argument("--memory-detections", type=int, default=50, help="detections per frame of the memory runs")
    parser.add_argument("--memory-img-size", type=int, default=416, help="network input of the memory runs")
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["pytorch"],
        choices=["pytorch", "onnx", "openvino"],
        help="e2e: run the checkpoint and/or its exports (the first is the reference for tracks)",
    )
    parser.add_argument("--peer", action="store_true", help="e2e: also Ultralytics' OpenVINO YOLOv8n-seg `track`")
    parser.add_argument("--no-video", action="store_true", help="e2e: no overlay.mp4 (`yolovis track --no-video`)")
    parser.add_argument("--frame-size", default="1280x720", help="e2e: WxH of the video")
    parser.add_argument("--detections", type=int, default=50, help="e2e: detections per frame, all tracked")
    parser.add_argument("--img-size", type=int, default=416, help="e2e, steps: network input (square)")
    parser.add_argument("--checkpoint", default=None,
                        help="e2e, steps: a checkpoint trained on the demo's synthetic data (not random)")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "masks"):
            bench_masks()
        if args.only in (None, "tracker"):
            bench_tracker()
        if args.only in (None, "steps"):
            bench_steps(Path(args.checkpoint) if args.checkpoint else None, args.img_size)
        if args.only in (None, "e2e"):
            w, h = (int(v) for v in args.frame_size.split("x"))
            bench_e2e(args.scales, args.backend, args.frames, root, args.device, (h, w), args.detections,
                      args.img_size, args.peer, Path(args.checkpoint) if args.checkpoint else None,
                      not args.no_video)  # fmt: skip
        if args.only in (None, "memory"):
            bench_memory(args.lengths, root, args.memory_scale, args.memory_detections, args.memory_img_size)
    print(f"(peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
