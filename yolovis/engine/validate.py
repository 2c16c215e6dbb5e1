"""Validation between epochs, on held-out videos: the validation loss, and the official video AP of tracked
results (detector + greedy tracker + YouTube-VIS evaluation) when the evaluation modules are available."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from yolovis.config import Config
from yolovis.data.annotations import parse_vis_annotations, read_json
from yolovis.data.sample import collate_frames
from yolovis.data.ytvis import YTVISDataset
from yolovis.eval.ytvis_eval import OFFICIAL_KEYS
from yolovis.loss.criterion import Criterion
from yolovis.model.detector import YoloV4Plus1


class Validator:
    def __init__(
        self, cfg: Config, val_ann: str | os.PathLike, val_images: str | os.PathLike | None, device: torch.device
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.gt = read_json(val_ann)  # parsed once: the evaluation scores against the raw dict
        # No augmentation: the frames as the detector will see them.
        annotations = parse_vis_annotations(self.gt, str(val_ann))
        self.dataset = YTVISDataset(annotations, val_images, img_size=tuple(cfg.img_size), augment=None)

    def video_metrics(self, model: YoloV4Plus1, categories: list[dict]) -> dict[str, float]:
        """The official video AP of tracked results on the held-out videos (what users are judged by)."""
        from yolovis.engine.inference import Detector
        from yolovis.engine.predict import predict_videos
        from yolovis.eval import evaluate_results

        detector = Detector(model, self.cfg, categories, self.device)
        results = predict_videos(detector, self.dataset.annotations, self.dataset.images_dir, self.cfg.track)
        metrics = evaluate_results(self.gt, results, tracking=False)
        return {f"val_{k}": float(metrics[k]) for k in (*OFFICIAL_KEYS, "AP80")}

    @torch.no_grad()
    def loss(self, model: YoloV4Plus1, criterion: Criterion) -> dict[str, float]:
        loader = DataLoader(self.dataset, batch_size=self.cfg.train.batch_size, collate_fn=collate_frames)
        sums: dict[str, float] = {}
        batches = 0
        for images, targets in loader:
            images = images.to(self.device).float().div_(255)
            targets = [t.to(self.device) for t in targets]
            _, log = criterion(model(images, targets), targets)
            for k in ("loss", "box", "obj", "cls", "mask"):
                sums[k] = sums.get(k, 0.0) + log[k]
            batches += 1
        return {f"val_{k}": v / max(batches, 1) for k, v in sums.items()}

    def __call__(self, model: YoloV4Plus1, criterion: Criterion, categories: list[dict]) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            metrics = self.loss(model, criterion)
            metrics.update(self.video_metrics(model, categories))
        finally:
            model.train(was_training)
        return metrics
