"""Training: two plain functions. `train()` sets a run up (`run.py`: data, model, criterion, optimizer, resume)
and loops over epochs; `train_one_epoch()` runs the steps: forward with the targets, criterion, backward, step.

Exact resume: the data order and every sample's augmentation are seeded (`data/sampling.py`) and a checkpoint
holds every state, so a run resumed from RUN/last.pt ends with the weights of one that never stopped.
With `torchrun` (`distributed.py`), DDP averages the network's gradients, the criterion's few balancing weights
are averaged by hand, and the decision to stop is taken by all processes together.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from yolovis.config import Config, save_config
from yolovis.data.sample import collate_frames
from yolovis.data.sampling import SeededFrames, epoch_batches
from yolovis.engine import distributed
from yolovis.engine.checkpoint import TrainState
from yolovis.engine.optim import apply_lr
from yolovis.engine.run import Run, build_run
from yolovis.errors import UserError
from yolovis.model.detector import YoloV4Plus1


class TrainingDiverged(UserError):
    pass


@dataclass
class TrainResult:
    metrics: dict[str, float]  # the last epoch's row of metrics.csv
    model: YoloV4Plus1
    ema: YoloV4Plus1 | None
    state: TrainState


def train_one_epoch(
    run: Run,
    data: SeededFrames,
    total_steps: int,
    partners: list[list[int]] | None = None,
    on_window: Callable[[dict[str, float], int], None] | None = None,
) -> dict[str, float]:
    """The rest of epoch `run.state.epoch` from step `run.state.step_in_epoch`; returns its mean losses.
    `partners`: per frame, the frames of its video that may join it in a batch (see `epoch_batches`).
    `on_window(means, global_step)` gets the mean losses of every `train.log_every_steps` steps."""
    tc, state, place, device = run.cfg.train, run.state, run.place, run.device
    batches = epoch_batches(len(data), tc.batch_size, tc.seed, state.epoch, place.rank, place.size, partners)
    batches = batches[state.step_in_epoch :]
    loader = DataLoader(data, batch_sampler=batches, num_workers=tc.workers, collate_fn=collate_frames,
                        pin_memory=device.type == "cuda")  # fmt: skip
    frozen = state.epoch < tc.freeze_backbone_epochs
    run.model.train()
    if frozen:
        run.network.backbone.eval()  # frozen: its BN statistics stay those it was initialised with
    use_amp = tc.amp and device.type == "cuda"
    sums: dict[str, float] = {}
    window: dict[str, float] = {}
    steps = window_steps = 0
    bar = tqdm(loader, total=state.step_in_epoch + len(batches), initial=state.step_in_epoch, unit="batch",
               desc=f"epoch {state.epoch + 1}/{tc.epochs}", disable=not place.is_main, dynamic_ncols=True)  # fmt: skip
    for images, targets in bar:
        lr = apply_lr(run.optimizer, tc, run.clock.progress(state.global_step, total_steps), frozen)
        images = images.to(device, non_blocking=True).float().div_(255)  # (B, 3, H, W) in [0, 1]
        if use_amp and tc.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [t.to(device) for t in targets]
        with torch.autocast(device.type, enabled=use_amp):
            loss, log = run.criterion(run.model(images, targets), targets)
        if not math.isfinite(float(loss.detach())):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in log.items())
            raise TrainingDiverged(f"non-finite loss at epoch {state.epoch + 1} step {state.step_in_epoch + 1}: "
                                   f"{terms}; the last good checkpoint is {run.out_dir / 'last.pt'}")  # fmt: skip
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        distributed.average_gradients(run.criterion, place)
        if tc.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_([*run.model.parameters(), *run.criterion.parameters()], tc.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.ema is not None:
            run.ema.update_parameters(run.network)
        state.step_in_epoch += 1
        state.global_step += 1
        steps += 1
        for k, v in log.items():
            sums[k] = sums.get(k, 0.0) + v
            window[k] = window.get(k, 0.0) + v
        window_steps += 1
        if on_window is not None and tc.log_every_steps > 0 and state.global_step % tc.log_every_steps == 0:
            on_window({k: v / window_steps for k, v in window.items()}, state.global_step)  # a resume: fewer
            window, window_steps = {}, 0
        bar.set_postfix(loss=f"{log['loss']:.3f}", lr=f"{lr:.2e}")
        # Every rank stops at the same step: the time budget is decided by all, the step budget is the same.
        stop = run_out(run) or state.global_step >= total_steps
        if state.step_in_epoch % tc.checkpoint_every_steps == 0 or stop:
            run.save("last.pt")
        if stop:
            break
    bar.close()
    return {**{k: v / max(steps, 1) for k, v in sums.items()}, "lr": run.optimizer.param_groups[0]["lr"]}


def run_out(run: Run) -> bool:
    """The time budget is spent (decided by all processes together)."""
    return distributed.any_rank(run.clock.is_up(), run.place, run.device)


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
    """Train YoloV4+1 on a YouTube-VIS (or COCO) annotation file; RUN/ gets last.pt, best.pt, metrics.csv,
    config.yaml and TensorBoard logs, and held-out videos (`val_ann`) are scored every `val_every_epochs`."""
    from yolovis.data.mixture import training_data
    from yolovis.engine.logbook import Logbook
    from yolovis.engine.validate import Validator

    place = distributed.world()
    device_ = distributed.device_for(device, place)
    started = distributed.start(place, device_)
    tc, out = cfg.train, Path(out_dir)
    try:
        torch.manual_seed(tc.seed)
        data = training_data(ann_file, images_dir, tc.extra_data, tuple(cfg.img_size), tc.augment)
        dataset = data.dataset
        if len(dataset) < tc.batch_size * place.size:
            raise UserError(f"{ann_file}: {len(dataset)} frames, fewer than one batch of {tc.batch_size * place.size}")
        cfg.model.num_classes = len(data.categories)
        categories = [{"id": c["id"], "name": c.get("name", str(c["id"]))} for c in data.categories]
        run = build_run(cfg, categories, out, place, device_, resume=resume, darknet=darknet, init_from=init_from)
        validator = Validator(cfg, val_ann, val_images, device_, place) if val_ann else None  # on every rank
        logbook = Logbook(out, resume is not None) if place.is_main else None
        if place.is_main:
            save_config(cfg, out / "config.yaml")
        steps_per_epoch = len(dataset) // (tc.batch_size * place.size)
        total_steps = tc.epochs * steps_per_epoch
        if tc.max_steps > 0:
            total_steps = min(total_steps, tc.max_steps)
        frames, state, metrics = SeededFrames(dataset, tc.seed), run.state, {}
        pairs = run.network.assoc_head is not None and tc.pair_gap > 0
        partners = data.partner_candidates(tc.pair_gap) if pairs else None
        run.clock.start = time.monotonic()  # the budget is training time: set-up and data indexing do not count
        while state.epoch < tc.epochs and state.global_step < total_steps and not run_out(run):
            means = train_one_epoch(run, frames, total_steps, partners, logbook.add_window if logbook else None)
            metrics = {"epoch": state.epoch + 1, "step": state.global_step, **means}
            last = run_out(run) or state.epoch + 1 >= tc.epochs or state.global_step >= total_steps
            if validator is not None and ((state.epoch + 1) % tc.val_every_epochs == 0 or last):
                metrics.update(validator(run.ema.module if run.ema is not None else run.network, run.criterion,
                                         categories))  # fmt: skip
            if state.step_in_epoch >= steps_per_epoch:
                state.epoch, state.step_in_epoch = state.epoch + 1, 0
            if place.is_main:
                score = metrics.get("val_AP50", -metrics.get("val_loss", metrics.get("loss", 0.0)))
                if score > state.best_metric:
                    state.best_metric, state.best_epoch = score, int(metrics["epoch"])
                    run.save("best.pt")
                run.save("last.pt")
                logbook.add(metrics, state.global_step)
            if last:
                break
        if logbook is not None:
            logbook.close()
        distributed.barrier(place)
        return TrainResult(metrics, run.network, run.ema.module if run.ema is not None else None, state)
    finally:
        distributed.finish(started)
