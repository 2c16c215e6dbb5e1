"""Training: plain functions. `train(...)` sets a run up (data, model, criterion, optimizer, resume) and loops
over `train_one_epoch`; validation and checkpoints happen between epochs and, for checkpoints, every
`checkpoint_every_steps` steps too.

Exact resume: the data order of an epoch is a permutation seeded by (seed, epoch) and every sample's augmentation
is seeded by (seed, epoch, index), so a run resumed from RUN/last.pt sees the same batches as one that never
stopped. With `torchrun`, each process takes every world_size-th batch slot of the same permutation.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from yolovis.config import Config, PostprocessConfig, save_config
from yolovis.data.sample import FrameSample, collate_frames
from yolovis.engine.checkpoint import TrainState, load_training_checkpoint, save_training_checkpoint
from yolovis.engine.optim import ModelEMA, apply_lr, build_optimizer
from yolovis.errors import UserError
from yolovis.fileio import atomic_write_text
from yolovis.loss.criterion import Criterion
from yolovis.loss.mask_targets import build_mask_rois
from yolovis.model.detector import YoloV4Plus1
from yolovis.model.postprocess import Postprocess


class TrainingDiverged(UserError):
    pass


class TrainStep(nn.Module):
    """Model and criterion in one module, so that DDP averages the gradients of the balancing weights too."""

    def __init__(self, model: YoloV4Plus1, criterion: Criterion, mask_proposals_per_image: int) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion
        # Proposals for the mask head: the detector's own boxes, kept few and loose (score 0.05, NMS 0.7).
        self.proposals = Postprocess(
            PostprocessConfig(
                score_threshold=0.05,
                nms_iou=0.7,
                max_per_level=mask_proposals_per_image,
                max_per_image=mask_proposals_per_image,
            )  # fmt: skip
        )

    def forward(self, images: torch.Tensor, targets: list[FrameSample]) -> tuple[torch.Tensor, dict[str, float]]:
        output = self.model(images)  # predictions and embeddings of every level
        gt_boxes = [t.boxes for t in targets]
        gt_labels = [t.labels for t in targets]
        proposals = [boxes for boxes, _, _ in self.proposals.select_boxes(output)]
        mask_rois = build_mask_rois(proposals, gt_boxes, [t.masks for t in targets])
        if sum(len(r) for r in mask_rois.rois) == 0:
            # A batch without objects: one unmatched RoI keeps the mask head in the graph (DDP needs every
            # parameter to take part), and it carries no loss.
            h, w = images.shape[-2:]
            mask_rois.rois[0] = images.new_tensor([[0.0, 0.0, float(w), float(h)]])
        output.mask_logits = self.model.mask_head(output.embeddings, mask_rois.rois)  # (R, 28, 28)
        return self.criterion(output, gt_boxes, gt_labels, mask_rois)


class SeededFrames(Dataset):
    """Indexes by (epoch, index) and seeds every random source from (seed, epoch, index) before loading, so the
    augmentation of a sample does not depend on which worker loads it or whether the run was resumed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> FrameSample:
        epoch, index = key
        sample_seed = (self.seed * 1_000_003 + epoch) * 10_000_019 + index
        torch.manual_seed(sample_seed)
        np.random.seed(sample_seed % 2**32)
        random.seed(sample_seed)
        return self.dataset[index]


