"""An independent reading of a darknet .cfg, for tests only: it runs darknet's own layer definitions
(convolutional, route, shortcut, maxpool, upsample) one by one, with darknet's formulas, from a flat parameter
list in darknet's file order. Our modular CSPDarknet53 must compute the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
YOLOV4_CFG = REPO.parent / "shared" / "reference" / "darknet_yolov4.cfg"


def parse_cfg(path: Path) -> list[dict]:
    layers: list[dict] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            layers.append({"type": line.strip("[]")})
        else:
            key, value = (s.strip() for s in line.split("=", 1))
            layers[-1][key] = value
    assert layers[0]["type"] == "net"
    return layers[1:]


def conv_shapes(layers: list[dict], last: int, in_channels: int = 3) -> list[tuple[int, int, int, bool]]:
    """(c_in, c_out, k, batch_normalize) of every convolutional layer in 0..last, in file order."""
    channels: list[int] = []
    shapes = []
    for i, layer in enumerate(layers[: last + 1]):
        prev = channels[-1] if channels else in_channels
        kind = layer["type"]
        if kind == "convolutional":
            c_out = int(layer["filters"])
            shapes.append((prev, c_out, int(layer["size"]), layer.get("batch_normalize") == "1"))
            channels.append(c_out)
        elif kind == "route":
            refs = [int(v) for v in layer["layers"].split(",")]
            channels.append(sum(channels[r if r >= 0 else i + r] for r in refs))
        else:  # shortcut, maxpool, upsample keep the width
            channels.append(prev)
    return shapes


def random_weights(shapes: list[tuple[int, int, int, bool]], seed: int = 0) -> np.ndarray:
    """Parameters in darknet's order, at unit scale (kernels ~ 1/sqrt(fan-in), BN near identity)."""
    rng = np.random.default_rng(seed)
    parts = []
    for c_in, c_out, k, bn in shapes:
        if bn:
            parts += [rng.normal(0, 0.1, c_out), rng.uniform(0.5, 1.5, c_out), rng.normal(0, 0.1, c_out),
                      rng.uniform(0.5, 1.5, c_out)]  # fmt: skip
        else:
            parts.append(rng.normal(0, 0.1, c_out))
        parts.append(rng.normal(0, 1 / np.sqrt(c_in * k * k), c_out * c_in * k * k))
    return np.concatenate(parts).astype("<f4")


def write_weights(path: Path, params: np.ndarray, major: int = 0, minor: int = 2, seen: int = 32013312) -> None:
    with open(path, "wb") as f:
        np.array([major, minor, 0], dtype="<i4").tofile(f)
        np.array([seen], dtype="<u8" if major * 10 + minor >= 2 else "<u4").tofile(f)
        params.tofile(f)


def run_cfg(layers: list[dict], params: np.ndarray, x: torch.Tensor, last: int) -> list[torch.Tensor]:
    """Outputs of layers 0..last, computed the way darknet does (float64 for a clean reference)."""
    x = x.double()
    outputs: list[torch.Tensor] = []
    offset = 0
    for i, layer in enumerate(layers[: last + 1]):
        kind = layer["type"]
        prev = outputs[-1] if outputs else x
        if kind == "convolutional":
            c_in, c_out, k = prev.shape[1], int(layer["filters"]), int(layer["size"])
            bn = layer.get("batch_normalize") == "1"

            def take(n: int) -> torch.Tensor:
                nonlocal offset
                t = torch.from_numpy(params[offset : offset + n].astype(np.float64))
                offset += n
                return t

            if bn:
                beta, gamma, mean, var = take(c_out), take(c_out), take(c_out), take(c_out)
            else:
                bias = take(c_out)
            kernel = take(c_out * c_in * k * k).view(c_out, c_in, k, k)
            stride = int(layer.get("stride", 1))
            pad = k // 2 if layer.get("pad") == "1" else int(layer.get("padding", 0))
            y = F.conv2d(prev, kernel, stride=stride, padding=pad)
            if bn:
                y = (y - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
                y = y * gamma[:, None, None] + beta[:, None, None]
            else:
                y = y + bias[:, None, None]
            act = layer["activation"]
            if act == "mish":
                y = y * torch.tanh(F.softplus(y))
            elif act == "leaky":
                y = torch.where(y > 0, y, 0.1 * y)
            else:
                assert act == "linear", act
        elif kind == "route":
            refs = [int(v) for v in layer["layers"].split(",")]
            y = torch.cat([outputs[r if r >= 0 else i + r] for r in refs], dim=1)
        elif kind == "shortcut":
            y = prev + outputs[i + int(layer["from"])]
        elif kind == "maxpool":
            size, stride = int(layer["size"]), int(layer["stride"])
            y = F.max_pool2d(F.pad(prev, [(size - 1) // 2, size // 2] * 2, value=-float("inf")), size, stride)
        elif kind == "upsample":
            y = F.interpolate(prev, scale_factor=int(layer["stride"]), mode="nearest")
        else:
            raise NotImplementedError(kind)
        outputs.append(y)
    return outputs
