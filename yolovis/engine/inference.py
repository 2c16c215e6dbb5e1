"""Run a trained YoloV4+1 on frames: letterbox, the forward, postprocess. The detector of `track`, `predict`,
`diagnose` and the trainer's validation; it runs a checkpoint in PyTorch, or a folder written by `yolovis export`
(the network in ONNX Runtime or OpenVINO, the box selection, RoI heads and postprocess in PyTorch)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from yolovis.config import Config
from yolovis.data.letterbox import LetterboxInfo, check_input_size, letterbox_image
from yolovis.engine.checkpoint import load_model
from yolovis.errors import UserError
from yolovis.model.detections import Detections
from yolovis.model.detector import DenseOutput, YoloV4Plus1, selection_for_inference
from yolovis.model.fuse import fuse_conv_bn
from yolovis.model.postprocess import Postprocess


class Detector:
    """frames (list of (H, W, 3) uint8 RGB arrays, any sizes) -> list of `Detections` in frame pixels.

    `config` is what the detector runs with: its input size (`img_size`, changed by `img_size=`) and its
    postprocess settings are the ones used, so saving it records what was used.

    `network` (an exported network: (1, 3, H, W) images -> `DenseOutput`, fixed input size, CPU) replaces
    `model.forward_dense`; `model` then runs only what comes after it (box selection, RoI heads)."""

    def __init__(
        self,
        model: YoloV4Plus1,
        config: Config,
        categories: list[dict],
        device: str | torch.device = "cpu",
        img_size: tuple[int, int] | None = None,
        half: bool = False,
        network: Callable[[torch.Tensor], DenseOutput] | None = None,
    ) -> None:
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            raise UserError("--half needs a CUDA device (float16 convolutions are slow or missing on the CPU)")
        if img_size is not None:
            config.img_size = list(check_input_size(*img_size))
        self.network = network
        if network is not None:
            where = getattr(network, "path", "the exported network")
            if self.device.type != "cpu":
                raise UserError(f"{where}: an exported network runs on the CPU (--device cpu), not {self.device}")
            if tuple(config.img_size) != tuple(network.input_size):
                (h, w), (want_h, want_w) = network.input_size, config.img_size
                raise UserError(f"{where}: exported for {w}x{h} inputs (fixed); for {want_w}x{want_h} export "
                                "again with that --img-size")  # fmt: skip
        self.config = config
        self.categories = categories
        self.half = half
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.postprocess = Postprocess(config.postprocess)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        img_size: tuple[int, int] | None = None,
        half: bool = False,
        score_threshold: float | None = None,
    ) -> Detector:
        """`path`: a checkpoint, or a folder written by `yolovis export` (its runtime chosen by what it holds)."""
        if Path(path).is_dir():
            from yolovis.export.folder import load_exported

            exported = load_exported(path)
            if score_threshold is not None:
                exported.config.postprocess.score_threshold = score_threshold
            return cls(exported.model, exported.config, exported.categories, device, img_size, half, exported.network)
        model, config, categories = load_model(path)
        if score_threshold is not None:
            config.postprocess.score_threshold = score_threshold
        model.eval()
        fuse_conv_bn(model)  # a detector never trains: fold BN into the convs, one layer less per block
        return cls(model, config, categories, device, img_size, half)

    @property
    def img_size(self) -> tuple[int, int]:
        return tuple(self.config.img_size)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def category_ids(self) -> list[int]:
        """Dataset category id of each contiguous training label (what results files carry)."""
        return [c["id"] for c in self.categories]

    def preprocess(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, list[LetterboxInfo]]:
        """Frames (list of (H, W, 3) uint8 RGB) -> the network's input batch (B, 3, H, W) and each letterbox."""
        height, width = self.img_size
        images, letterboxes = [], []
        for i, frame in enumerate(frames):
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                shape = getattr(frame, "shape", None)
                raise UserError(f"frame {i}: expected an (H, W, 3) uint8 RGB array, got {type(frame).__name__} {shape}")
            image, info = letterbox_image(frame, height, width)
            images.append(torch.from_numpy(image))
            letterboxes.append(info)
        batch = torch.stack(images).to(self.device).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
        batch = batch.half() if self.half else batch.float()
        batch = batch / 255.0
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch, letterboxes

    @torch.no_grad()
    def __call__(self, frames: list[np.ndarray]) -> list[Detections]:
        if not frames:
            return []
        batch, letterboxes = self.preprocess(frames)
        self.model.selection = selection_for_inference(self.config.postprocess)  # the config is what is used
        if self.network is not None:
            # One frame at a time: the exported input is fixed at batch 1, and a runner's outputs may share its
            # buffers until its next call, so each frame is finished before the next one goes in.
            return [self.postprocess(self.model.forward_instances(self.network(image[None])), [lb])[0]
                    for image, lb in zip(batch, letterboxes, strict=True)]  # fmt: skip
        with torch.autocast("cuda", enabled=self.half):
            detections = self.postprocess(self.model(batch), letterboxes)
        return [d.to("cpu") for d in detections]
