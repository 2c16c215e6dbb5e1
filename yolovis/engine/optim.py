"""Optimizer with real weight decay, the warm-up + cosine schedule, and an EMA of the weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

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


class ModelEMA:
    """Exponential moving average of a model's parameters and buffers; its decay ramps up from 0 so the average
    is not dominated by the random initial weights in short runs."""

    def __init__(self, model: nn.Module, decay: float, warmup_steps: int) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / max(self.warmup_steps, 1)))
        source = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(source[name].detach(), alpha=1 - d)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]
