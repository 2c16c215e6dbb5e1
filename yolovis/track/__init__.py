from yolovis.track.greedy import Appearance, GreedyTracker, Track, TrackerConfig, greedy_match
from yolovis.track.mask_iou import encode_masks, mask_iou
from yolovis.track.results import ResultRule, tracks_to_results

__all__ = [
    "Appearance",
    "GreedyTracker",
    "ResultRule",
    "Track",
    "TrackerConfig",
    "encode_masks",
    "greedy_match",
    "mask_iou",
    "tracks_to_results",
]
