"""The order in which training sees its frames: a permutation per epoch, split across processes, and every
sample's augmentation seeded by (seed, epoch, index).

So a run resumed from its last checkpoint sees exactly the batches of a run that never stopped, whichever
worker loads a sample; with `torchrun`, each process takes every world_size-th batch slot of the same
permutation.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

from yolovis.data.sample import FrameSample


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
