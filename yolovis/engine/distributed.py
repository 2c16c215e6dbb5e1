"""Several processes, one job: `torchrun` sets WORLD_SIZE, RANK and LOCAL_RANK; this is the one place that reads
them. Training (DDP: NCCL on GPUs, gloo on CPUs) and `yolovis predict` (videos split across processes) use it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place in the job (a single process without torchrun)."""
    env = os.environ
    return World(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))


def device_for(requested: str | None, place: World) -> torch.device:
    """The device of this process: `requested`, or cuda:LOCAL_RANK where CUDA exists, else the CPU; a bare
    "cuda" under torchrun means this process's own GPU."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        # torch.cuda.set_device refuses a device without an index, and "cuda" alone has none.
        requested = f"cuda:{place.local_rank if place.distributed else torch.cuda.current_device()}"
    device = torch.device(requested)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def start(place: World, device: torch.device) -> bool:
    """Join the process group when there is more than one process; True if this call started it (the caller
    then ends it with `finish`)."""
    if not place.distributed or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def finish(started: bool) -> None:
    if started and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(module: nn.Module, place: World) -> None:
    """All-reduce the gradients of a module DDP does not wrap (the criterion's few loss-balancing weights)."""
    if not place.distributed:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= place.size


def any_rank(flag: bool, place: World, device: torch.device) -> bool:
    """True on every process if `flag` is true on any: one collective, so that all ranks take the same branch
    (e.g. stopping when one rank's clock says the time is up)."""
    if not place.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: object, place: World) -> list:
    """Every process's `obj`, in rank order (a list of one without torchrun)."""
    if not place.distributed:
        return [obj]
    gathered: list = [None] * place.size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(place: World) -> None:
    if place.distributed:
        dist.barrier()
