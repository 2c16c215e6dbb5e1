"""A training run's objects, built in one place: the network (DDP-wrapped under torchrun), the criterion, the
optimizer, the AMP scaler, the EMA, the state and the clock; and its checkpoints."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from yolovis.config import Config
from yolovis.engine.checkpoint import TrainState, load_init_weights, load_training_checkpoint, save_training_checkpoint
from yolovis.engine.distributed import World
from yolovis.engine.optim import build_ema, build_optimizer
from yolovis.loss.criterion import Criterion
from yolovis.model.darknet import load_darknet_weights
from yolovis.model.detector import YoloV4Plus1, build_model


@dataclass
class Clock:
    """Training time, over all sessions of a run (set-up and validation do not count); the time budget."""

    limit_minutes: float = 0.0
    elapsed_at_start: float = 0.0
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_at_start + time.monotonic() - self.start

    def is_up(self) -> bool:
        return self.limit_minutes > 0 and self.elapsed() >= self.limit_minutes * 60

    def progress(self, step: int, total_steps: int) -> float:
        """Fraction of the run done: steps, or under a time limit whichever of steps and time is further."""
        p = step / max(total_steps, 1)
        return max(p, self.elapsed() / (self.limit_minutes * 60)) if self.limit_minutes > 0 else p


@dataclass
class Run:
    cfg: Config
    network: YoloV4Plus1  # the model itself (what checkpoints and validation see)
    model: nn.Module  # what the steps call: the network, or DDP around it
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None
    place: World
    device: torch.device
    out_dir: Path
    categories: list[dict]
    state: TrainState = field(default_factory=TrainState)
    clock: Clock = field(default_factory=Clock)

    def save(self, name: str) -> None:
        """RUN/<name> with every state (rank 0 only; the others hold the same weights)."""
        if self.place.is_main:
            self.state.elapsed_seconds = self.clock.elapsed()
            save_training_checkpoint(self.out_dir / name, model=self.network, criterion=self.criterion,
                                     optimizer=self.optimizer, scaler=self.scaler, ema=self.ema, state=self.state,
                                     config=self.cfg, categories=self.categories)  # fmt: skip


def build_run(
    cfg: Config,
    categories: list[dict],
    out_dir: Path,
    place: World,
    device: torch.device,
    *,
    resume: str | os.PathLike | None = None,
    darknet: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
) -> Run:
    """Everything a run trains with, initialised from darknet weights or another checkpoint, or resumed."""
    tc = cfg.train
    network = build_model(cfg.model, cfg.postprocess)
    if darknet is not None:
        loaded = load_darknet_weights(network, darknet)
        if place.is_main:
            print(f"loaded {loaded} darknet conv layers from {darknet}")
    if init_from is not None:
        copied, total = load_init_weights(network, init_from)
        if place.is_main:
            print(f"initialised {copied}/{total} tensors from {init_from}")
    criterion = Criterion(tc.criterion, len(network.strides), association=network.assoc_head is not None)
    criterion.to(device)
    network.to(device)
    if device.type == "cuda" and tc.channels_last:
        network.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(network, criterion, tc)
    scaler = torch.amp.GradScaler(device.type, enabled=tc.amp and device.type == "cuda")
    ema = build_ema(network, tc.ema_decay, tc.ema_warmup_steps) if tc.ema else None
    model = torch.nn.parallel.DistributedDataParallel(network) if place.distributed else network
    run = Run(cfg, network, model, criterion, optimizer, scaler, ema, place, device, out_dir, categories)
    run.clock.limit_minutes = tc.time_limit_minutes
    if resume is not None:
        run.state = load_training_checkpoint(resume, model=network, criterion=criterion, optimizer=optimizer,
                                             scaler=scaler, ema=ema)  # fmt: skip
        run.clock.elapsed_at_start = run.state.elapsed_seconds
        if place.is_main:
            print(f"resumed {resume} at epoch {run.state.epoch + 1}, step {run.state.step_in_epoch}")
    return run