def epoch_batches(num_samples: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list:
    """The batches of (epoch, index) keys of this process for one epoch; the last incomplete round is dropped."""
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(num_samples, generator=g).tolist()
    per_round = batch_size * world
    rounds = num_samples // per_round
    return [
        [(epoch, i) for i in order[r * per_round + rank * batch_size : r * per_round + (rank + 1) * batch_size]]
        for r in range(rounds)
    ]


@dataclass
class RunContext:
    cfg: Config
    out_dir: Path
    device: torch.device
    rank: int = 0
    world: int = 1
    categories: list[dict] = field(default_factory=list)
    start_time: float = field(default_factory=time.monotonic)
    elapsed_at_start: float = 0.0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def elapsed(self) -> float:
        return self.elapsed_at_start + time.monotonic() - self.start_time

    def time_is_up(self) -> bool:
        limit = self.cfg.train.time_limit_minutes
        return limit > 0 and self.elapsed() >= limit * 60

    def progress(self, global_step: int, total_steps: int) -> float:
        p = global_step / max(total_steps, 1)
        limit = self.cfg.train.time_limit_minutes
        return max(p, self.elapsed() / (limit * 60)) if limit > 0 else p


def train_one_epoch(
    ctx: RunContext,
    step_module: nn.Module,
    model: YoloV4Plus1,
    dataset: SeededFrames,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: ModelEMA | None,
    state: TrainState,
    total_steps: int,
    save_last,
) -> dict[str, float]:
    """Runs the rest of epoch `state.epoch` from `state.step_in_epoch`; returns the epoch's mean losses."""
    tc = ctx.cfg.train
    batches = epoch_batches(len(dataset), tc.batch_size, tc.seed, state.epoch, ctx.rank, ctx.world)
    loader = DataLoader(dataset, batch_sampler=batches[state.step_in_epoch :], num_workers=tc.workers,
                        collate_fn=collate_frames, pin_memory=ctx.device.type == "cuda")  # fmt: skip
    frozen = state.epoch < tc.freeze_backbone_epochs
    step_module.train()
    if frozen:
        model.backbone.eval()  # frozen: its BN statistics stay those it was initialised with
    use_amp = tc.amp and ctx.device.type == "cuda"
    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(loader, total=len(batches), initial=state.step_in_epoch, disable=not ctx.is_main,
               desc=f"epoch {state.epoch + 1}/{tc.epochs}", unit="batch", dynamic_ncols=True)  # fmt: skip
    tick = time.monotonic()
    for images, targets in bar:
        lr = apply_lr(optimizer, tc, ctx.progress(state.global_step, total_steps), frozen)
        images = images.to(ctx.device, non_blocking=True).float().div_(255)
        if use_amp and tc.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [t.to(ctx.device) for t in targets]
        with torch.autocast(ctx.device.type, enabled=use_amp):
            loss, log = step_module(images, targets)
        if not math.isfinite(float(loss.detach())):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in log.items())
            raise TrainingDiverged(
                f"non-finite loss at epoch {state.epoch + 1} step {state.step_in_epoch + 1}: {terms}; "
                f"the last good checkpoint is {ctx.out_dir / 'last.pt'}"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if tc.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(step_module.parameters(), tc.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update(model)
        state.step_in_epoch += 1
        state.global_step += 1
        count += 1
        for k, v in log.items():
            sums[k] = sums.get(k, 0.0) + v
        now = time.monotonic()
        if ctx.is_main:
            bar.set_postfix(
                loss=f"{log['loss']:.3f}", lr=f"{lr:.2e}", img_s=f"{len(images) * ctx.world / (now - tick):.1f}"
            )
        tick = now
        if state.step_in_epoch % tc.checkpoint_every_steps == 0 or ctx.time_is_up():
            state.elapsed_seconds = ctx.elapsed()
            save_last()
        if ctx.time_is_up():
            break
    bar.close()
    means = {k: v / max(count, 1) for k, v in sums.items()}
    means["lr"] = optimizer.param_groups[0]["lr"]
    return means


@dataclass
class TrainResult:
    metrics: dict[str, float]  # the last epoch's row of metrics.csv
    model: YoloV4Plus1
    ema: YoloV4Plus1 | None
    state: TrainState


def setup_distributed(device: str | None) -> tuple[int, int, torch.device]:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: one process per GPU (NCCL) or per CPU worker (gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = [",".join(keys)] + [",".join(f"{row.get(k, '')}" for k in keys) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def train(
    cfg: Config,
    ann_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    val_ann: str | os.PathLike | None = None,
    val_images: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    darknet: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train YoloV4+1 on a YouTube-VIS (or COCO) annotation file."""
    from yolovis.data.ytvis import YTVISDataset
    from yolovis.engine.checkpoint import load_init_weights
    from yolovis.engine.validate import Validator
    from yolovis.model.darknet import load_darknet_weights
    from yolovis.model.detector import build_model

    rank, world, dev = setup_distributed(device)
    tc = cfg.train
    out = Path(out_dir)
    torch.manual_seed(tc.seed)
    dataset = YTVISDataset(ann_file, images_dir, img_size=tuple(cfg.img_size), augment=tc.augment)
    if len(dataset) < tc.batch_size * world:
        raise UserError(f"{ann_file}: {len(dataset)} frames, fewer than one batch of {tc.batch_size * world}")
    cfg.model.num_classes = dataset.num_classes
    categories = [{"id": c["id"], "name": c["name"]} for c in dataset.categories]
    ctx = RunContext(cfg, out, dev, rank, world, categories)

    model = build_model(cfg.model)
    if darknet is not None:
        loaded = load_darknet_weights(model, darknet)
        if ctx.is_main:
            print(f"loaded {loaded} darknet conv layers from {darknet}")
    if init_from is not None:
        copied, total = load_init_weights(model, init_from)
        if ctx.is_main:
            print(f"initialised {copied}/{total} tensors from {init_from}")
    criterion = Criterion(tc.criterion)
    model.to(dev)
    criterion.to(dev)
    if dev.type == "cuda" and tc.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, criterion, tc)
    scaler = torch.amp.GradScaler(dev.type, enabled=tc.amp and dev.type == "cuda")
    ema = ModelEMA(model, tc.ema_decay, tc.ema_warmup_steps) if tc.ema else None
    state = TrainState()
    if resume is not None:
        state = load_training_checkpoint(resume, model=model, criterion=criterion, optimizer=optimizer,
                                         scaler=scaler, ema=ema)  # fmt: skip
        ctx.elapsed_at_start = state.elapsed_seconds
        if ctx.is_main:
            print(f"resumed {resume} at epoch {state.epoch + 1}, step {state.step_in_epoch}")
    step_module: nn.Module = TrainStep(model, criterion, tc.mask_proposals_per_image)
    if world > 1:
        step_module = torch.nn.parallel.DistributedDataParallel(step_module)

    steps_per_epoch = len(dataset) // (tc.batch_size * world)
    total_steps = tc.epochs * steps_per_epoch
    seeded = SeededFrames(dataset, tc.seed)
    validator = Validator(cfg, val_ann, val_images, dev) if (val_ann is not None and ctx.is_main) else None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    rows: list[dict] = _read_rows(out / "metrics.csv") if resume is not None else []

    def save(path: Path) -> None:
        if ctx.is_main:
            save_training_checkpoint(path, model=model, criterion=criterion, optimizer=optimizer, scaler=scaler,
                                     ema=ema, state=state, config=cfg, categories=categories)  # fmt: skip

    writer = _tensorboard(out) if ctx.is_main else None
    metrics: dict[str, float] = {}
    ctx.start_time = time.monotonic()  # the budget is training time: set-up and data indexing do not count
    while state.epoch < tc.epochs and not ctx.time_is_up():
        means = train_one_epoch(ctx, step_module, model, seeded, optimizer, scaler, ema, state, total_steps,
                                lambda: save(out / "last.pt"))  # fmt: skip
        epoch_done = state.step_in_epoch >= steps_per_epoch
        metrics = {"epoch": state.epoch + 1, "step": state.global_step, **means}
        last_epoch = state.epoch + 1 >= tc.epochs or ctx.time_is_up()
        if validator is not None and ((state.epoch + 1) % tc.val_every_epochs == 0 or last_epoch):
            metrics.update(validator(ema.module if ema is not None else model, criterion, categories))
        if epoch_done:
            state.epoch += 1
            state.step_in_epoch = 0
        state.elapsed_seconds = ctx.elapsed()
        if ctx.is_main:
            score = metrics.get("val_AP50", -metrics.get("val_loss", metrics.get("loss", 0.0)))
            if score > state.best_metric:
                state.best_metric, state.best_epoch = score, int(metrics["epoch"])
                save(out / "best.pt")
            save(out / "last.pt")
            rows.append(metrics)
            write_csv(out / "metrics.csv", rows)
            for k, v in metrics.items():
                writer.add_scalar(k if k.startswith("val_") else f"train/{k}", v, state.global_step)
            writer.flush()
            summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in _SUMMARY)
            print(f"epoch {metrics['epoch']}: {summary}", flush=True)
    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()
    return TrainResult(metrics, model, ema.module if ema is not None else None, state)


_SUMMARY = ("loss", "box", "obj", "cls", "mask", "lr", "val_loss", "val_AP", "val_AP50", "val_frame_AP50")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    keys = lines[0].split(",")
    return [{k: float(v) for k, v in zip(keys, line.split(","), strict=True) if v != ""} for line in lines[1:]]


def _tensorboard(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard"))
