from yolovis.track.greedy import GreedyTracker, Track, TrackerConfig, encode_masks, greedy_match

__all__ = ["GreedyTracker", "Track", "TrackerConfig", "encode_masks", "greedy_match"]
