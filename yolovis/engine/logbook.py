"""What a training run writes about itself between epochs: RUN/metrics.csv (one row per epoch, every column
ever logged), TensorBoard scalars, and one summary line on the terminal."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from yolovis.fileio import atomic_write_text

SUMMARY_KEYS = ("loss", "box", "obj", "cls", "mask", "assoc", "lr", "val_loss", "val_AP", "val_AP50", "val_frame_AP50")


class Logbook:
    """Rows of metrics for RUN/metrics.csv (rewritten atomically each time) and TensorBoard (rank 0 only)."""

    def __init__(self, out_dir: Path, resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = out_dir / "metrics.csv"
        self.rows: list[dict] = read_rows(self.csv_path) if resume else []
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def add(self, metrics: dict[str, float], step: int) -> None:
        self.rows.append(metrics)
        columns = list(dict.fromkeys(k for row in self.rows for k in row))  # every key, in order of appearance
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.csv_path, text.getvalue())
        for k, v in metrics.items():
            self.writer.add_scalar(k if k.startswith("val_") else f"train/{k}", v, step)
        self.writer.flush()
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in SUMMARY_KEYS)
        print(f"epoch {metrics['epoch']}: {summary}", flush=True)

    def add_window(self, means: dict[str, float], step: int) -> None:
        """The mean losses of the last `train.log_every_steps` steps, to TensorBoard only (`steps/...`)."""
        for k, v in means.items():
            self.writer.add_scalar(f"steps/{k}", v, step)

    def close(self) -> None:
        self.writer.close()


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.csv, numbers as floats (empty cells left out)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
