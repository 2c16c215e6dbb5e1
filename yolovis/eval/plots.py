"""PNG plots of an evaluation: precision-recall curves, AP per category, confusion matrix of matched tracks."""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from yolovis.eval.ytvis_eval import VISEvaluation  # noqa: E402
from yolovis.fileio import atomic_write_bytes  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _class_mean(precision: np.ndarray) -> np.ndarray:
    """(R, K) with -1 for classes without ground truth -> (R,) mean over the classes that have some."""
    valid = precision > -1
    return np.where(valid, precision, 0).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def plot_pr_curves(ev: VISEvaluation, path: Path) -> None:
    """Class-averaged precision at each recall level (area all, 100 detections) for IoU 0.5, 0.75, 0.8 and
    averaged over 0.5:0.95: the area under each curve is the corresponding AP."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    p = ev.precision[:, :, :, 0, -1]  # (T, R, K)
    for thr in (0.5, 0.75, 0.8):
        t = int(np.argmin(np.abs(ev.iou_thresholds - thr)))
        curve = _class_mean(p[t])
        ax.plot(ev.recall_thresholds, curve, label=f"IoU {thr:.2f} (AP {curve.mean():.3f})")
    mean_curve = np.mean([_class_mean(p[t]) for t in range(len(ev.iou_thresholds))], axis=0)
    ax.plot(ev.recall_thresholds, mean_curve, "k--", label=f"IoU 0.50:0.95 (AP {mean_curve.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall (video AP)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, path)


def plot_ap_per_category(ev: VISEvaluation, path: Path) -> None:
    """AP at 0.5, 0.8 and 0.5:0.95 per category (the report's Figure 3); classes without ground truth blank."""
    per = ev.metrics["per_category"]
    names = list(per)
    keys = (("AP50", "IoU 0.5"), ("AP80", "IoU 0.8"), ("AP", "IoU 0.5:0.95"))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(names) + 2), 4.0))
    for i, (key, label) in enumerate(keys):
        values = [max(per[n][key], 0.0) for n in names]
        ax.bar(x + (i - 1) * 0.27, values, width=0.27, label=label)
    no_gt = [per[n]["AP"] < 0 for n in names]
    labels = [f"{n} (no gt)" if missing else n for n, missing in zip(names, no_gt, strict=True)]
    ax.set_xticks(x, labels, rotation=45 if len(names) <= 12 else 90, ha="right", fontsize=8)
    ax.set(ylabel="AP", ylim=(0, 1), title="AP per category")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_confusion(ev: VISEvaluation, path: Path) -> None:
    """Rows: ground-truth class; columns: class of the matching result track, or missed. Row-normalised."""
    m = ev.confusion.astype(np.float64)
    rows = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    k = len(ev.category_names)
    side = max(4.0, 0.28 * k + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(np.arange(k + 1), [*ev.category_names, "missed"], rotation=90, fontsize=7)
    ax.set_yticks(np.arange(k), ev.category_names, fontsize=7)
    ax.set(xlabel="class of the matched result track (IoU >= 0.5, classes ignored)", ylabel="ground-truth class")
    if k <= 12:
        for i in range(k):
            for j in range(k + 1):
                if m[i, j]:
                    ax.text(
                        j,
                        i,
                        int(m[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the ground-truth tracks")
    ax.set_title("Confusion of matched tracks")
    _save(fig, path)


def write_plots(ev: VISEvaluation, folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    paths = [folder / "pr_curves.png", folder / "ap_per_category.png", folder / "confusion_matrix.png"]
    plot_pr_curves(ev, paths[0])
    plot_ap_per_category(ev, paths[1])
    plot_confusion(ev, paths[2])
    return paths
