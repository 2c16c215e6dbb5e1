"""The official YouTube-VIS video metrics (AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l) and extras.

Definitions follow the YouTube-VIS fork of cocoapi (youtubevos/cocoapi, PythonAPI/pycocotools/ytvoseval.py),
whose own code no longer runs on current NumPy:
- the IoU of two tracks is the spatio-temporal mask IoU of `video_iou.py`;
- a track's area, for the size buckets, is the mean over frames of its non-null, non-zero areas: the file's
  `areas` for ground truth (mask areas where a file has none), mask areas for results; buckets split at 128^2
  and 256^2;
- per video and category the results are sorted by score (stable: ties keep file order) and only the first
  100 are kept, so the cap is 100 per video *and category*, exactly as the official `computeIoU` does;
- crowd ground truth is ignored: a result matched to it is neither a true nor a false positive, and several
  results may match it; its IoU is the ordinary one (the official code does not use crowd IoU);
- matching, 101-point interpolated precision and recall are pycocotools' COCOeval (`evaluateImg`,
  `accumulate`, `summarize`) unchanged, with videos in the place of images: `VideoCOCOeval` only replaces
  `evaluate()` so that it reads our video IoUs and areas instead of computing image ones.
A figure is -1 where no ground truth exists for it (e.g. APl without large objects), as in the official code.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.cocoeval import COCOeval

from yolovis.data.annotations import parse_vis_annotations
from yolovis.data.masks import SegmentationError, to_rle
from yolovis.errors import UserError
from yolovis.eval.checks import ensure_valid_results, rle_string_totals
from yolovis.eval.confusion import add_to_confusion, match_ignoring_class
from yolovis.eval.tracking import TrackingAccumulator
from yolovis.eval.video_iou import video_overlaps

OFFICIAL_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
AREA_RANGES = [[0**2, 1e5**2], [0**2, 128**2], [128**2, 256**2], [256**2, 1e5**2]]


class VideoCOCOeval(COCOeval):
    """COCOeval over videos: `_gts`, `_dts` and `ious` are given, keyed by (video id, category id)."""

    def __init__(self, gts: dict, dts: dict, ious: dict, video_ids: list, category_ids: list):
        super().__init__(iouType="segm")
        self.params.imgIds = sorted(video_ids)  # the official code evaluates videos in increasing id order
        self.params.catIds = sorted(category_ids)
        self.params.areaRng = AREA_RANGES
        self._gts, self._dts, self.ious = gts, dts, ious

    def evaluate(self) -> None:
        p = self.params
        self.evalImgs = [
            self.evaluateImg(vid, cat, area, p.maxDets[-1])
            for cat in p.catIds
            for area in p.areaRng
            for vid in p.imgIds
        ]
        self._paramsEval = copy.deepcopy(p)


@dataclass
class VISEvaluation:
    metrics: dict  # the official keys, then AP80, per_category, tracking, confusion, counts
    precision: np.ndarray  # (T, R, K, A, M) COCOeval's, -1 where undefined
    recall: np.ndarray  # (T, K, A, M)
    iou_thresholds: np.ndarray  # (T,) 0.50:0.05:0.95
    recall_thresholds: np.ndarray  # (R,) 0:0.01:1
    category_names: list[str]  # (K,) in increasing category id
    confusion: np.ndarray  # (K, K + 1) ground-truth class x matched class (+ "missed")


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def _result_rle(seg: Any, height: int, width: int) -> dict | None:
    # Falsy entries (null, {} or []) are absent frames, as the official `if seg:` reads them.
    if not seg:
        return None
    if isinstance(seg["counts"], str):
        return {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    return to_rle(seg, height, width)


def _gt_rles(track, height: int, width: int, where: str) -> list:
    rles = []
    for f, seg in enumerate(track.segmentations):
        try:
            rles.append(to_rle(seg, height, width) if seg else None)
        except SegmentationError as e:
            raise UserError(f"{where} annotation {track.id} frame {f}: {e}") from None
    strings = [(f, r["counts"]) for f, r in enumerate(rles) if r is not None]
    if strings:  # a corrupt compressed string would make pycocotools loop or read garbage
        totals, ok = rle_string_totals([s for _, s in strings])
        for (f, _), total, good in zip(strings, totals, ok, strict=True):
            if not good or total != height * width:
                raise UserError(f"{where} annotation {track.id} frame {f}: malformed RLE counts string")
    return rles


def _mean_area(areas: list | None, total: int, nonzero_frames: int) -> float:
    if areas is None:  # no 'areas' in the file: mask areas, which is what the file's would be
        return total / nonzero_frames if nonzero_frames else 0.0
    present = [a for a in areas if a]
    return float(np.mean(present)) if present else 0.0


def evaluate_vis(
    gt: dict,
    results: list,
    *,
    gt_source: str = "annotations",
    results_source: str = "results",
    tracking: bool | None = None,
    track_score_threshold: float = 0.0,
    confusion_iou_threshold: float = 0.5,
) -> VISEvaluation:
    """Score a YouTube-VIS results list against a parsed annotation dict (both in memory).

    The results are checked first (`checks.py`); any problem raises `ResultsError` (a UserError) listing
    every offending result, video and frame. Results for a video the annotation lacks are such a problem.
    """
    ann = parse_vis_annotations(gt, gt_source)
    ensure_valid_results(ann, results, results_source)
    file_areas = {a["id"]: a.get("areas") for a in gt.get("annotations") or []}
    categories = sorted(ann.categories, key=lambda c: c["id"])
    cat_ids = [c["id"] for c in categories]
    label_of = {c: k for k, c in enumerate(cat_ids)}
    results_by_video: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        results_by_video[r["video_id"]].append(i)

    gts: dict = defaultdict(list)
    dts: dict = defaultdict(list)
    ious: dict = {}
    confusion = np.zeros((len(cat_ids), len(cat_ids) + 1), dtype=np.int64)
    if tracking is None:  # the default (and the CLI's): tracking metrics are always available; False skips them
        tracking = True
    tracker = TrackingAccumulator(track_score_threshold) if tracking else None
    next_gt_id = next_dt_id = 1  # our own ids: COCOeval takes id 0 for "unmatched"
    for video in ann.videos:
        where = f"{gt_source}: video {video.id}"
        gt_tracks = [ann.tracks[t] for t in ann.tracks_by_video[video.id]]
        dt_index = results_by_video.get(video.id, [])
        g_rles = [_gt_rles(t, video.height, video.width, where) for t in gt_tracks]
        d_rles = [[_result_rle(s, video.height, video.width) for s in results[i]["segmentations"]] for i in dt_index]
        ov = video_overlaps(d_rles, g_rles, video.length)
        iou = ov.iou
        gt_cat = np.array([t.category_id for t in gt_tracks], dtype=np.int64)
        gt_crowd = np.array([t.iscrowd for t in gt_tracks], dtype=bool)
        dt_cat = np.array([results[i]["category_id"] for i in dt_index], dtype=np.int64)
        dt_score = np.array([results[i]["score"] for i in dt_index], dtype=np.float64)

        for cat in set(gt_cat.tolist()) | set(dt_cat.tolist()):
            g_sel = np.flatnonzero(gt_cat == cat)
            d_sel = np.flatnonzero(dt_cat == cat)
            d_sel = d_sel[np.argsort(-dt_score[d_sel], kind="mergesort")][:100]
            for j in g_sel:
                area = _mean_area(file_areas.get(gt_tracks[j].id), ov.gt_area[j], ov.gt_nonzero[j])
                crowd = int(gt_crowd[j])
                gts[video.id, cat].append({"id": next_gt_id, "area": area, "iscrowd": crowd, "ignore": crowd})
                next_gt_id += 1
            for i in d_sel:
                area = _mean_area(None, ov.dt_area[i], ov.dt_nonzero[i])
                dts[video.id, cat].append({"id": next_dt_id, "area": area, "score": float(dt_score[i])})
                next_dt_id += 1
            ious[video.id, cat] = iou[np.ix_(d_sel, g_sel)]

        labels_g = np.array([label_of[c] for c in gt_cat.tolist()], dtype=np.int64)
        labels_d = np.array([label_of[c] for c in dt_cat.tolist()], dtype=np.int64)
        add_to_confusion(
            confusion,
            match_ignoring_class(iou, dt_score, gt_crowd, confusion_iou_threshold),
            labels_g,
            labels_d,
            gt_crowd,
        )
        if tracker is not None:
            tracker.add_video(ov.frames, dt_cat, dt_score, gt_cat, gt_crowd)

    E = VideoCOCOeval(gts, dts, ious, [v.id for v in ann.videos], cat_ids)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress and the table
        E.evaluate()
        E.accumulate()
        E.summarize()
    metrics: dict[str, Any] = {key: float(v) for key, v in zip(OFFICIAL_KEYS, E.stats, strict=True)}
    precision, recall = E.eval["precision"], E.eval["recall"]
    thresholds = E.params.iouThrs
    t50, t75, t80 = (int(np.argmin(np.abs(thresholds - t))) for t in (0.5, 0.75, 0.8))
    all_area, max100 = 0, len(E.params.maxDets) - 1
    metrics["AP80"] = _mean_valid(precision[t80, :, :, all_area, max100])
    gt_counts = np.bincount([label_of[t.category_id] for t in ann.tracks if not t.iscrowd], minlength=len(cat_ids))
    metrics["per_category"] = {
        c.get("name", str(c["id"])): {
            "id": c["id"],
            "AP": _mean_valid(precision[:, :, k, all_area, max100]),
            "AP50": _mean_valid(precision[t50, :, k, all_area, max100]),
            "AP75": _mean_valid(precision[t75, :, k, all_area, max100]),
            "AP80": _mean_valid(precision[t80, :, k, all_area, max100]),
            "AR100": _mean_valid(recall[:, k, all_area, max100]),
            "num_gt": int(gt_counts[k]),
        }
        for k, c in enumerate(categories)
    }
    if tracker is not None:
        metrics["tracking"] = tracker.summary()
    names = [c.get("name", str(c["id"])) for c in categories]
    metrics["confusion"] = {"rows": names, "columns": [*names, "missed"], "matrix": confusion.tolist()}
    metrics["counts"] = {
        "videos": len(ann.videos),
        "gt_tracks": len(ann.tracks),
        "gt_crowd_tracks": int(sum(t.iscrowd for t in ann.tracks)),
        "results": len(results),
    }
    return VISEvaluation(metrics, precision, recall, thresholds, E.params.recThrs, names, confusion)


def evaluate_results(gt: dict, results: list, **options: Any) -> dict:
    """In-memory scoring for the trainer's validation: the metrics dict of `evaluate_vis`."""
    return evaluate_vis(gt, results, **options).metrics


def format_table(metrics: dict) -> str:
    """The twelve official figures (and AP80 and the tracking headline) as a small text table."""
    keys = [*OFFICIAL_KEYS, "AP80"]
    lines = [" ".join(f"{k:>6}" for k in keys), " ".join(f"{metrics[k]:6.4f}" for k in keys)]
    t = metrics.get("tracking")
    if t:
        lines.append(
            f"tracking (score >= {t['score_threshold']}): HOTA {t['HOTA']:.4f}  DetA {t['DetA']:.4f}  "
            f"AssA {t['AssA']:.4f}  IDF1 {t['IDF1']:.4f}  IDSW {t['IDSW']}  Frag {t['Frag']}  MOTA {t['MOTA']:.4f}"
        )
    return "\n".join(lines)
