"""A constant-velocity Kalman filter on boxes, batched over tracks: the motion model of the memory tracker.

State x = (cx, cy, w, h, vcx, vcy, vw, vh) in frame pixels (per processed frame), measurement z = (cx, cy, w, h),
as in SORT and BoT-SORT. The noise scales with the box size, so a large object may move more pixels per frame
than a small one before its match becomes unlikely. The equations are the textbook ones:
predict x' = F x, P' = F P F^T + Q; update K = P H^T (H P H^T + R)^-1, x = x + K (z - H x), P = (I - K H) P.
"""

from __future__ import annotations

import numpy as np

# Standard deviations as fractions of the box size (BoT-SORT's choices for its xywh filter).
STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)  # x_t+1 = x_t + v_t
_H = np.eye(4, 8)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] + wh / 2, wh], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)


def _size_std(wh: np.ndarray, fraction: float) -> np.ndarray:
    """(N, 4) standard deviations (x, y, w, h) proportional to each box's width and height."""
    w, h = wh[:, 0], wh[:, 1]
    return fraction * np.stack([w, h, w, h], axis=1)


def initiate(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) boxes: mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
    z = xyxy_to_cxcywh(boxes_xyxy)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = np.concatenate([2 * _size_std(z[:, 2:], STD_POSITION), 10 * _size_std(z[:, 2:], STD_VELOCITY)], axis=1)
    cov = np.zeros((len(z), 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead for (N, 8) means and (N, 8, 8) covariances."""
    if len(mean) == 0:
        return mean, cov
    wh = np.maximum(mean[:, 2:4], 1.0)
    std = np.concatenate([_size_std(wh, STD_POSITION), _size_std(wh, STD_VELOCITY)], axis=1)
    q = np.zeros_like(cov)
    idx = np.arange(8)
    q[:, idx, idx] = std**2
    return mean @ _F.T, _F @ cov @ _F.T + q


def update(mean: np.ndarray, cov: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct (N, 8) predictions with (N, 4) measured boxes, row by row."""
    if len(mean) == 0:
        return mean, cov
    z = xyxy_to_cxcywh(boxes_xyxy)
    r_std = _size_std(np.maximum(mean[:, 2:4], 1.0), STD_POSITION)
    r = np.zeros((len(z), 4, 4))
    idx = np.arange(4)
    r[:, idx, idx] = r_std**2
    s = _H @ cov @ _H.T + r  # (N, 4, 4) innovation covariance
    gain = np.linalg.solve(s, (cov @ _H.T).transpose(0, 2, 1)).transpose(0, 2, 1)  # (N, 8, 4) = P H^T S^-1
    innovation = z - mean @ _H.T
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
