"""Optimizer with real weight decay, the warm-up + cosine schedule, and an EMA of the weights."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from yolovis.config import TrainConfig


def build_optimizer(model: nn.Module, criterion: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Four groups: backbone and the rest, each split into decayed (conv/linear weights) and not decayed (norms,
    biases), plus the loss-balancing weights. Each group keeps `lr_scale` and `is_backbone` for the schedule.

    The original never applied its weight decay; here it applies to the weights it should, and never to BN or
    GroupNorm parameters or biases (decaying those only fights the normalisation).
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {(b, d): [] for b in (True, False) for d in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.dim() > 1  # conv kernels and linear weights; norms and biases are 1-D
        groups[(name.startswith("backbone."), decay)].append(p)
    param_groups = [
        {"params": params, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": 1.0, "is_backbone": bb}
        for (bb, decay), params in groups.items()
        if params
    ]
    balance = [p for p in criterion.parameters() if p.requires_grad]
    if balance:
        param_groups.append(
            {"params": balance, "weight_decay": 0.0, "lr_scale": cfg.balance_lr_scale, "is_backbone": False}
        )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise ValueError(f"train.optimizer must be 'sgd' or 'adamw', not {cfg.optimizer!r}")


def lr_factor(progress: float, cfg: TrainConfig) -> float:
    """Linear warm-up over `warmup_fraction` of the run, then cosine from 1 to `min_lr_ratio`.

    `progress` in [0, 1] is the fraction of the run done: steps over total steps, or, under a time limit,
    whichever of that and elapsed over the budget is larger, so the schedule ends when the budget does.
    """
    progress = min(max(progress, 0.0), 1.0)
    if cfg.warmup_fraction > 0 and progress < cfg.warmup_fraction:
        return max(progress / cfg.warmup_fraction, 1e-3)
    span = max(1.0 - cfg.warmup_fraction, 1e-9)
    t = (progress - cfg.warmup_fraction) / span
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def apply_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, progress: float, backbone_frozen: bool) -> float:
    factor = lr_factor(progress, cfg)
    for group in optimizer.param_groups:
        frozen = backbone_frozen and group["is_backbone"]
        group["lr"] = 0.0 if frozen else cfg.lr * factor * group["lr_scale"]
    return cfg.lr * factor


def ema_decay(updates: int, decay: float, warmup_steps: int) -> float:
    """The EMA's decay at its `updates`-th update: it ramps up from 0, so that the average is not dominated by
    the random initial weights in short runs."""
    return decay * (1 - math.exp(-updates / max(warmup_steps, 1)))


def build_ema(model: nn.Module, decay: float, warmup_steps: int) -> AveragedModel:
    """An exponential moving average of the weights and buffers: torch's `AveragedModel` with the ramped decay.

    Its first update already averages with the initial weights (n_averaged starts at 1 instead of AveragedModel's
    copy on the first call), floating-point tensors are averaged as ema * d + weights * (1 - d), and integer
    buffers (BN's batch counts) follow the model. `ema.module` is the averaged network.
    """

    @torch.no_grad()
    def average(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        d = ema_decay(int(n_averaged), decay, warmup_steps)
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, current, alpha=1 - d)

    ema = AveragedModel(model, multi_avg_fn=average, use_buffers=True)
    ema.n_averaged.fill_(1)
    ema.module.eval()
    for p in ema.module.parameters():
        p.requires_grad_(False)
    return ema


def ema_updates(ema: AveragedModel) -> int:
    """How many times the EMA was updated (what the checkpoint records)."""
    return int(ema.n_averaged) - 1


def set_ema_updates(ema: AveragedModel, updates: int) -> None:
    ema.n_averaged.fill_(updates + 1)
