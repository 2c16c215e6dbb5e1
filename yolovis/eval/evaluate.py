"""`yolovis evaluate`: read an annotation file and a results file, score them, write metrics and plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yolovis.data.annotations import read_json
from yolovis.errors import UserError
from yolovis.eval.ytvis_eval import evaluate_vis
from yolovis.fileio import atomic_write_json


def evaluate_files(
    ann_path: str | os.PathLike,
    results_path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    plots: str | os.PathLike | None = None,
    **options: Any,
) -> dict:
    """Score RESULTS (.json or .json.gz) against ANN; write `out` (metrics.json, atomically) and the PNGs of
    `plots` when given. Returns the metrics dict (keys AP ... ARl, then AP80, per_category, tracking, ...)."""
    for path, what in ((ann_path, "annotation"), (results_path, "results")):
        if not Path(path).is_file():
            raise UserError(f"{path}: {what} file not found")
    evaluation = evaluate_vis(
        read_json(ann_path),
        read_json(results_path),
        gt_source=str(ann_path),
        results_source=str(results_path),
        **options,
    )
    if out is not None:
        atomic_write_json(out, evaluation.metrics, indent=2)
    if plots is not None:
        from yolovis.eval.plots import write_plots  # matplotlib only when plots are asked for

        write_plots(evaluation, plots)
    return evaluation.metrics
