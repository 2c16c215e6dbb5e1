"""Load darknet `.weights` files (yolov4.conv.137, yolov4.weights) into CSPDarknet53 and the SPP block.

A darknet weights file is a header (int32 major, minor, revision, then the `seen` counter: uint64 from version
0.2 on, uint32 before) followed by float32 parameters, layer by layer in cfg order. A convolution with batch
norm stores BN beta, gamma, running mean, running variance, then the kernel (out, in, k, k); one without batch
norm stores its bias, then the kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolovis.errors import UserError
from yolovis.model.backbone import CSPDarknet53
from yolovis.model.blocks import ConvBNAct
from yolovis.model.detector import YoloV4Plus1
from yolovis.model.spp import SPPBlock


@dataclass(frozen=True)
class DarknetHeader:
    major: int
    minor: int
    revision: int
    seen: int
    size: int  # bytes


def read_header(data: bytes, path: str | os.PathLike) -> DarknetHeader:
    if data[:2] == b"PK" or data[:1] == b"\x80":
        raise UserError(f"{path}: this is a PyTorch checkpoint, not a darknet .weights file")
    if len(data) < 16:
        raise UserError(f"{path}: not a darknet weights file (only {len(data)} bytes, shorter than the header)")
    major, minor, revision = np.frombuffer(data[:12], dtype="<i4").tolist()
    if not (0 <= major < 1000 and 0 <= minor < 1000 and revision >= 0):
        raise UserError(f"{path}: not a darknet weights file (header version {major}.{minor}.{revision})")
    wide_seen = major * 10 + minor >= 2
    size = 20 if wide_seen else 16
    if len(data) < size:
        raise UserError(f"{path}: not a darknet weights file (truncated header)")
    seen = int(np.frombuffer(data[12:size], dtype="<u8" if wide_seen else "<u4")[0])
    if (len(data) - size) % 4:
        raise UserError(f"{path}: not a darknet weights file (payload of {len(data) - size} bytes is not float32)")
    return DarknetHeader(major, minor, revision, seen, size)


def _bn_conv_floats(c_in: int, c_out: int, k: int) -> int:
    return 4 * c_out + c_out * c_in * k * k


# Darknet yolov4.cfg layers 117-136 (the rest of yolov4.conv.137) and 137-160 (yolov4.weights): YOLOv4's own
# three-level neck and heads, which YoloV4+1 replaces. Listed as (c_in, c_out, k) only to recognise those files.
_YOLOV4_NECK_137 = [
    (512, 256, 1),
    (512, 256, 1),
    (512, 256, 1),
    (256, 512, 3),
    (512, 256, 1),
    (256, 512, 3),
    (512, 256, 1),
    (256, 128, 1),
    (256, 128, 1),
    (256, 128, 1),
    (128, 256, 3),
    (256, 128, 1),
    (128, 256, 3),
    (256, 128, 1),
]
_YOLOV4_REST_BN = [
    (128, 256, 3),
    (128, 256, 3),
    (512, 256, 1),
    (256, 512, 3),
    (512, 256, 1),
    (256, 512, 3),
    (512, 256, 1),
    (256, 512, 3),
    (256, 512, 3),
    (1024, 512, 1),
    (512, 1024, 3),
    (1024, 512, 1),
    (512, 1024, 3),
    (1024, 512, 1),
    (512, 1024, 3),
]
_YOLOV4_HEAD_INPUTS = (256, 512, 1024)  # three 1x1 convs with bias, 3 x (5 + classes) filters each
NECK_137_FLOATS = sum(_bn_conv_floats(*c) for c in _YOLOV4_NECK_137)
REST_BN_FLOATS = sum(_bn_conv_floats(*c) for c in _YOLOV4_REST_BN)


def _is_known_tail(floats: int) -> bool:
    """Whether the unread rest of a file is exactly YOLOv4's own neck (conv.137) or neck + heads (weights)."""
    if floats in (0, NECK_137_FLOATS):
        return True
    head = floats - NECK_137_FLOATS - REST_BN_FLOATS
    per_filter = sum(_YOLOV4_HEAD_INPUTS) + len(_YOLOV4_HEAD_INPUTS)  # kernel + bias per output filter
    return head > 0 and head % per_filter == 0 and (head // per_filter) % 3 == 0


def _convs(module: nn.Module) -> list[ConvBNAct]:
    return [m for m in module.modules() if isinstance(m, ConvBNAct)]


def _floats(convs: list[ConvBNAct]) -> int:
    return sum(4 * c[0].out_channels + c[0].weight.numel() for c in convs)


def _load_convs(convs: list[ConvBNAct], data: np.ndarray, offset: int) -> int:
    for conv_bn in convs:
        conv, bn = conv_bn[0], conv_bn[1]
        n = conv.out_channels
        for target in (bn.bias, bn.weight, bn.running_mean, bn.running_var):
            target.data.copy_(torch.from_numpy(data[offset : offset + n].copy()))
            offset += n
        k = conv.weight.numel()
        conv.weight.data.copy_(torch.from_numpy(data[offset : offset + k].copy()).view_as(conv.weight))
        offset += k
    return offset


def load_darknet_weights(module: nn.Module, path: str | os.PathLike) -> int:
    """Load a darknet weights file into a full-scale `CSPDarknet53` (layers 0-104) or `YoloV4Plus1` (backbone,
    then the SPP block, layers 105-116, when the file has them). Returns the number of conv layers loaded."""
    path = Path(path)
    if isinstance(module, YoloV4Plus1):
        backbone, spp = module.backbone, module.spp
    elif isinstance(module, CSPDarknet53):
        backbone, spp = module, None
    else:
        raise UserError(f"{path}: darknet weights load into CSPDarknet53 or YoloV4Plus1, not {type(module).__name__}")
    if backbone.out_channels != (128, 256, 512, 1024) or len(backbone.stages[2].blocks) != 8:
        raise UserError(f"{path}: darknet weights fit only the full scale (`--model full`), not a scaled-down network")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read darknet weights ({e.strerror})") from None
    header = read_header(raw, path)
    data = np.frombuffer(raw, dtype="<f4", offset=header.size)
    backbone_convs = _convs(backbone)
    spp_convs = _convs(spp) if spp is not None else _convs(SPPBlock(1024, 512))
    need = _floats(backbone_convs)
    if len(data) < need:
        raise UserError(f"{path}: too short: {len(data)} floats, CSPDarknet53 (layers 0-104) needs {need}")
    rest = len(data) - need
    spp_floats = _floats(spp_convs)
    has_spp = rest >= spp_floats
    if not (_is_known_tail(rest) or (has_spp and _is_known_tail(rest - spp_floats))):
        raise UserError(
            f"{path}: too long for {type(module).__name__}, or truncated: {rest} floats after layer 104 match "
            f"neither the SPP block ({spp_floats} floats) nor YOLOv4's own neck layers"
        )
    offset = _load_convs(backbone_convs, data, 0)
    loaded = len(backbone_convs)
    if spp is not None and has_spp:
        _load_convs(spp_convs, data, offset)
        loaded += len(spp_convs)
    return loaded
