"""YoloV4+1's fully convolutional part as an ONNX graph, and ONNX Runtime as its runner.

The graph is `forward_dense` with BatchNorm folded: input 'images' (1, 3, H, W) float in [0, 1] at the fixed
size of the export; outputs named `<field>.<level>` (runtime.py). It is written by torch's TorchScript-based
exporter (`dynamo=False`): it needs no extra package (the dynamo exporter needs onnxscript) and fixed shapes are
what we want. Mish becomes Softplus, Tanh, Mul (ONNX has a Mish op since opset 18, but neither exporter emits
it and ONNX Runtime has no fused kernel for it either; docs/deployment.md measures what that costs).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from yolovis.errors import UserError
from yolovis.export.runtime import check_batch, flatten_dense, unflatten_dense
from yolovis.model.detector import DenseOutput, YoloV4Plus1

OPSET = 17
INPUT_NAME = "images"


class DenseGraph(nn.Module):
    """`model.forward_dense` with a flat tuple of outputs, as exporters want it."""

    def __init__(self, model: YoloV4Plus1) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flatten_dense(self.model.forward_dense(images))[1])


def export_onnx(model: YoloV4Plus1, path: str | os.PathLike, input_size: tuple[int, int]) -> list[str]:
    """Write `model.forward_dense` (eval mode, BN folded by the caller) for (1, 3, H, W) inputs; returns the
    output names."""
    if model.training:
        raise ValueError("export_onnx: put the model in eval mode first")
    sample = torch.rand(1, 3, *input_size)
    with torch.no_grad():
        names, _ = flatten_dense(model.forward_dense(sample))
    with warnings.catch_warnings():
        # The input-size check reads the (fixed) shape as Python ints: that is the point of a fixed-size export.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        # DenseGraph in eval mode too: the exporter restores the wrapper's mode afterwards, recursively.
        torch.onnx.export(DenseGraph(model).eval(), (sample,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=names, do_constant_folding=True)  # fmt: skip
    return names


class OnnxRuntimeNetwork:
    """Runs an exported graph with ONNX Runtime on the CPU: (1, 3, H, W) images -> `DenseOutput`."""

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"{path}: running an ONNX export needs ONNX Runtime: pip install 'yolovis[onnx]'") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # as many as PyTorch is given
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types for unreadable files; the user needs the file name
            raise UserError(f"{path}: not a readable ONNX graph ({type(e).__name__}: {str(e)[:100]})") from None
        shape = self.session.get_inputs()[0].shape  # [1, 3, H, W]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = {o.name: [int(d) for d in o.shape] for o in self.session.get_outputs()}

    def __call__(self, images: torch.Tensor) -> DenseOutput:
        array = check_batch(images, self.input_size, str(self.path))
        return unflatten_dense(self.names, self.session.run(self.names, {INPUT_NAME: array}), self.input_size)
