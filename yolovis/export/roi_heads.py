"""The RoI heads of an OpenVINO export: each head's weighted part (`predict`: the convolutions on the pooled RoIs)
as an OpenVINO graph with a dynamic RoI count, its pooling (`pool`: torchvision's RoIAlign, no weights) in PyTorch.

Splitting there keeps RoIAlign in the reference implementation (whether ONNX's RoiAlign, as OpenVINO runs it,
samples as torchvision's does was not checked: nothing to check is needed this way) and moves what costs to
OpenVINO: on 20 RoIs of 720p's busy frame the mask head's
convolutions take ~1.6x less time there than in PyTorch (docs/deployment.md). A folder written before this
holds no such graph; its RoI heads run in PyTorch, as they did.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolovis.errors import UserError
from yolovis.export.openvino import _openvino, convert_onnx
from yolovis.model.detector import YoloV4Plus1

ROI_HEADS = ("mask_head", "assoc_head")  # the model's attributes that have `pool` and `predict`
OPSET = 17


class _PredictGraph(nn.Module):
    """`head.predict` with one positional input per level, as exporters want it."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, *pooled: torch.Tensor) -> torch.Tensor:
        return self.head.predict(list(pooled))


def sample_pooled(model: YoloV4Plus1, head: nn.Module, rois: int = 3) -> list[torch.Tensor]:
    """Pooled features of the shapes `head.predict` takes (from the head's own `pool`, so the RoI size and the
    embedding width are the model's), for `rois` random RoIs."""
    generator = torch.Generator().manual_seed(0)
    dim = model.embedding.embed_dim
    embeddings = [torch.rand(1, dim, 64 // s + 1, 64 // s + 1, generator=generator) for s in model.strides]
    corners = torch.rand(rois, 2, generator=generator) * 32
    boxes = torch.cat((corners, corners + 8 + torch.rand(rois, 2, generator=generator) * 24), dim=1)
    return head.pool(embeddings, [boxes])


def roi_heads_to_export(model: YoloV4Plus1, dense_modules: list[str]) -> list[str]:
    return [name for name in ROI_HEADS if getattr(model, name, None) is not None and name not in dense_modules]


def export_roi_head(model: YoloV4Plus1, name: str, folder: Path) -> Path:
    """Write `folder/NAME.xml` (+ .bin): model.NAME.predict for any number of RoIs. The model is in eval mode."""
    head = getattr(model, name)
    pooled = sample_pooled(model, head)
    onnx_path = folder / f"{name}.onnx"
    inputs = [f"pooled.{level}" for level in range(len(pooled))]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # GroupNorm's batch-size check reads the sample's RoI count as a Python value; it only checks it.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(_PredictGraph(head).eval(), tuple(pooled), str(onnx_path), opset_version=OPSET,
                          input_names=inputs, output_names=["output"], dynamo=False,
                          dynamic_axes={n: {0: "rois"} for n in [*inputs, "output"]})  # fmt: skip
    xml = folder / f"{name}.xml"
    convert_onnx(onnx_path, xml)
    onnx_path.unlink()
    return xml


class OpenVINORoIHead(nn.Module):
    """Stands in for a RoI head of the PyTorch part: the head's `pool` in PyTorch, its `predict` in OpenVINO.
    Same call and output as the head (inference only; no RoI: the head itself, which skips its convolutions)."""

    def __init__(self, head: nn.Module, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__()
        ov = _openvino(path)
        self.head = head
        self.path = Path(path)
        config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
        try:
            self.request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
        except Exception as e:  # OpenVINO raises RuntimeError with pages of text; keep one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:100]
            raise UserError(f"{path}: not a readable OpenVINO model ({first})") from None

    def forward(self, embeddings: list[torch.Tensor], rois: list[torch.Tensor]) -> torch.Tensor:
        if sum(int(r.shape[0]) for r in rois) == 0:
            return self.head(embeddings, rois)
        return self.run(self.head.pool(embeddings, rois))

    def run(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """`head.predict(pooled)`, in OpenVINO."""
        self.request.infer([np.ascontiguousarray(p.detach().float().numpy()) for p in pooled], share_inputs=True)
        # A copy: the request reuses its output buffer at the next call, and a frame's logits outlive it.
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())
