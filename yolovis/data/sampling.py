"""The order in which training sees its frames: a permutation per epoch, split across processes, and every
sample's augmentation seeded by (seed, epoch, index).

So a run resumed from its last checkpoint sees exactly the batches of a run that never stopped, whichever
worker loads a sample; with `torchrun`, each process takes every world_size-th batch slot of the same
permutation.
"""

from __future__ import annotations

import bisect
import random

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from yolovis.data.sample import FrameSample


class SeededFrames(Dataset):
    """Indexes by (epoch, index) and seeds every random source from (seed, epoch, index) before loading, so the
    augmentation of a sample does not depend on which worker loads it or whether the run was resumed."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, ...]) -> FrameSample:
        """key: (epoch, index), or (epoch, index, view, pair) for a frame of a training pair: view 1 is the
        anchor's partner, augmented as its own draw, and `pair` (the anchor's index) seeds the HSV gains that
        both frames share: two frames a few apart in a video share their lighting, and an association head
        that saw them lit differently would learn to ignore colour."""
        epoch, index = key[0], key[1]
        view = key[2] if len(key) > 2 else 0
        epoch_seed = (self.seed * 1_000_003 + epoch) * 10_000_019
        sample_seed = (epoch_seed + index) * (1 + view)
        torch.manual_seed(sample_seed)
        np.random.seed(sample_seed % 2**32)
        random.seed(sample_seed)
        if len(key) < 4:
            return self.dataset[index]
        dataset = self.dataset  # the training data's YTVISDataset parts, whose `sample` takes the colour seed
        if isinstance(dataset, ConcatDataset):
            part = bisect.bisect_right(dataset.cumulative_sizes, index)
            index -= dataset.cumulative_sizes[part - 1] if part else 0
            dataset = dataset.datasets[part]
        return dataset.sample(index, colour_seed=(epoch_seed + key[3]) * 3 + 1)


def epoch_batches(
    num_samples: int,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
    partners: list[list[int]] | None = None,
) -> list:
    """The batches of (epoch, index) keys of this process for one epoch; the last incomplete round is dropped.

    With `partners` (per sample, the samples that may join it: other frames of its video), a batch is
    batch_size / 2 samples of the permutation, each followed by one of its partners drawn at random (itself,
    augmented anew, where it has none: the key's third element tells the two views apart, its fourth names the
    pair), so that the association loss finds every instance twice. An epoch still has num_samples /
    batch_size batches.
    """
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    order = torch.randperm(num_samples, generator=g).tolist()
    per_round = batch_size * world
    rounds = num_samples // per_round
    batches = [
        order[r * per_round + rank * batch_size : r * per_round + (rank + 1) * batch_size] for r in range(rounds)
    ]
    if partners is None:
        return [[(epoch, i) for i in batch] for batch in batches]
    rng = np.random.default_rng([seed, epoch, rank, 7])
    paired = []
    for batch in batches:
        keys = []
        for i in batch[: max(batch_size // 2, 1)]:
            choices = partners[i]
            partner = int(choices[rng.integers(len(choices))]) if choices else i
            keys += [(epoch, i, 0, i), (epoch, partner, 1, i)]
        paired.append(keys[:batch_size])
    return paired
