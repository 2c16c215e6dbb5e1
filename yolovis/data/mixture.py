"""Training data from one or several annotation files, YouTube-VIS or COCO, into one label space.

`yolovis train ANN.json [--extra OTHER.json[=IMAGES]]...`: the first file sets the categories (and so the
model's classes); every extra file's categories are matched to them by name, and its instances of other
categories are left out, as VIS methods pretrain on COCO's classes that YouTube-VIS shares. A COCO file is read
as one-frame videos (`coco.py`): with the association head, its frames pair with themselves, augmented twice
(as IDOL and MinVIS make pairs from images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from torch.utils.data import ConcatDataset

from yolovis.data.annotations import VISAnnotations, parse_vis_annotations, read_json
from yolovis.data.augment import AugmentConfig
from yolovis.data.coco import parse_coco_annotations
from yolovis.data.ytvis import YTVISDataset
from yolovis.errors import UserError


def load_annotations(path: str | os.PathLike) -> VISAnnotations:
    """A YouTube-VIS file ('videos') or a COCO instances file ('images', read as one-frame videos)."""
    data = read_json(path)
    if isinstance(data, dict) and "videos" in data:
        return parse_vis_annotations(data, str(path))
    if isinstance(data, dict) and "images" in data:
        return parse_coco_annotations(data, str(path))
    raise UserError(f"{path}: neither a YouTube-VIS ('videos' list) nor a COCO ('images' list) annotation file")


def split_source(text: str) -> tuple[str, str | None]:
    """'ann.json=images/' -> ('ann.json', 'images/'); 'ann.json' -> ('ann.json', None)."""
    ann, sep, images = text.partition("=")
    return ann, (images if sep else None)


def in_label_space(ann: VISAnnotations, categories: list[dict]) -> VISAnnotations:
    """`ann` with the given categories: its own are matched by name, instances of unmatched ones left out."""
    by_name = {c.get("name"): c["id"] for c in categories}
    mapping = {c["id"]: by_name[c.get("name")] for c in ann.categories if c.get("name") in by_name}
    if not mapping:
        names = ", ".join(sorted(str(c.get("name")) for c in ann.categories)[:5])
        raise UserError(f"{ann.source}: no category shares a name with the training classes (it has {names}, ...)")
    tracks = [replace(t, category_id=mapping[t.category_id]) for t in ann.tracks if t.category_id in mapping]
    return VISAnnotations(ann.source, ann.videos, [dict(c) for c in categories], tracks)


@dataclass
class TrainingData:
    dataset: ConcatDataset  # every file's frames, one after the other
    categories: list[dict]  # the first file's, sorted by id: label k is categories[k]
    parts: list[YTVISDataset]

    def partner_candidates(self, max_gap: int) -> list[list[int]]:
        """Per frame, the frames of its video within `max_gap` (see `YTVISDataset.partner_candidates`)."""
        out, offset = [], 0
        for part in self.parts:
            out += [[offset + j for j in cands] for cands in part.partner_candidates(max_gap)]
            offset += len(part)
        return out


def training_data(
    ann_file: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    extras: list[str],
    img_size: tuple[int, int],
    augment: AugmentConfig | None,
) -> TrainingData:
    """The frames of `ann_file` (its images under `images_dir`, default JPEGImages/ beside it) and of every
    extra 'ANN.json[=IMAGES]', in the first file's label space."""
    primary = load_annotations(ann_file)
    parts = [YTVISDataset(primary, images_dir, img_size=img_size, augment=augment)]
    for text in extras:
        path, images = split_source(text)
        if not Path(path).is_file():
            raise UserError(f"{path}: extra annotation file not found")
        ann = in_label_space(load_annotations(path), primary.categories)
        parts.append(YTVISDataset(ann, images, img_size=img_size, augment=augment))
    return TrainingData(ConcatDataset(parts), parts[0].categories, parts)
