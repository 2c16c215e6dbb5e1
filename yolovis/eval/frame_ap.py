"""Per-frame mask AP: every annotated frame scored as an image, COCO style, with no tracking involved.

This is the detector's own quality. Beside the video AP of a tracker it tells how much of the video score was
lost by association (`yolovis diagnose`). The scoring is pycocotools' COCOeval ("segm") unchanged: frames are
its images, each non-null ground-truth segmentation one of its annotations, each detection one result.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolovis.data.annotations import VISAnnotations
from yolovis.data.masks import to_rle
from yolovis.track.results import rle_to_json

FRAME_AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def frame_image_id(video_pos: int, frame: int) -> int:
    """A unique COCO image id for frame `frame` of the video at position `video_pos` of the file."""
    return video_pos * 100_000 + frame + 1


def frame_ground_truth(ann: VISAnnotations) -> COCO:
    """The annotation file as a COCO dataset of frames (crowd instances kept as crowd regions)."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for pos, video in enumerate(ann.videos):
        for f in range(video.length):
            images.append({"id": frame_image_id(pos, f), "height": video.height, "width": video.width})
        for ti in ann.tracks_by_video[video.id]:
            track = ann.tracks[ti]
            for f, seg in enumerate(track.segmentations):
                if not seg:
                    continue
                rle = to_rle(seg, video.height, video.width)
                area = float(mask_utils.area(rle))
                if area <= 0:
                    continue
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": frame_image_id(pos, f),
                    "category_id": track.category_id,
                    "segmentation": rle_to_json(rle),
                    "area": area,
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": int(track.iscrowd),
                })  # fmt: skip
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": list(ann.categories)}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def frame_mask_ap(ann: VISAnnotations, detections: Iterable[dict]) -> dict[str, float]:
    """COCO mask AP of per-frame detections on the frames of `ann`.

    detections: {"video_id", "frame", "category_id", "score", "segmentation" (RLE)} dicts, one per detection.
    Returns the twelve COCO figures (-1 where no ground truth exists for one, as COCOeval).
    """
    gt = frame_ground_truth(ann)
    pos_of = {v.id: k for k, v in enumerate(ann.videos)}
    results = [
        {
            "image_id": frame_image_id(pos_of[d["video_id"]], d["frame"]),
            "category_id": int(d["category_id"]),
            "score": float(d["score"]),
            "segmentation": rle_to_json(d["segmentation"]),
        }
        for d in detections
    ]
    if not results or not gt.dataset["annotations"]:
        return dict.fromkeys(FRAME_AP_KEYS, 0.0 if gt.dataset["annotations"] else -1.0)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        dt = gt.loadRes(results)
        E = COCOeval(gt, dt, iouType="segm")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return {k: float(v) for k, v in zip(FRAME_AP_KEYS, np.asarray(E.stats), strict=True)}
