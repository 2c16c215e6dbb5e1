"""Anchors and the box-delta encoding (SPEC §2). The only module that knows the delta encoding.

Deltas are Faster R-CNN style relative to an anchor centred on its cell, in grid units:
x = cx + a_w dx, y = cy + a_h dy, w = a_w exp(dw), h = a_h exp(dh); then times the stride.
"""

from __future__ import annotations

import math

import torch

# exp(dw) is clamped at exp(4.135) ~ 62x the anchor, as torchvision's BoxCoder does (log(1000/16)).
DELTA_CLAMP = math.log(1000.0 / 16)


def grid_centers(height: int, width: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """(H, W, 2) xy centres of the cells of a level, in grid units."""
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor, stride: int) -> torch.Tensor:
    """Deltas (B, nA, H, W, 4) of one level -> xyxy boxes (B, nA, H, W, 4) in network-input pixels.

    anchors: (nA, 2) anchor widths and heights in network-input pixels.
    """
    _, _, h, w, _ = deltas.shape
    centers = grid_centers(h, w, stride, deltas.device)[None, None]  # (1, 1, H, W, 2)
    anchor_wh = (anchors.to(deltas) / stride)[None, :, None, None, :]  # (1, nA, 1, 1, 2)
    xy = centers + anchor_wh * deltas[..., :2]
    wh = anchor_wh * deltas[..., 2:4].clamp(max=DELTA_CLAMP).exp()
    return torch.cat((xy - wh / 2, xy + wh / 2), dim=-1) * stride


def decode_selected(deltas: torch.Tensor, anchor_wh: torch.Tensor, cell_xy: torch.Tensor, stride: int) -> torch.Tensor:
    """`decode_boxes` for chosen anchor-cells only, bit for bit the same values (the same operations in the same
    order): deltas (N, 4), anchor_wh (N, 2) pixels, cell_xy (N, 2) integer cell indices -> (N, 4) xyxy pixels."""
    a_wh = anchor_wh.to(deltas) / stride
    xy = (cell_xy.to(deltas) + 0.5) + a_wh * deltas[:, :2]
    wh = a_wh * deltas[:, 2:4].clamp(max=DELTA_CLAMP).exp()
    return torch.cat((xy - wh / 2, xy + wh / 2), dim=-1) * stride


def encode_boxes(boxes: torch.Tensor, anchor_wh: torch.Tensor, cell_xy: torch.Tensor, stride: int) -> torch.Tensor:
    """The inverse of `decode_boxes` for matched pairs.

    boxes: (N, 4) xyxy in network-input pixels; anchor_wh: (N, 2) pixels; cell_xy: (N, 2) integer cell indices.
    Returns (N, 4) deltas (dx, dy, dw, dh).
    """
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3) / stride
    xy = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
    a_wh = anchor_wh / stride
    dxy = (xy - (cell_xy.to(boxes) + 0.5)) / a_wh
    dwh = torch.log(wh / a_wh)
    return torch.cat((dxy, dwh), dim=-1)


def anchor_tensors(anchors: tuple | list) -> list[torch.Tensor]:
    """Nested (level, anchor, wh) lists -> one (nA, 2) float tensor per level, with shape checks."""
    out = []
    for level, level_anchors in enumerate(anchors):
        t = torch.as_tensor(level_anchors, dtype=torch.float32)
        if t.dim() != 2 or t.shape[1] != 2 or t.shape[0] == 0 or bool((t <= 0).any()):
            raise ValueError(f"anchors of level {level} must be a non-empty list of positive (w, h) pairs")
        out.append(t)
    if len({t.shape[0] for t in out}) != 1:
        raise ValueError("every level must have the same number of anchors")
    return out
