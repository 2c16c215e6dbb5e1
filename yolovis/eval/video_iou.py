"""Spatio-temporal mask IoU between the result tracks and the ground-truth tracks of one video.

The official YouTube-VIS definition: IoU(d, g) = sum over frames of |d_f & g_f| / sum over frames of
|d_f | g_f|, where a frame in which a track is null adds its partner's area to the union and a frame in which
both are null adds nothing. A present but empty mask counts as present with area 0, as in the official code.

Speed: per frame one `pycocotools.mask.iou` call over all (result, ground truth) pairs present in that frame;
the intersection is recovered exactly from the IoU and the two areas, i = (a + b) iou / (1 + iou), rounded to
the integer it is. The union over the video is then area(d) + area(g) - intersection, with the areas summed
over frames. Per-frame IoUs are kept (sparse, only present pairs) for the tracking metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils


@dataclass
class FrameOverlaps:
    """Mask IoUs of one frame between the result and ground-truth tracks present in it."""

    dt: np.ndarray  # (d,) indices of the result tracks present (non-null) in this frame
    gt: np.ndarray  # (g,) indices of the ground-truth tracks present
    iou: np.ndarray  # (d, g) float64


@dataclass
class VideoOverlaps:
    intersection: np.ndarray  # (D, G) int64 pixels summed over frames
    dt_area: np.ndarray  # (D,) int64 pixels summed over frames
    gt_area: np.ndarray  # (G,) int64
    dt_nonzero: np.ndarray  # (D,) int64 frames where the track's mask has pixels (for its mean area)
    gt_nonzero: np.ndarray  # (G,) int64
    frames: list[FrameOverlaps] = field(default_factory=list)

    @property
    def iou(self) -> np.ndarray:
        """(D, G) spatio-temporal IoU; 0 where the union is empty (both tracks empty in every frame)."""
        union = self.dt_area[:, None] + self.gt_area[None, :] - self.intersection
        return np.where(union > 0, self.intersection / np.maximum(union, 1), 0.0)


def video_overlaps(dt_rles: list[list], gt_rles: list[list], num_frames: int) -> VideoOverlaps:
    """Tracks as per-frame lists of compressed RLE dicts (or None) -> their overlaps in this video.

    All masks of a video must have the same size (checked before, see `checks.py`): pycocotools does not.
    """
    D, G = len(dt_rles), len(gt_rles)
    inter = np.zeros((D, G), dtype=np.int64)
    dt_area = np.zeros(D, dtype=np.int64)
    gt_area = np.zeros(G, dtype=np.int64)
    dt_nonzero = np.zeros(D, dtype=np.int64)
    gt_nonzero = np.zeros(G, dtype=np.int64)
    frames = []
    for f in range(num_frames):
        di = [i for i in range(D) if dt_rles[i][f] is not None]
        gi = [j for j in range(G) if gt_rles[j][f] is not None]
        d = [dt_rles[i][f] for i in di]
        g = [gt_rles[j][f] for j in gi]
        a_d = mask_utils.area(d).astype(np.int64) if d else np.zeros(0, np.int64)
        a_g = mask_utils.area(g).astype(np.int64) if g else np.zeros(0, np.int64)
        dt_area[di] += a_d
        gt_area[gi] += a_g
        dt_nonzero[di] += a_d > 0
        gt_nonzero[gi] += a_g > 0
        if d and g:
            iou = np.asarray(mask_utils.iou(d, g, [0] * len(g)), dtype=np.float64).reshape(len(d), len(g))
            both = a_d[:, None] + a_g[None, :]
            inter[np.ix_(di, gi)] += np.rint(both * iou / (1.0 + iou)).astype(np.int64)
        else:
            iou = np.zeros((len(d), len(g)))
        frames.append(FrameOverlaps(np.asarray(di, np.int64), np.asarray(gi, np.int64), iou))
    return VideoOverlaps(inter, dt_area, gt_area, dt_nonzero, gt_nonzero, frames)
