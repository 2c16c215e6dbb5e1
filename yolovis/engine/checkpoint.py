"""Checkpoints, read and written in one place: what a run needs to continue exactly where it stopped, and what
inference needs (weights, the resolved config, the categories). Written atomically; read with one-line errors.

A checkpoint is a dict: format tag, "model" (state dict), "ema" (state dict or None), "config" (the resolved
config as a plain dict: the anchors live there and only there), "categories"; a training checkpoint adds the
criterion, optimizer, scaler, training state and random-number states.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from yolovis.config import Config, ConfigError, ModelConfig, from_dict, to_dict, with_model_keys_of_its_time
from yolovis.engine.optim import ema_updates, set_ema_updates
from yolovis.errors import UserError
from yolovis.fileio import atomic_torch_save
from yolovis.model.detector import YoloV4Plus1, build_model

CHECKPOINT_FORMAT = "yolovis-checkpoint-1"


@dataclass
class TrainState:
    epoch: int = 0  # the epoch in progress (or next to start when step_in_epoch == 0)
    step_in_epoch: int = 0  # optimizer steps already done in `epoch`
    global_step: int = 0
    elapsed_seconds: float = 0.0  # training time spent so far, over all sessions of the run
    best_metric: float = float("-inf")
    best_epoch: int = -1


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


def checkpoint_config(ckpt: dict, path: str | os.PathLike) -> Config:
    """The resolved config a checkpoint was written with (older keys read under their new names)."""
    saved = with_model_keys_of_its_time(ckpt["config"])
    try:
        config = from_dict(Config, saved, f"{path}: config")
    except ConfigError as e:
        raise UserError(str(e)) from None
    legacy = ckpt["model"].get("anchors")
    if legacy is not None:
        # Checkpoints of earlier versions also stored the anchors in the weights, and those were the ones the
        # network trained with (`--init` could bring another model's): they win over the config's.
        as_list = legacy.tolist()
        if as_list != config.model.anchors:
            message = f"{path}: the weights' anchors differ from the config's; using the weights' (trained with them)"
            warnings.warn(message, UserWarning, stacklevel=2)
            config.model.anchors = as_list
    return config


def model_weights(ckpt: dict, which: str = "model") -> dict:
    """A state dict of the checkpoint without the keys that are no longer weights (the anchors)."""
    return {k: v for k, v in (ckpt[which] or {}).items() if k != "anchors"}


def load_weights(model: nn.Module, weights: dict, path: str | os.PathLike) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit the saved config ({str(e).splitlines()[0][:120]})") from None


def load_model(path: str | os.PathLike) -> tuple[YoloV4Plus1, Config, list[dict]]:
    """The network of a checkpoint (its EMA weights where training kept them), its config and categories."""
    ckpt = read_checkpoint(path)
    config = checkpoint_config(ckpt, path)
    model = build_model(config.model, config.postprocess)
    load_weights(model, model_weights(ckpt, "ema" if ckpt.get("ema") else "model"), path)
    return model, config, ckpt["categories"]


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
    model = model or build_model(config.model, config.postprocess)
    ckpt = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "ema": None, "config": to_dict(config),
            "categories": categories}  # fmt: skip
    atomic_torch_save(ckpt, path)


def rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def save_training_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
    state: TrainState,
    config: Config,
    categories: list[dict],
) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "ema_updates": ema_updates(ema) if ema is not None else 0,
        "criterion": criterion.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "state": asdict(state),
        "rng": rng_states(),
        "config": to_dict(config),
        "categories": categories,
    }
    atomic_torch_save(ckpt, path)


def load_training_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: AveragedModel | None,
) -> TrainState:
    """Restore a run saved by `save_training_checkpoint` into freshly built objects of the same config."""
    ckpt = read_checkpoint(path)
    if "optimizer" not in ckpt or "state" not in ckpt:
        raise UserError(f"{path}: an inference-only checkpoint cannot be resumed (no optimizer state)")
    try:
        model.load_state_dict(model_weights(ckpt))
        criterion.load_state_dict(ckpt["criterion"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path}: does not fit this run's model ({str(e).splitlines()[0][:120]})") from None
    scaler.load_state_dict(ckpt["scaler"])
    if ema is not None and ckpt["ema"] is not None:
        ema.module.load_state_dict(model_weights(ckpt, "ema"))
        set_ema_updates(ema, ckpt["ema_updates"])
    set_rng_states(ckpt["rng"])
    return TrainState(**ckpt["state"])


def load_init_weights(model: nn.Module, path: str | os.PathLike) -> tuple[int, int]:
    """Initialise from another checkpoint's weights (EMA preferred): every tensor whose name and shape match is
    copied, so a checkpoint of another class count still gives its backbone and neck. The anchors are never
    copied: they are the run's config's. Returns (copied, total)."""
    ckpt = read_checkpoint(Path(path))
    source = model_weights(ckpt, "ema" if ckpt.get("ema") else "model")
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise UserError(f"{path}: no tensor of this checkpoint fits the model (another scale?)")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)
