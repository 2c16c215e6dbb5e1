"""`yolovis demo`: the whole pipeline on a fresh machine, with nothing but the package installed.

synthetic train + held-out videos -> train for a bounded time -> tracked results on the held-out videos ->
official metrics and plots -> one held-out video tracked to an overlay mp4 -> a figure of the pyramid's
feature maps for one frame (the report's Figure 2) -> a short summary.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from yolovis.config import Config, load_config, save_config
from yolovis.data.synth import SynthConfig, generate

TRAIN_VIDEOS, HELD_OUT_VIDEOS, FRAMES, CLASSES = 40, 8, 20, 3
HELD_OUT_SEED = 1000  # another seed: held-out videos share no background path, object or motion with training


def demo_config(device: torch.device, minutes: float) -> Config:
    # On the CPU the tiny scale at 320x256 (the synthetic frames are 320x240); on a GPU a bigger scale and input
    # train in the same time.
    scale, size = ("small", [416, 544]) if device.type == "cuda" else ("tiny", [256, 320])
    cfg = load_config(Config, None, [f"model.scale={scale}", f"img_size={size}"])
    cfg.train.time_limit_minutes = minutes
    cfg.train.epochs = 1000  # the time budget ends the run; the schedule follows the clock
    cfg.train.val_every_epochs = 10**6  # validate once, at the end
    return cfg


def feature_map_figure(detector, image: np.ndarray, path: Path) -> None:
    """Mean absolute activation of the backbone's b2..b5 (top row) and the neck's n2..n5 (bottom row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = detector.model
    x, _ = detector.preprocess([image])  # (1, 3, H, W), letterboxed as the detector sees it
    letterboxed = (x[0].float().permute(1, 2, 0) * 255).round().byte().cpu().numpy()
    with torch.no_grad():
        features = model.forward_dense(x).features  # the forward's own maps: backbone b2..b5, neck n2..n5
    rows = [("backbone", features["backbone"]), ("neck", features["neck"])]
    fig, axes = plt.subplots(2, 5, figsize=(15, 5.4))
    for r, (name, maps) in enumerate(rows):
        axes[r, 0].imshow(letterboxed)
        axes[r, 0].set_title("input")
        for c, (fmap, stride) in enumerate(zip(maps, model.strides, strict=True)):
            axes[r, c + 1].imshow(fmap[0].abs().mean(0).cpu().numpy(), cmap="magma")
            axes[r, c + 1].set_title(f"{name} {'bn'[r]}{c + 2}: stride {stride}, {fmap.shape[1]} ch")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_demo(out_dir: str | os.PathLike, minutes: float = 8.0, device: str | None = None) -> dict:
    from yolovis.data.anchors_kmeans import fit_anchors
    from yolovis.data.annotations import load_vis_annotations
    from yolovis.engine.diagnose import diagnose, format_diagnosis
    from yolovis.engine.inference import Detector
    from yolovis.engine.track import TrackOptions, track_video
    from yolovis.engine.train import train
    from yolovis.eval.plots import write_plots
    from yolovis.eval.ytvis_eval import format_table
    from yolovis.fileio import atomic_write_json

    start = time.monotonic()
    out = Path(out_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    data = out / "data"
    print(f"[1/5] synthetic data: {TRAIN_VIDEOS} training and {HELD_OUT_VIDEOS} held-out videos -> {data}")
    generate(data / "train", SynthConfig(videos=TRAIN_VIDEOS, frames=FRAMES, classes=CLASSES, seed=0))
    generate(data / "held_out", SynthConfig(videos=HELD_OUT_VIDEOS, frames=FRAMES, classes=CLASSES,
                                            seed=HELD_OUT_SEED))  # fmt: skip
    held_out = data / "held_out" / "instances.json"

    cfg = demo_config(dev, minutes)
    # Anchors from IoU k-means on the training boxes, as the report does (`yolovis anchors`).
    fit = fit_anchors(load_vis_annotations(data / "train" / "instances.json"), len(cfg.model.anchors[0]),
                      max(cfg.img_size))  # fmt: skip
    cfg.model.anchors, cfg.model.anchor_img_size = fit.per_level(), max(cfg.img_size)
    print(f"      anchors: IoU k-means, mean best IoU {fit.mean_best_iou:.3f} over {fit.num_boxes} boxes")
    size = f"{cfg.img_size[1]}x{cfg.img_size[0]}"
    print(f"[2/5] training YoloV4+1 `{cfg.model.scale}` at {size} for {minutes:g} min on {dev}")
    run = out / "run"
    result = train(cfg, data / "train" / "instances.json", run, device=str(dev))  # scored once, below

    print("[3/5] tracking the held-out videos and scoring them: per frame, tracked, and with perfect association")
    detector = Detector.from_checkpoint(run / "last.pt", device=str(dev))
    diagnosis, _ = diagnose(detector, held_out)  # one pass of the network, three scores (`yolovis diagnose`)
    evaluation = diagnosis.evaluation
    atomic_write_json(out / "results.json", diagnosis.results["tracker"])
    atomic_write_json(out / "metrics.json", evaluation.metrics, indent=2)
    atomic_write_json(out / "diagnosis.json", diagnosis.summary, indent=2)
    plots = out / "plots"
    write_plots(evaluation, plots)

    print("[4/5] one held-out video -> overlay.mp4, and the pyramid's feature maps")
    video_dir = data / "held_out" / "JPEGImages" / "video_0000"
    track_video(detector, video_dir, out / "track", TrackOptions(device=str(dev)))  # the detector loaded above
    shutil.copyfile(out / "track" / "overlay.mp4", out / "overlay.mp4")
    from yolovis.io.video import open_source

    _, frame = next(iter(open_source(video_dir)))
    feature_map_figure(detector, frame, plots / "feature_maps.png")
    save_config(detector.config, out / "config.yaml")

    m, d = evaluation.metrics, diagnosis.summary
    summary = {
        "minutes_total": (time.monotonic() - start) / 60,
        "train_steps": result.state.global_step,
        "AP": m["AP"],
        "AP50": m["AP50"],
        "AP75": m["AP75"],
        "HOTA": (m.get("tracking") or {}).get("HOTA"),
        "frame_AP50": d["frame"]["AP50"],
        "oracle_AP50": d["oracle"]["AP50"],
    }
    print("[5/5] done")
    print(format_table(m))
    print(format_diagnosis(d))
    print(f"held-out video mask AP50 {m['AP50']:.3f}, AP {m['AP']:.3f} (tracker {cfg.track.method!r}; per frame "
          f"{d['frame']['AP50']:.3f}, perfect association {d['oracle']['AP50']:.3f}); "
          f"{result.state.global_step} training steps; {summary['minutes_total']:.1f} min in all")  # fmt: skip
    print(f"outputs in {out}: metrics.json, diagnosis.json, results.json, overlay.mp4, plots/, run/ (checkpoints)")
    return summary
