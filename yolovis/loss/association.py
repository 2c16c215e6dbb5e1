"""The association head's loss: RoIs of one instance in two different images of the batch should be closer to
each other than to any other RoI of the batch (multi-positive InfoNCE, as QDTrack's and IDOL's contrastive
losses; other instances of the batch, from its own video or others, are the negatives).

The batch sampler (`data/sampling.py`) makes this possible: it pairs every frame with another frame of the same
video, so that most instances appear twice. RoIs that match no ground truth (IoU < 0.5) take no part.
"""

from __future__ import annotations

import torch

TEMPERATURE = 0.1


def association_loss(
    embeddings: torch.Tensor, identities: torch.Tensor, images: torch.Tensor, temperature: float = TEMPERATURE
) -> torch.Tensor:
    """embeddings (R, D) unit length; identities (R,) instance ids (-1: matched no instance); images (R,) the
    batch index of each RoI's image. Two RoIs of one instance in the same image are neither positives nor
    negatives of each other (they are one view). Returns the mean loss over RoIs that have a positive (a zero
    that keeps the graph when none has)."""
    valid = identities >= 0
    e, ids, img = embeddings[valid], identities[valid], images[valid]
    same_id = ids[:, None] == ids[None, :]
    same_image = img[:, None] == img[None, :]
    positive = same_id & ~same_image
    anchors = positive.any(1)
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    logits = (e @ e.T / temperature).masked_fill(same_id & same_image, float("-inf"))  # (R', R')
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    per_roi = -(log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1))
    return per_roi[anchors].mean()
