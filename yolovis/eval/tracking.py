"""Tracking quality of a results file: HOTA, IDF1, identity switches and fragmentations on mask tracks.

The metrics come from TrackEval (`trackeval` on PyPI, the authors' own HOTA code and the implementation the
HOTA paper and the MOT/KITTI/BDD/YouTube-VIS benchmarks use). Its dataset readers expect a folder layout, so
we skip them and feed its metric classes (HOTA, CLEAR, Identity) the per-frame mask IoUs we have already
computed for the video AP: that is exactly the `data` dict its YouTube-VIS reader would build.

As in TrackEval's YouTube-VIS reader, each class is its own sequence (results of class c against ground truth
of class c) and all result tracks count unless `score_threshold` drops the weak ones. Crowd ground-truth
tracks are left out (TrackEval's YouTube-VIS reader has no crowd handling for these metrics). Figures are
pooled over videos and classes ("detection-averaged" in TrackEval's terms): counts are summed, not averaged
per class.
"""

from __future__ import annotations

import numpy as np

from yolovis.errors import UserError
from yolovis.eval.video_iou import FrameOverlaps


class TrackingAccumulator:
    """Feed it one video at a time (`add_video`), then read `summary()`."""

    def __init__(self, score_threshold: float = 0.0):
        try:  # only needed for these metrics: the video AP works without it
            from trackeval.metrics import CLEAR, HOTA, Identity
        except ImportError:
            raise UserError(
                "tracking metrics need TrackEval: `pip install --no-deps trackeval tabulate` (or --no-tracking)"
            ) from None
        self.score_threshold = score_threshold
        quiet = {"PRINT_CONFIG": False}
        self.metrics = (HOTA(quiet), CLEAR(quiet), Identity(quiet))
        self.per_sequence: list[tuple[dict, dict, dict]] = []

    def add_video(
        self,
        frames: list[FrameOverlaps],
        dt_categories: np.ndarray,
        dt_scores: np.ndarray,
        gt_categories: np.ndarray,
        gt_crowd: np.ndarray,
    ) -> None:
        # Tracks null in every frame have no detection to count; TrackEval would divide 0 by 0 on them.
        dt_seen = np.zeros(len(dt_scores), dtype=bool)
        gt_seen = np.zeros(len(gt_crowd), dtype=bool)
        for fr in frames:
            dt_seen[fr.dt] = True
            gt_seen[fr.gt] = True
        keep_dt = dt_seen & (dt_scores >= self.score_threshold)
        keep_gt = gt_seen & ~gt_crowd
        for cat in np.unique(np.concatenate([dt_categories[keep_dt], gt_categories[keep_gt]])):
            dt_sel = keep_dt & (dt_categories == cat)
            gt_sel = keep_gt & (gt_categories == cat)
            data = sequence_data(frames, dt_sel, gt_sel)
            self.per_sequence.append(tuple(m.eval_sequence(data) for m in self.metrics))

    def summary(self) -> dict:
        if not self.per_sequence:
            return {"HOTA": 0.0, "DetA": 0.0, "AssA": 0.0, "LocA": 0.0, "IDF1": 0.0, "IDP": 0.0, "IDR": 0.0}
        hota, clear, ident = (
            m.combine_sequences({i: seq[j] for i, seq in enumerate(self.per_sequence)})
            for j, m in enumerate(self.metrics)
        )
        return {
            "HOTA": float(np.mean(hota["HOTA"])),  # averaged over the 19 localisation thresholds 0.05..0.95
            "DetA": float(np.mean(hota["DetA"])),
            "AssA": float(np.mean(hota["AssA"])),
            "LocA": float(np.mean(hota["LocA"])),
            "IDF1": float(ident["IDF1"]),
            "IDP": float(ident["IDP"]),
            "IDR": float(ident["IDR"]),
            "IDTP": int(ident["IDTP"]),
            "IDFP": int(ident["IDFP"]),
            "IDFN": int(ident["IDFN"]),
            "IDSW": int(clear["IDSW"]),
            "Frag": int(clear["Frag"]),
            "MOTA": float(clear["MOTA"]),
            "MOTP": float(clear["MOTP"]),
            "MT": int(clear["MT"]),
            "PT": int(clear["PT"]),
            "ML": int(clear["ML"]),
            "CLR_TP": int(clear["CLR_TP"]),
            "CLR_FP": int(clear["CLR_FP"]),
            "CLR_FN": int(clear["CLR_FN"]),
            "score_threshold": self.score_threshold,
        }


def sequence_data(frames: list[FrameOverlaps], dt_sel: np.ndarray, gt_sel: np.ndarray) -> dict:
    """TrackEval's per-sequence dict for the selected result and ground-truth tracks of one video.

    dt_sel, gt_sel: (D,), (G,) bool masks over the video's tracks. Ids are renumbered 0..n-1 as TrackEval wants;
    similarity_scores[t] is (gt present at t, results present at t) mask IoU.
    """
    dt_new = np.cumsum(dt_sel) - 1  # old index -> new id (valid where selected)
    gt_new = np.cumsum(gt_sel) - 1
    gt_ids, dt_ids, sims = [], [], []
    for fr in frames:
        di = np.flatnonzero(dt_sel[fr.dt])  # positions inside this frame's lists
        gi = np.flatnonzero(gt_sel[fr.gt])
        dt_ids.append(dt_new[fr.dt[di]])
        gt_ids.append(gt_new[fr.gt[gi]])
        sims.append(fr.iou[np.ix_(di, gi)].T if len(di) and len(gi) else np.zeros((len(gi), len(di))))
    return {
        "num_timesteps": len(frames),
        "num_gt_ids": int(gt_sel.sum()),
        "num_tracker_ids": int(dt_sel.sum()),
        "num_gt_dets": int(sum(len(g) for g in gt_ids)),
        "num_tracker_dets": int(sum(len(d) for d in dt_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": dt_ids,
        "similarity_scores": sims,
    }
