"""End-to-end speed of `yolovis track` on a synthetic 720p video, split by stage, the tracker alone, and the
peak memory of a 100- and a 1000-frame run.

    python benchmarks/track_speed.py [--frames 100] [--scales tiny small] [--memory]

Stages per frame: decode (PyAV), network (letterbox + forward), postprocess (decode, NMS, mask head, pasting at
1280x720), tracker (RLE encoding + matching), encode (overlay drawing + H.264). Models are randomly initialised
with the detection threshold at 0 and up to 20 detections per frame, so every stage has work to do.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from yolovis.config import Config, load_config
from yolovis.data.letterbox import letterbox_image
from yolovis.data.synth import SynthConfig, render_video
from yolovis.engine.inference import Detector, save_inference_checkpoint
from yolovis.engine.video import VideoWriter, draw_overlay, open_source
from yolovis.model.detections import Detections
from yolovis.track.greedy import GreedyTracker, TrackerConfig


def make_video(path: Path, frames: int) -> None:
    """A 1280x720 synthetic clip of 20 rendered frames, played forwards and backwards to the length wanted."""
    rendered, _, _ = render_video(SynthConfig(videos=1, frames=20, classes=3, width=1280, height=720, seed=0), 0)
    loop = rendered + rendered[-2:0:-1]
    writer = VideoWriter(path, fps=25)
    for t in range(frames):
        writer.write(loop[t % len(loop)])
    writer.close()


def checkpoint(tmp: Path, scale: str) -> Path:
    cfg = load_config(Config, None, [f"model.scale={scale}", "model.num_classes=3", "img_size=[384, 640]",
                                     "postprocess.score_threshold=0.0", "postprocess.max_per_image=20",
                                     "track.detection_threshold=0.0"])  # fmt: skip
    torch.manual_seed(0)
    path = tmp / f"{scale}.pt"
    save_inference_checkpoint(path, config=cfg)
    return path


def stages(ckpt: Path, video: Path) -> dict[str, float]:
    detector = Detector.from_checkpoint(ckpt)
    tracker = GreedyTracker(detector.config.track)
    writer = VideoWriter(video.with_name("overlay.mp4"), 25)
    names = [c["name"] for c in detector.categories]
    times = dict.fromkeys(("decode", "network", "postprocess", "tracker", "encode"), 0.0)
    frames = iter(open_source(video))
    n = 0
    while True:
        t0 = time.perf_counter()
        item = next(frames, None)
        t1 = time.perf_counter()
        times["decode"] += t1 - t0
        if item is None:
            break
        index, frame = item
        h, w = detector.img_size
        image, info = letterbox_image(frame, h, w)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            output = detector.model(x)
            t2 = time.perf_counter()
            det = detector.postprocess(output, detector.model.mask_head, [info])[0]
        t3 = time.perf_counter()
        ids = tracker.update(index, det)
        t4 = time.perf_counter()
        writer.write(draw_overlay(frame, det, ids, names))
        t5 = time.perf_counter()
        times["network"] += t2 - t1
        times["postprocess"] += t3 - t2
        times["tracker"] += t4 - t3
        times["encode"] += t5 - t4
        n += 1
    writer.close()
    return {k: 1000 * v / n for k, v in times.items()}


def tracker_alone(instances: int, frames: int = 30) -> float:
    """ms per frame of the tracker with `instances` moving rectangles per 1280x720 frame."""
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [1180, 620], (instances, 2))
    tracker = GreedyTracker(TrackerConfig(detection_threshold=0.0))
    total = 0.0
    for t in range(frames):
        xy += rng.normal(0, 2, xy.shape)
        masks = torch.zeros((instances, 720, 1280), dtype=torch.bool)
        boxes = []
        for k, (x, y) in enumerate(xy.astype(int).clip(0, [1180, 620])):
            masks[k, y : y + 100, x : x + 100] = True
            boxes.append([x, y, x + 100, y + 100])
        det = Detections(torch.tensor(boxes, dtype=torch.float32), torch.full((instances,), 0.9),
                         torch.zeros(instances, dtype=torch.long), masks)  # fmt: skip
        start = time.perf_counter()
        tracker.update(t, det)
        total += time.perf_counter() - start
    return 1000 * total / frames


def peak_memory_mb(ckpt: Path, video: Path, out: Path) -> float:
    code = (
        "import resource, sys; from yolovis.cli import main; "
        f"main(['track', r'{ckpt}', r'{video}', '--out', r'{out}']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--scales", nargs="+", default=["tiny", "small"])
    parser.add_argument("--memory", action="store_true", help="also the peak memory of 100 vs 1000 frames")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "video.mp4"
        make_video(video, args.frames)
        print(f"# 1280x720 synthetic video, {args.frames} frames, input 640x384, {args.threads} threads, "
              f"torch {torch.__version__}")  # fmt: skip
        print("| scale | decode | network | postprocess | tracker | encode | total ms/frame | fps |")
        print("|---|---|---|---|---|---|---|---|")
        for scale in args.scales:
            ms = stages(checkpoint(tmp, scale), video)
            total = sum(ms.values())
            cells = " | ".join(f"{v:.1f}" for v in ms.values())
            print(f"| {scale} | {cells} | {total:.1f} | {1000 / total:.1f} |", flush=True)
        print("\n| instances per frame | tracker ms/frame |\n|---|---|")
        for n in (10, 50, 200):
            print(f"| {n} | {tracker_alone(n):.1f} |", flush=True)
        if args.memory:
            ckpt = checkpoint(tmp, "tiny")
            print("\n| frames | peak RSS (MB) |\n|---|---|")
            for frames in (100, 1000):
                clip = tmp / f"clip{frames}.mp4"
                make_video(clip, frames)
                print(f"| {frames} | {peak_memory_mb(ckpt, clip, tmp / f'out{frames}'):.0f} |", flush=True)


if __name__ == "__main__":
    main()
