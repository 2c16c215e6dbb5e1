"""Training checkpoints: everything needed to continue a run exactly where it stopped, written atomically."""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from yolovis.config import Config, to_dict
from yolovis.engine.inference import CHECKPOINT_FORMAT, read_checkpoint
from yolovis.engine.optim import ModelEMA
from yolovis.errors import UserError
from yolovis.fileio import atomic_torch_save


@dataclass
class TrainState:
    epoch: int = 0  # the epoch in progress (or next to start when step_in_epoch == 0)
    step_in_epoch: int = 0  # optimizer steps already done in `epoch`
    global_step: int = 0
    elapsed_seconds: float = 0.0  # training time spent so far, over all sessions of the run
    best_metric: float = float("-inf")
    best_epoch: int = -1


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
    ema: ModelEMA | None,
    state: TrainState,
    config: Config,
    categories: list[dict],
) -> None:
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "ema_updates": ema.updates if ema is not None else 0,
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
    ema: ModelEMA | None,
) -> TrainState:
    """Restore a run saved by `save_training_checkpoint` into freshly built objects of the same config."""
    ckpt = read_checkpoint(path)
    if "optimizer" not in ckpt or "state" not in ckpt:
        raise UserError(f"{path}: an inference-only checkpoint cannot be resumed (no optimizer state)")
    try:
        model.load_state_dict(ckpt["model"])
        criterion.load_state_dict(ckpt["criterion"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError) as e:
        raise UserError(f"{path}: does not fit this run's model ({str(e).splitlines()[0][:120]})") from None
    scaler.load_state_dict(ckpt["scaler"])
    if ema is not None and ckpt["ema"] is not None:
        ema.module.load_state_dict(ckpt["ema"])
        ema.updates = ckpt["ema_updates"]
    set_rng_states(ckpt["rng"])
    return TrainState(**ckpt["state"])


def load_init_weights(model: nn.Module, path: str | os.PathLike) -> tuple[int, int]:
    """Initialise from another checkpoint's weights (EMA preferred): every tensor whose name and shape match is
    copied, so a checkpoint of another class count still gives its backbone and neck. Returns (copied, total)."""
    ckpt = read_checkpoint(Path(path))
    source = ckpt.get("ema") or ckpt["model"]
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise UserError(f"{path}: no tensor of this checkpoint fits the model (another scale?)")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)
