"""YouTube-VIS annotation files (2019, 2021, 2022): load, check and index them without decoding any mask.

The files of the real dataset hold tens of thousands of frames, so the index keeps the raw per-frame
segmentations and decodes only those a sample asks for (`VISAnnotations.frame_instances`). Every problem is a
`UserError` that names the file and, where it applies, the video, the annotation and the frame.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolovis.data.masks import SegmentationError, decode_segmentation
from yolovis.errors import UserError


@dataclass(frozen=True)
class VideoRecord:
    id: int
    width: int
    height: int
    file_names: tuple[str, ...]  # one per annotated frame, relative to the image root

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass(frozen=True)
class TrackRecord:
    """One instance through a video: raw per-frame segmentations and xywh boxes, None where it is absent."""

    id: int
    video_id: int
    category_id: int
    iscrowd: bool
    segmentations: list
    bboxes: list | None


@dataclass
class FrameInstances:
    """The decoded instances of one frame, in original-frame pixels."""

    masks: np.ndarray  # (N, H, W) uint8 0/1
    category_ids: np.ndarray  # (N,) int64 dataset category ids
    track_ids: np.ndarray  # (N,) int64 annotation ids
    iscrowd: np.ndarray  # (N,) bool


@dataclass
class VISAnnotations:
    source: str  # the file, for messages
    videos: list[VideoRecord]
    categories: list[dict]  # {"id", "name", ...} in file order
    tracks: list[TrackRecord]
    tracks_by_video: dict[int, list[int]] = field(init=False, repr=False)  # video id -> indices into tracks
    _video_pos: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._video_pos = {v.id: i for i, v in enumerate(self.videos)}
        self.tracks_by_video = {v.id: [] for v in self.videos}
        for i, t in enumerate(self.tracks):
            self.tracks_by_video[t.video_id].append(i)

    @property
    def num_frames(self) -> int:
        return sum(v.length for v in self.videos)

    def video(self, video_id: int) -> VideoRecord:
        return self.videos[self._video_pos[video_id]]

    def subset(self, video_ids: list[int] | tuple[int, ...] | set[int]) -> VISAnnotations:
        """Only these videos (and their tracks), in file order; unknown ids are an error."""
        wanted = set(video_ids)
        unknown = wanted - set(self._video_pos)
        if unknown:
            raise UserError(f"{self.source}: no video(s) with id {sorted(unknown)[:5]}")
        videos = [v for v in self.videos if v.id in wanted]
        tracks = [t for t in self.tracks if t.video_id in wanted]
        return VISAnnotations(self.source, videos, self.categories, tracks)

    def frame_instances(self, video_id: int, frame: int) -> FrameInstances:
        """Decode the masks of the instances present in one frame (null entries are skipped)."""
        video = self.video(video_id)
        masks, cats, ids, crowd = [], [], [], []
        for ti in self.tracks_by_video[video_id]:
            track = self.tracks[ti]
            seg = track.segmentations[frame]
            if seg is None:
                continue
            try:
                mask = decode_segmentation(seg, video.height, video.width)
            except SegmentationError as e:
                raise UserError(
                    f"{self.source}: video {video_id} annotation {track.id} frame {frame} "
                    f"({video.file_names[frame]}): {e}"
                ) from None
            masks.append(mask)
            cats.append(track.category_id)
            ids.append(track.id)
            crowd.append(track.iscrowd)
        stacked = np.stack(masks) if masks else np.zeros((0, video.height, video.width), dtype=np.uint8)
        return FrameInstances(
            stacked, np.asarray(cats, dtype=np.int64), np.asarray(ids, dtype=np.int64), np.asarray(crowd, bool)
        )


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file (gzip-compressed or not) with errors that name the file and the position."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a JSON annotation file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise UserError(f"{path}: truncated or corrupt gzip file ({e})") from None
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 JSON file") from None
    except json.JSONDecodeError as e:
        # The parser stops at the end of a cut file, or at the opening quote of a string the cut left open.
        cut = e.pos >= len(raw.rstrip()) or e.msg.startswith("Unterminated string")
        what = "truncated" if cut else "malformed"
        raise UserError(f"{path}: {what} JSON at line {e.lineno}, column {e.colno} ({e.msg})") from None


def check_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise UserError(f"{where}: expected an integer, got {value!r}")
    return int(value)


def parse_vis_annotations(data: Any, source: str) -> VISAnnotations:
    """Check a parsed YouTube-VIS dict and index it. Test-set files without `annotations` are accepted."""
    if not isinstance(data, dict) or "videos" not in data:
        raise UserError(f"{source}: not a YouTube-VIS annotation file (no 'videos' list at the top level)")
    categories = data.get("categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, dict) and "id" in c for c in categories):
        raise UserError(f"{source}: 'categories' must be a list of {{'id', 'name'}} objects")
    cat_ids = {check_int(c["id"], f"{source}: category {c.get('name')!r} id") for c in categories}
    if len(cat_ids) != len(categories):
        raise UserError(f"{source}: duplicate category ids")

    videos = []
    for v in data["videos"]:
        if not isinstance(v, dict) or not {"id", "file_names"} <= set(v):
            raise UserError(f"{source}: a video entry lacks 'id' or 'file_names'")
        vid = check_int(v["id"], f"{source}: video id")
        where = f"{source}: video {vid}"
        names = v["file_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserError(f"{where}: 'file_names' must be a list of strings")
        if "length" in v and check_int(v["length"], f"{where} length") != len(names):
            raise UserError(f"{where}: length {v['length']} but {len(names)} file_names")
        if "width" not in v or "height" not in v:
            raise UserError(f"{where}: missing 'width'/'height'")
        width, height = check_int(v["width"], f"{where} width"), check_int(v["height"], f"{where} height")
        if width <= 0 or height <= 0:
            raise UserError(f"{where}: frame size {width}x{height}")
        videos.append(VideoRecord(vid, width, height, tuple(names)))
    by_id = {v.id: v for v in videos}
    if len(by_id) != len(videos):
        raise UserError(f"{source}: duplicate video ids")

    tracks = []
    for a in data.get("annotations") or []:
        if not isinstance(a, dict) or not {"id", "video_id", "category_id", "segmentations"} <= set(a):
            raise UserError(f"{source}: an annotation lacks one of id, video_id, category_id, segmentations")
        aid = check_int(a["id"], f"{source}: annotation id")
        vid = check_int(a["video_id"], f"{source}: annotation {aid} video_id")
        video = by_id.get(vid)
        if video is None:
            raise UserError(f"{source}: annotation {aid} refers to video {vid}, which is not in 'videos'")
        where = f"{source}: video {vid} annotation {aid}"
        cat = check_int(a["category_id"], f"{where} category_id")
        if cat not in cat_ids:
            raise UserError(f"{where}: category_id {cat} is not in 'categories'")
        segs, boxes = a["segmentations"], a.get("bboxes")
        for key, values in (("segmentations", segs), ("bboxes", boxes), ("areas", a.get("areas"))):
            if values is None and key != "segmentations":
                continue
            if not isinstance(values, list):
                raise UserError(f"{where}: '{key}' must be a list with one entry (or null) per frame")
            if len(values) != video.length:
                raise UserError(f"{where}: {len(values)} {key} for a video of {video.length} frames")
        for frame, seg in enumerate(segs):
            if isinstance(seg, dict) and "size" in seg and list(seg["size"]) != [video.height, video.width]:
                raise UserError(
                    f"{where} frame {frame} ({video.file_names[frame]}): mask size "
                    f"{seg['size'][1]}x{seg['size'][0]} differs from the video's {video.width}x{video.height}"
                )
        tracks.append(TrackRecord(aid, vid, cat, bool(a.get("iscrowd", 0)), segs, boxes))
    return VISAnnotations(source, videos, [dict(c) for c in categories], tracks)


def load_vis_annotations(path: str | os.PathLike) -> VISAnnotations:
    """Read, check and index a YouTube-VIS annotation file (.json or .json.gz)."""
    return parse_vis_annotations(read_json(path), str(path))
