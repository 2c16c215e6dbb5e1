"""Run a trained YoloV4+1 on frames: letterbox, network, postprocess. The detector of `track` and `predict`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from yolovis.config import Config, ConfigError, ModelConfig, from_dict, to_dict
from yolovis.data.letterbox import LetterboxInfo, letterbox_image
from yolovis.errors import UserError
from yolovis.fileio import atomic_torch_save
from yolovis.model.detections import Detections
from yolovis.model.detector import YoloV4Plus1, build_model
from yolovis.model.fuse import fuse_conv_bn
from yolovis.model.postprocess import Postprocess

CHECKPOINT_FORMAT = "yolovis-checkpoint-1"


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a yolovis checkpoint dict (on the CPU) with one-line errors for the usual ways it goes wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for corrupt files; the user needs the file name
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a yolovis checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    for key in ("model", "config", "categories"):
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint lacks '{key}'")
    return ckpt


def save_inference_checkpoint(
    path: str | os.PathLike,
    model_config: ModelConfig | None = None,
    categories: list[dict] | None = None,
    model: YoloV4Plus1 | None = None,
    config: Config | None = None,
) -> None:
    """Write a checkpoint that `Detector.from_checkpoint` reads: a given model, or a randomly initialised one
    (tests and benchmarks)."""
    config = config or Config()
    if model_config is not None:
        config.model = model_config
    categories = categories or [{"id": i + 1, "name": f"class{i + 1}"} for i in range(config.model.num_classes)]
    if len(categories) != config.model.num_classes:
        raise ValueError(f"{len(categories)} categories for a model of {config.model.num_classes} classes")
    model = model or build_model(config.model)
    ckpt = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "ema": None, "config": to_dict(config),
            "categories": categories}  # fmt: skip
    atomic_torch_save(ckpt, path)


class Detector:
    """frames (list of (H, W, 3) uint8 RGB arrays, any sizes) -> list of `Detections` in frame pixels."""

    def __init__(
        self,
        model: YoloV4Plus1,
        config: Config,
        categories: list[dict],
        device: str | torch.device = "cpu",
        img_size: tuple[int, int] | None = None,
        half: bool = False,
    ) -> None:
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            raise UserError("--half needs a CUDA device (float16 convolutions are slow or missing on the CPU)")
        self.config = config
        self.categories = categories
        self.img_size = tuple(img_size or config.img_size)
        if len(self.img_size) != 2 or any(s <= 0 or s % 32 for s in self.img_size):
            raise UserError(f"input size {self.img_size}: (H, W) must be positive multiples of 32")
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
    ) -> Detector:
        ckpt = read_checkpoint(path)
        try:
            config = from_dict(Config, ckpt["config"], f"{path}: config")
        except ConfigError as e:
            raise UserError(str(e)) from None
        model = build_model(config.model)
        weights = ckpt.get("ema") or ckpt["model"]  # the EMA weights are the better ones when training kept them
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise UserError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0]})") from None
        model.eval()
        fuse_conv_bn(model)  # a detector never trains: fold BN into the convs, one layer less per block
        return cls(model, config, ckpt["categories"], device, img_size, half)

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
        with torch.autocast("cuda", enabled=self.half):
            output = self.model(batch)
            detections = self.postprocess(output, self.model.mask_head, letterboxes)
        return [d.to("cpu") for d in detections]
