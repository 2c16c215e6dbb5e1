"""Tiny YouTube-VIS annotation and result dicts built from rectangles, for the evaluation tests."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def rect(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> dict:
    """RLE (string counts) of the rectangle [x0, x1) x [y0, y1) in an h x w frame."""
    m = np.zeros((h, w), dtype=np.uint8, order="F")
    m[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(m)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def track(h: int, w: int, boxes: list) -> list:
    """Per-frame segmentations of one track: a box (x0, y0, x1, y1) or None per frame."""
    return [None if b is None else rect(h, w, *b) for b in boxes]


def dataset(videos: list[tuple[int, int, int, int]], tracks: list[dict], num_categories: int = 2) -> dict:
    """videos: (id, length, height, width); tracks: {video_id, category_id, segmentations[, iscrowd]}."""
    anns = []
    for i, t in enumerate(tracks):
        areas = [
            None if s is None else int(mask_utils.area({**s, "counts": s["counts"].encode()}))
            for s in t["segmentations"]
        ]
        anns.append({"id": i + 1, "iscrowd": 0, "areas": areas, **t})
    return {
        "videos": [
            {"id": vid, "length": n, "height": h, "width": w, "file_names": [f"{vid}/{f:05d}.jpg" for f in range(n)]}
            for vid, n, h, w in videos
        ],
        "categories": [{"id": c + 1, "name": f"class{c + 1}"} for c in range(num_categories)],
        "annotations": anns,
    }


def result(video_id: int, category_id: int, score: float, segmentations: list) -> dict:
    return {"video_id": video_id, "category_id": category_id, "score": score, "segmentations": segmentations}


def perfect_results(gt: dict) -> list:
    return [
        result(a["video_id"], a["category_id"], 1.0, a["segmentations"]) for a in gt["annotations"] if not a["iscrowd"]
    ]


def random_case(seed: int, num_videos: int = 3, h: int = 300, w: int = 400) -> tuple[dict, list]:
    """An imperfect results file: jittered, shifted, split, missing, reclassified and spurious tracks, crowds,
    varied sizes (all three buckets), ties in score."""
    rng = np.random.default_rng(seed)
    videos, tracks, results = [], [], []
    for v in range(num_videos):
        n = int(rng.integers(3, 7))
        videos.append((v + 10, n, h, w))
        for _ in range(int(rng.integers(1, 5))):
            side = float(rng.choice([60, 150, 290]))
            x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
            boxes = []
            for _ in range(n):
                dx, dy, ds = rng.normal(0, 8, 3)
                s = max(4.0, side + ds)
                b = (int(x0 + dx), int(y0 + dy), int(x0 + dx + s), int(y0 + dy + s))
                boxes.append(
                    None
                    if rng.random() < 0.15
                    else tuple(int(np.clip(c, 0, w if i % 2 == 0 else h)) for i, c in enumerate(b))
                )
            cat = int(rng.integers(1, 4))
            crowd = int(rng.random() < 0.1)
            tracks.append(
                {"video_id": v + 10, "category_id": cat, "segmentations": track(h, w, boxes), "iscrowd": crowd}
            )
            for _ in range(int(rng.integers(0, 3))):  # results around this track
                jitter = [
                    None
                    if b is None or rng.random() < 0.15
                    else tuple(int(np.clip(c + rng.normal(0, 10), 0, w if i % 2 == 0 else h)) for i, c in enumerate(b))
                    for b in boxes
                ]
                jitter = [None if b is None or b[2] <= b[0] or b[3] <= b[1] else b for b in jitter]
                rcat = cat if rng.random() < 0.8 else int(rng.integers(1, 4))
                score = float(np.round(rng.uniform(0, 1), 1))  # rounded: ties in score happen
                results.append(result(v + 10, rcat, score, track(h, w, jitter)))
        for _ in range(int(rng.integers(0, 4))):  # spurious tracks
            x0, y0 = int(rng.integers(0, w - 50)), int(rng.integers(0, h - 50))
            boxes = [None if rng.random() < 0.3 else (x0, y0, x0 + 40, y0 + 40) for _ in range(n)]
            results.append(result(v + 10, int(rng.integers(1, 4)), float(rng.uniform(0, 1)), track(h, w, boxes)))
    gt = dataset(videos, tracks, num_categories=3)
    order = rng.permutation(len(results))
    return gt, [results[i] for i in order]
