"""The ONNX graph as an OpenVINO IR (network.xml + network.bin), and OpenVINO as its runner: the CPU target.

OpenVINO fuses what ONNX spells out op by op (Softplus, Tanh, Mul back into one Mish; convolution + bias +
activation), picks blocked channel layouts for the convolutions and keeps them across layers, which is where its
3-4x over PyTorch eager comes from on this network (docs/deployment.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from yolovis.errors import UserError
from yolovis.export.runtime import check_batch, unflatten_dense
from yolovis.model.detector import DenseOutput


def _openvino(path: str | os.PathLike):
    try:
        import openvino
    except ImportError:
        raise UserError(f"{path}: OpenVINO is not installed: pip install 'yolovis[openvino]'") from None
    return openvino


def convert_onnx(onnx_path: str | os.PathLike, xml_path: str | os.PathLike) -> None:
    """ONNX graph -> OpenVINO IR, weights kept in float32 (OpenVINO's default halves them, which moves the
    outputs by ~1e-3: more than the agreement with PyTorch that the tests hold the export to)."""
    ov = _openvino(onnx_path)
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


class OpenVINONetwork:
    """Runs an IR (or an ONNX graph) with OpenVINO on the CPU: (1, 3, H, W) images -> `DenseOutput`.

    The returned tensors share the inference request's output buffers: they are valid until the next call
    (`Detector` finishes with a frame before it sends the next one, which saves a copy of ~16 MB per frame)."""

    runtime = "openvino"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ov = _openvino(path)
        self.path = Path(path)
        config = {
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),  # as many as PyTorch is given
            # float32 everywhere: on CPUs with bfloat16 units OpenVINO would otherwise compute in bfloat16.
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        try:
            self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError with pages of text; keep one line
            raise UserError(f"{path}: not a readable OpenVINO model ({str(e).strip().splitlines()[0][:100]})") from None
        shape = self.compiled.input(0).shape  # [1, 3, H, W]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.names = [o.get_any_name() for o in self.compiled.outputs]
        self.output_shapes = {o.get_any_name(): [int(d) for d in o.shape] for o in self.compiled.outputs}
        self.request = self.compiled.create_infer_request()

    def __call__(self, images: torch.Tensor) -> DenseOutput:
        array = check_batch(images, self.input_size, str(self.path))
        self.request.infer({0: array}, share_inputs=True)
        outputs = [self.request.get_output_tensor(i).data for i in range(len(self.names))]
        return unflatten_dense(self.names, outputs, self.input_size)
