"""Confusion matrix over classes of matched instances (the report's Figure 4).

The video AP only matches tracks of the same class, so it cannot say which class a wrongly labelled track was
given. Here the matching ignores the class: per video, result tracks in decreasing score take the unmatched
non-crowd ground-truth track with which they have the highest spatio-temporal IoU, if it reaches `iou_threshold`
(COCO's greedy rule). Each ground-truth track then counts once, in the row of its class and the column of the
class of the track that matched it, or in the last column, "missed", when none did.
"""

from __future__ import annotations

import numpy as np


def match_ignoring_class(
    iou: np.ndarray, dt_scores: np.ndarray, gt_crowd: np.ndarray, iou_threshold: float = 0.5
) -> np.ndarray:
    """(D, G) IoU -> (G,) index of the matched result track per ground-truth track, -1 where none."""
    matched = np.full(iou.shape[1], -1, dtype=np.int64)
    usable = ~gt_crowd.copy()
    for d in np.argsort(-dt_scores, kind="mergesort"):
        candidates = np.where(usable, iou[d], -1.0)
        if candidates.size == 0:
            break
        g = int(np.argmax(candidates))
        if candidates[g] >= iou_threshold:
            matched[g] = d
            usable[g] = False
    return matched


def add_to_confusion(
    confusion: np.ndarray,
    matched: np.ndarray,
    gt_labels: np.ndarray,
    dt_labels: np.ndarray,
    gt_crowd: np.ndarray,
) -> None:
    """Count each non-crowd ground-truth track in `confusion` (K, K+1): labels are 0..K-1 positions."""
    for g in np.flatnonzero(~gt_crowd):
        column = dt_labels[matched[g]] if matched[g] >= 0 else confusion.shape[1] - 1
        confusion[gt_labels[g], column] += 1
