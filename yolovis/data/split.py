"""Held-out sets by video, never by frame: frames of one video are near-duplicates, and a validation frame
whose neighbours were trained on measures memory, not generalisation (a bug of the original, SPEC §6)."""

from __future__ import annotations

import os

import numpy as np

from yolovis.data.annotations import VISAnnotations, load_vis_annotations


def split_by_video(
    annotations: VISAnnotations | str | os.PathLike, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[int], list[int]]:
    """(train video ids, held-out video ids), a seeded shuffle of the videos. With at least two videos and a
    positive fraction, both sides get at least one video."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction {val_fraction}: expected 0 <= fraction < 1")
    ann = annotations if isinstance(annotations, VISAnnotations) else load_vis_annotations(annotations)
    ids = np.array(sorted(v.id for v in ann.videos), dtype=np.int64)
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(int(i) for i in ids[order[:n_val]])
    train = sorted(int(i) for i in ids[order[n_val:]])
    return train, val


def subset_annotation_dict(data: dict, video_ids: list[int] | set[int]) -> dict:
    """A YouTube-VIS dict with only these videos and their annotations (e.g. held-out ground truth to write
    next to the training file and hand to the evaluation)."""
    wanted = set(video_ids)
    out = {k: v for k, v in data.items() if k not in ("videos", "annotations")}
    out["videos"] = [v for v in data["videos"] if v["id"] in wanted]
    if "annotations" in data:
        out["annotations"] = [a for a in data["annotations"] if a["video_id"] in wanted]
    return out
