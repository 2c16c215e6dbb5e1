"""The detections of one frame: the contract between postprocess, tracker and writers."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Detections:
    """Detections of one frame, in the pixel coordinates of the original frame.

    boxes:  (N, 4) float32, absolute xyxy
    scores: (N,)   float32, objectness x class probability, in [0, 1]
    labels: (N,)   int64, contiguous training labels 0..K-1
    masks:  (N, H, W) bool, pasted at the original frame size H x W
    embeddings: (N, D) float32 L2-normalised association embeddings, or None when the model has no such head
    mask_rects: (N, 4) int64 xyxy pixel rectangles outside which each mask is empty, or None (anywhere). The
            postprocess sets them (a mask is pasted into its box only), so that encoding and drawing read the
            rectangle and not the frame: see `Postprocess`
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    embeddings: torch.Tensor | None = None
    mask_rects: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.boxes.shape[0]
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,) or self.labels.shape != (n,):
            raise ValueError(
                f"Detections: inconsistent shapes boxes {tuple(self.boxes.shape)}, "
                f"scores {tuple(self.scores.shape)}, labels {tuple(self.labels.shape)}"
            )
        if self.masks.dim() != 3 or self.masks.shape[0] != n:
            raise ValueError(f"Detections: masks must be (N, H, W) with N={n}, got {tuple(self.masks.shape)}")
        if self.embeddings is not None and (self.embeddings.dim() != 2 or self.embeddings.shape[0] != n):
            raise ValueError(f"Detections: embeddings must be (N, D) with N={n}, got {tuple(self.embeddings.shape)}")
        if self.mask_rects is not None and self.mask_rects.shape != (n, 4):
            raise ValueError(f"Detections: mask_rects must be (N, 4) with N={n}, got {tuple(self.mask_rects.shape)}")

    @classmethod
    def empty(cls, height: int, width: int, device: torch.device | str = "cpu") -> Detections:
        return cls(
            boxes=torch.zeros((0, 4), dtype=torch.float32, device=device),
            scores=torch.zeros((0,), dtype=torch.float32, device=device),
            labels=torch.zeros((0,), dtype=torch.int64, device=device),
            masks=torch.zeros((0, height, width), dtype=torch.bool, device=device),
        )

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the frame the masks are pasted on."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor) -> Detections:
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        emb = self.embeddings[index] if self.embeddings is not None else None
        rects = self.mask_rects[index] if self.mask_rects is not None else None
        return Detections(self.boxes[index], self.scores[index], self.labels[index], self.masks[index], emb, rects)

    def to(self, device: torch.device | str) -> Detections:
        emb = self.embeddings.to(device) if self.embeddings is not None else None
        rects = self.mask_rects.to(device) if self.mask_rects is not None else None
        return Detections(
            self.boxes.to(device), self.scores.to(device), self.labels.to(device), self.masks.to(device), emb, rects
        )

    @staticmethod
    def cat(items: list[Detections]) -> Detections:
        if not items:
            raise ValueError("Detections.cat needs at least one item (it takes the frame size from it)")
        return Detections(
            torch.cat([d.boxes for d in items]),
            torch.cat([d.scores for d in items]),
            torch.cat([d.labels for d in items]),
            torch.cat([d.masks for d in items]),
            torch.cat([d.embeddings for d in items]) if all(d.embeddings is not None for d in items) else None,
            torch.cat([d.mask_rects for d in items]) if all(d.mask_rects is not None for d in items) else None,
        )
