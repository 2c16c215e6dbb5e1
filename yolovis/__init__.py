"""yolovis: YoloV4+1 video instance segmentation with a greedy mask tracker."""

__version__ = "0.1.0"
