from yolovis.model.backbone import CSPDarknet53
from yolovis.model.detections import Detections
from yolovis.model.detector import SCALES, ModelOutput, YoloV4Plus1, build_model
from yolovis.model.spp import SPPBlock

__all__ = ["CSPDarknet53", "Detections", "ModelOutput", "SCALES", "SPPBlock", "YoloV4Plus1", "build_model"]
