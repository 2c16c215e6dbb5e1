"""Data: YouTube-VIS and COCO readers, the synthetic video generator, augmentation and anchor k-means."""

from yolovis.data.annotations import VISAnnotations, load_vis_annotations
from yolovis.data.augment import AugmentConfig
from yolovis.data.coco import load_coco_annotations
from yolovis.data.letterbox import LetterboxInfo, letterbox_image
from yolovis.data.sample import FrameSample, collate_clips, collate_frames
from yolovis.data.split import split_by_video, subset_annotation_dict
from yolovis.data.ytvis import YTVISDataset

__all__ = [
    "AugmentConfig",
    "FrameSample",
    "LetterboxInfo",
    "VISAnnotations",
    "YTVISDataset",
    "collate_clips",
    "collate_frames",
    "letterbox_image",
    "load_coco_annotations",
    "load_vis_annotations",
    "split_by_video",
    "subset_annotation_dict",
]
