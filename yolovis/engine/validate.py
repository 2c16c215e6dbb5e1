"""Validation between epochs, on held-out videos: the validation loss, and the official video AP of tracked
results (detector + the configured tracker + YouTube-VIS evaluation), what users are judged by.

Under `torchrun` every process validates its share (every world_size-th frame for the loss, every
world_size-th video for the AP) and rank 0 gathers and scores: no process waits idle in a collective while
another validates, whatever the length of the held-out set.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Subset

from yolovis.config import Config
from yolovis.data.annotations import parse_vis_annotations, read_json
from yolovis.data.sample import collate_frames
from yolovis.data.ytvis import YTVISDataset
from yolovis.engine import distributed
from yolovis.engine.distributed import World
from yolovis.eval.ytvis_eval import OFFICIAL_KEYS
from yolovis.loss.criterion import Criterion
from yolovis.model.detector import YoloV4Plus1

LOSS_KEYS = ("loss", "box", "obj", "cls", "mask")


class Validator:
    def __init__(
        self,
        cfg: Config,
        val_ann: str | os.PathLike,
        val_images: str | os.PathLike | None,
        device: torch.device,
        place: World | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.place = place or World()
        self.gt = read_json(val_ann)  # parsed once: the evaluation scores against the raw dict
        # No augmentation: the frames as the detector will see them.
        annotations = parse_vis_annotations(self.gt, str(val_ann))
        self.dataset = YTVISDataset(annotations, val_images, img_size=tuple(cfg.img_size), augment=None)

    def video_metrics(self, model: YoloV4Plus1, categories: list[dict]) -> dict[str, float]:
        """The official video AP of tracked results on the held-out videos (on rank 0; {} elsewhere)."""
        from yolovis.engine.inference import Detector
        from yolovis.engine.predict import predict_videos
        from yolovis.eval import evaluate_results

        detector = Detector(model, self.cfg, categories, self.device)
        videos = self.dataset.annotations.videos
        mine = [v.id for k, v in enumerate(videos) if k % self.place.size == self.place.rank]
        results = predict_videos(detector, self.dataset.annotations, self.dataset.images_dir, self.cfg.track,
                                 video_ids=mine)  # fmt: skip
        results = [r for part in distributed.gather_objects(results, self.place) for r in part]
        if not self.place.is_main:
            return {}
        metrics = evaluate_results(self.gt, results, tracking=False)
        return {f"val_{k}": float(metrics[k]) for k in (*OFFICIAL_KEYS, "AP80")}

    @torch.no_grad()
    def loss(self, model: YoloV4Plus1, criterion: Criterion) -> dict[str, float]:
        """The mean losses over the held-out frames (on rank 0; {} elsewhere)."""
        share = Subset(self.dataset, range(self.place.rank, len(self.dataset), self.place.size))
        loader = DataLoader(share, batch_size=self.cfg.train.batch_size, collate_fn=collate_frames)
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        batches = 0
        for images, targets in loader:
            images = images.to(self.device).float().div_(255)
            targets = [t.to(self.device) for t in targets]
            _, log = criterion(model(images, targets), targets)
            for k in LOSS_KEYS:
                sums[k] += log[k]
            batches += 1
        parts = distributed.gather_objects((sums, batches), self.place)
        total = sum(b for _, b in parts)
        if not self.place.is_main:
            return {}
        return {f"val_{k}": sum(s[k] for s, _ in parts) / max(total, 1) for k in LOSS_KEYS}

    def __call__(self, model: YoloV4Plus1, criterion: Criterion, categories: list[dict]) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            metrics = self.loss(model, criterion)
            metrics.update(self.video_metrics(model, categories))
        finally:
            model.train(was_training)
        return metrics
