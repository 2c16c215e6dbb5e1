"""What the runners of exported networks share: the graph's flat outputs, named `<field>.<level>` after the
`DenseOutput` field they come from, turned back into a `DenseOutput` for `YoloV4Plus1.forward_instances`.

Naming the outputs after the fields (rather than listing them here) keeps the export in step with the model: a
list of per-level tensors added to `DenseOutput` is exported, and read back, without a change to this package.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from yolovis.model.detector import DenseOutput

# Fields of DenseOutput that are not network outputs: the input size is the export's, the features are for
# figures only (the backbone's and neck's maps would multiply what the graph copies out per frame).
NOT_EXPORTED = ("input_size", "features")


def flatten_dense(dense: DenseOutput) -> tuple[list[str], list[torch.Tensor]]:
    """(names, tensors) of the per-level outputs: 'predictions.0', ..., 'embeddings.3', and any other list field."""
    names, tensors = [], []
    for f in dataclasses.fields(dense):
        if f.name in NOT_EXPORTED:
            continue
        for level, tensor in enumerate(getattr(dense, f.name)):
            names.append(f"{f.name}.{level}")
            tensors.append(tensor)
    return names, tensors


def unflatten_dense(names: list[str], arrays: list[np.ndarray], input_size: tuple[int, int]) -> DenseOutput:
    """The inverse of `flatten_dense` on a runtime's outputs (numpy arrays, shared with torch, not copied)."""
    grouped: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for name, array in zip(names, arrays, strict=True):
        field, level = name.rsplit(".", 1)
        grouped.setdefault(field, []).append((int(level), torch.from_numpy(array)))
    lists = {field: [t for _, t in sorted(levels, key=lambda item: item[0])] for field, levels in grouped.items()}
    return DenseOutput(**lists, input_size=input_size)


def check_batch(images: torch.Tensor, input_size: tuple[int, int], where: str) -> np.ndarray:
    """The (1, 3, H, W) float32 array an exported network takes; its size is fixed at export."""
    if images.shape[0] != 1 or tuple(images.shape[1:]) != (3, *input_size):
        h, w = input_size
        raise ValueError(f"{where}: takes one (1, 3, {h}, {w}) image at a time (fixed at export), "
                         f"got {tuple(images.shape)}")  # fmt: skip
    return np.ascontiguousarray(images.detach().float().cpu().numpy())
