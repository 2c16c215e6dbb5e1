"""How long `yolovis evaluate` takes on a results file of the issue's size (default 300 videos x 100 tracks x
36 frames at 720p, 40 classes), measured stage by stage.

    python benchmarks/eval_speed.py [--videos 300] [--tracks 100] [--gt-tracks 10] [--frames 36]
                                    [--height 720] [--width 1280] [--keep DIR]

Masks are moving boxes (pycocotools encodes them in C, so building the files takes seconds). Per video,
`--gt-tracks` ground-truth tracks; the results hold, per ground-truth track, three noisy copies (one with a
random class), then random boxes up to `--tracks` tracks, with random null frames. The files are written as
JSON and scored through `evaluate_files`, exactly as the command line does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from yolovis.data.annotations import parse_vis_annotations, read_json
from yolovis.eval import check_results, evaluate_files


def moving_boxes(rng: np.random.Generator, frames: int, h: int, w: int) -> np.ndarray:
    """(frames, 4) xywh boxes drifting across the frame."""
    bw, bh = rng.uniform(0.05, 0.5) * w, rng.uniform(0.05, 0.5) * h
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    vx, vy = rng.normal(0, 6, 2)
    t = np.arange(frames)
    xs, ys = np.clip(x + vx * t, 0, w - bw), np.clip(y + vy * t, 0, h - bh)
    return np.stack([xs, ys, np.full(frames, bw), np.full(frames, bh)], axis=1)


def segmentations(boxes: np.ndarray, h: int, w: int, rng: np.random.Generator, p_null: float) -> list:
    rles = mask_utils.frPyObjects(boxes.astype(np.float64), h, w)
    return [None if rng.random() < p_null else {"size": [h, w], "counts": r["counts"].decode()} for r in rles]


def build(args: argparse.Namespace) -> tuple[dict, list]:
    rng = np.random.default_rng(0)
    h, w, n, k = args.height, args.width, args.frames, args.classes
    videos, annotations, results = [], [], []
    for v in range(1, args.videos + 1):
        videos.append({"id": v, "width": w, "height": h, "length": n, "file_names": [f"{v}/{f}.jpg" for f in range(n)]})
        made = 0
        for _ in range(args.gt_tracks):
            boxes = moving_boxes(rng, n, h, w)
            cat = int(rng.integers(1, k + 1))
            segs = segmentations(boxes, h, w, rng, 0.05)
            areas = [None if s is None else int(b[2]) * int(b[3]) for s, b in zip(segs, boxes, strict=True)]
            annotations.append({"id": len(annotations) + 1, "video_id": v, "category_id": cat, "iscrowd": 0,
                                "segmentations": segs, "areas": areas})  # fmt: skip
            for copy in range(3):
                if made == args.tracks:
                    break
                noisy = boxes + rng.normal(0, 8, boxes.shape)
                noisy[:, 2:] = np.maximum(noisy[:, 2:], 4)
                rcat = cat if copy < 2 else int(rng.integers(1, k + 1))
                results.append({"video_id": v, "category_id": rcat, "score": float(rng.uniform()),
                                "segmentations": segmentations(noisy, h, w, rng, 0.1)})  # fmt: skip
                made += 1
        for _ in range(args.tracks - made):
            results.append({"video_id": v, "category_id": int(rng.integers(1, k + 1)), "score": float(rng.uniform()),
                            "segmentations": segmentations(moving_boxes(rng, n, h, w), h, w, rng, 0.3)})  # fmt: skip
    gt = {"videos": videos, "annotations": annotations,
          "categories": [{"id": c, "name": f"class{c}"} for c in range(1, k + 1)]}  # fmt: skip
    return gt, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--tracks", type=int, default=100, help="result tracks per video")
    parser.add_argument("--gt-tracks", type=int, default=10, help="ground-truth tracks per video")
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=40)
    parser.add_argument("--keep", default=None, help="write the two files here instead of a temporary folder")
    args = parser.parse_args()

    t0 = time.perf_counter()
    gt, results = build(args)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="yolovis_eval_speed_"))
    folder.mkdir(parents=True, exist_ok=True)
    ann_path, res_path = folder / "ann.json", folder / "results.json"
    ann_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    masks = sum(s is not None for r in results for s in r["segmentations"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; built {args.videos} videos x "
          f"{args.tracks} result tracks x {args.frames} frames at {args.width}x{args.height} ({masks} result masks, "
          f"{res_path.stat().st_size / 1e6:.0f} MB of JSON) in {time.perf_counter() - t0:.1f} s")  # fmt: skip

    t = time.perf_counter()
    ann = parse_vis_annotations(read_json(ann_path), str(ann_path))
    loaded = read_json(res_path)
    print(f"read + parse both files:      {time.perf_counter() - t:7.1f} s")
    t = time.perf_counter()
    assert check_results(ann, loaded) == []
    print(f"results check alone:          {time.perf_counter() - t:7.1f} s")
    t = time.perf_counter()
    m = evaluate_files(ann_path, res_path, tracking=False)
    print(f"evaluate_files, no tracking:  {time.perf_counter() - t:7.1f} s   AP {m['AP']:.4f} AR100 {m['AR100']:.4f}")
    t = time.perf_counter()
    m = evaluate_files(ann_path, res_path, out=folder / "metrics.json")
    tr = m["tracking"]
    print(
        f"evaluate_files, with tracking:{time.perf_counter() - t:7.1f} s   HOTA {tr['HOTA']:.4f} IDF1 {tr['IDF1']:.4f}"
    )
    if not args.keep:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
