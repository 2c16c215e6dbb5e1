"""A slow, independent reference for the YouTube-VIS video metrics, for tests only.

Written from the definitions of the official evaluator (youtubevos/cocoapi ytvoseval.py), not from our package:
masks decoded to NumPy arrays, the spatio-temporal IoU summed pixel by pixel, greedy matching, the precision
envelope and the 101 recall points all written as plain loops. It shares nothing with `yolovis.eval` except
pycocotools' decoder.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
AREAS = {"all": (0.0, 1e10), "small": (0.0, 128.0**2), "medium": (128.0**2, 256.0**2), "large": (256.0**2, 1e10)}


def decode(seg, h: int, w: int) -> np.ndarray | None:
    if not seg:
        return None
    if isinstance(seg, list):  # polygons
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, h, w))).astype(bool)
    if isinstance(seg["counts"], list):
        return mask_utils.decode(mask_utils.frPyObjects(seg, h, w)).astype(bool)
    return mask_utils.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def mean_nonzero(areas: list) -> float:
    present = [a for a in areas if a]
    return sum(present) / len(present) if present else 0.0


def prepare(gt: dict, results: list) -> dict:
    """Per video: categories, scores, crowd flags and mean areas of the tracks, and the IoU of every pair.

    Frame by frame (only one frame's masks are decoded at a time): the intersection and union of each pair are
    counted pixel by pixel, a frame where only one track is present adds that track's pixels to the union.
    """
    videos = {}
    for v in sorted(gt["videos"], key=lambda v: v["id"]):
        h, w = v["height"], v["width"]
        g = [a for a in gt.get("annotations", []) if a["video_id"] == v["id"]]
        d = [r for r in results if r["video_id"] == v["id"]]
        inter = np.zeros((len(d), len(g)))
        union = np.zeros((len(d), len(g)))
        g_pixels = [[] for _ in g]
        d_pixels = [[] for _ in d]
        for f in range(v["length"]):
            gm = [decode(a["segmentations"][f], h, w) for a in g]
            dm = [decode(r["segmentations"][f], h, w) for r in d]
            for j, b in enumerate(gm):
                g_pixels[j].append(0 if b is None else int(b.sum()))
            for i, a in enumerate(dm):
                d_pixels[i].append(0 if a is None else int(a.sum()))
                for j, b in enumerate(gm):
                    if a is not None and b is not None:
                        inter[i, j] += int(np.logical_and(a, b).sum())
                        union[i, j] += int(np.logical_or(a, b).sum())
                    elif a is not None:
                        union[i, j] += int(a.sum())
                    elif b is not None:
                        union[i, j] += int(b.sum())
        videos[v["id"]] = {
            "gt_cat": [a["category_id"] for a in g],
            "gt_crowd": [bool(a.get("iscrowd", 0)) for a in g],
            "gt_area": [mean_nonzero(a["areas"] if "areas" in a else p) for a, p in zip(g, g_pixels, strict=True)],
            "dt_cat": [r["category_id"] for r in d],
            "dt_score": [r["score"] for r in d],
            "dt_area": [mean_nonzero(p) for p in d_pixels],
            "iou": np.where(union > 0, inter / np.maximum(union, 1), 0.0).tolist(),
        }
    return videos


def match_video(v: dict, cat, area: tuple, max_det: int, thr: float) -> tuple[list, int]:
    """-> ([(score, kind)] with kind 'tp', 'fp' or 'ignore'), number of non-ignored ground truths."""
    gts = [j for j, c in enumerate(v["gt_cat"]) if c == cat]
    ignored = {j: v["gt_crowd"][j] or not area[0] <= v["gt_area"][j] <= area[1] for j in gts}
    dts = [i for i, c in enumerate(v["dt_cat"]) if c == cat]
    dts = sorted(dts, key=lambda i: -v["dt_score"][i])[:100][:max_det]  # sorted() is stable
    taken = set()
    out = []
    for i in dts:
        best = None
        for want_ignored in (False, True):  # a regular ground truth first, an ignored one only failing that
            best_iou = thr
            for j in gts:
                if ignored[j] != want_ignored or (j in taken and not v["gt_crowd"][j]):
                    continue
                if v["iou"][i][j] >= best_iou:
                    best_iou, best = v["iou"][i][j], j
            if best is not None:
                break
        if best is not None:
            taken.add(best)
            out.append((v["dt_score"][i], "ignore" if ignored[best] else "tp"))
        elif not area[0] <= v["dt_area"][i] <= area[1]:
            out.append((v["dt_score"][i], "ignore"))
        else:
            out.append((v["dt_score"][i], "fp"))
    return out, sum(not ig for ig in ignored.values())


def precision_recall(videos: dict, cat, area: tuple, max_det: int, thr: float) -> tuple[list | None, float]:
    """-> (precision at the 101 recall points, final recall), or (None, -1) without ground truth."""
    scored, n_gt = [], 0
    for vid in sorted(videos):
        out, n = match_video(videos[vid], cat, area, max_det, thr)
        scored += out
        n_gt += n
    if n_gt == 0:
        return None, -1.0
    scored = sorted(scored, key=lambda x: -x[0])
    tp = fp = 0
    recalls, precisions = [], []
    for _, kind in scored:
        if kind == "ignore":
            continue
        tp += kind == "tp"
        fp += kind == "fp"
        recalls.append(tp / n_gt)
        precisions.append(tp / (tp + fp))
    for i in range(len(precisions) - 2, -1, -1):  # the envelope: best precision at this recall or beyond
        precisions[i] = max(precisions[i], precisions[i + 1])
    sampled = []
    for r in RECALL_THRESHOLDS:
        reached = [i for i, rc in enumerate(recalls) if rc >= r]
        sampled.append(precisions[reached[0]] if reached else 0.0)
    return sampled, (recalls[-1] if recalls else 0.0)


def reference_metrics(gt: dict, results: list) -> dict:
    videos = prepare(gt, results)
    cats = sorted(c["id"] for c in gt["categories"])

    def average(kind: str, area: str, max_det: int, thresholds=IOU_THRESHOLDS, cat_list=None) -> float:
        values = []
        for cat in cat_list or cats:
            for thr in thresholds:
                sampled, recall = precision_recall(videos, cat, AREAS[area], max_det, thr)
                if sampled is not None:
                    values.append(np.mean(sampled) if kind == "AP" else recall)
        return float(np.mean(values)) if values else -1.0

    t = IOU_THRESHOLDS
    out = {
        "AP": average("AP", "all", 100),
        "AP50": average("AP", "all", 100, t[[0]]),
        "AP75": average("AP", "all", 100, t[[5]]),
        "APs": average("AP", "small", 100),
        "APm": average("AP", "medium", 100),
        "APl": average("AP", "large", 100),
        "AR1": average("AR", "all", 1),
        "AR10": average("AR", "all", 10),
        "AR100": average("AR", "all", 100),
        "ARs": average("AR", "small", 100),
        "ARm": average("AR", "medium", 100),
        "ARl": average("AR", "large", 100),
        "AP80": average("AP", "all", 100, t[[6]]),
    }
    out["per_category_AP"] = {cat: average("AP", "all", 100, cat_list=[cat]) for cat in cats}
    return out
