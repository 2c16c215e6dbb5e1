"""Ground truth for model and loss tests: boxes (and optional masks) as the `FrameSample`s the forward and the
criterion take."""

from __future__ import annotations

from dataclasses import replace

import torch

from yolovis.data.letterbox import LetterboxInfo
from yolovis.data.sample import FrameSample


def frame_targets(boxes: torch.Tensor, labels: torch.Tensor | None = None, masks: torch.Tensor | None = None,
                  size: tuple[int, int] = (64, 64)) -> FrameSample:  # fmt: skip
    n = len(boxes)
    h, w = size if masks is None else masks.shape[-2:]
    return FrameSample(
        image=None,
        boxes=boxes.float(),
        labels=labels if labels is not None else torch.zeros(n, dtype=torch.long),
        masks=masks if masks is not None else torch.zeros((n, h, w), dtype=torch.uint8),
        instance_ids=torch.arange(n),
        video_id=1,
        frame_index=0,
        letterbox=LetterboxInfo.fit(h, w, h, w),
    )


def without_proposals(model):
    """The model, its training RoIs limited to the given ground-truth boxes (no predicted box passes)."""
    model.train_selection = replace(model.train_selection, score_threshold=2.0)
    return model
