"""COCO instance segmentation, for pretraining on images: every image becomes a one-frame video.

The result is the same `VISAnnotations` index the YouTube-VIS reader builds, so `YTVISDataset` trains on it
unchanged: `YTVISDataset(load_coco_annotations("instances_train2017.json"), images_dir="train2017")`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yolovis.data.annotations import TrackRecord, VideoRecord, VISAnnotations, check_int, read_json
from yolovis.errors import UserError


def parse_coco_annotations(data: Any, source: str) -> VISAnnotations:
    if not isinstance(data, dict) or "images" not in data:
        raise UserError(f"{source}: not a COCO annotation file (no 'images' list at the top level)")
    categories = data.get("categories") or []
    if not all(isinstance(c, dict) and "id" in c for c in categories):
        raise UserError(f"{source}: 'categories' must be a list of {{'id', 'name'}} objects")
    cat_ids = {c["id"] for c in categories}
    videos = []
    for im in data["images"]:
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise UserError(f"{source}: an image entry lacks one of id, file_name, width, height")
        iid = check_int(im["id"], f"{source}: image id")
        videos.append(
            VideoRecord(
                iid,
                check_int(im["width"], f"{source}: image {iid}"),
                check_int(im["height"], f"{source}: image {iid}"),
                (str(im["file_name"]),),
            )
        )
    known = {v.id for v in videos}
    if len(known) != len(videos):
        raise UserError(f"{source}: duplicate image ids")
    tracks = []
    for a in data.get("annotations") or []:
        if not isinstance(a, dict) or not {"id", "image_id", "category_id", "segmentation"} <= set(a):
            raise UserError(f"{source}: an annotation lacks one of id, image_id, category_id, segmentation")
        aid = check_int(a["id"], f"{source}: annotation id")
        iid = check_int(a["image_id"], f"{source}: annotation {aid} image_id")
        if iid not in known:
            raise UserError(f"{source}: annotation {aid} refers to image {iid}, which is not in 'images'")
        if a["category_id"] not in cat_ids:
            raise UserError(f"{source}: image {iid} annotation {aid}: category_id {a['category_id']} unknown")
        box = a.get("bbox")
        tracks.append(
            TrackRecord(
                aid,
                iid,
                int(a["category_id"]),
                bool(a.get("iscrowd", 0)),
                [a["segmentation"]],
                [box] if box is not None else None,
            )
        )
    return VISAnnotations(source, videos, [dict(c) for c in categories], tracks)


def load_coco_annotations(path: str | os.PathLike) -> VISAnnotations:
    """Read a COCO instances file (.json or .json.gz) as one-frame videos."""
    return parse_coco_annotations(read_json(path), str(Path(path)))
