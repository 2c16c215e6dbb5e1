"""MOT-challenge rows of tracked detections (`tracks.txt`), written as they come and read back."""

from __future__ import annotations

import os
from pathlib import Path

from yolovis.errors import UserError
from yolovis.model.detections import Detections


class MotWriter:
    """MOT-challenge style rows `frame (1-based), track id, x, y, w, h, score, category id`, one per tracked
    detection, streamed into a temporary file (memory stays flat) that `close()` renames into place."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed by close() or abort())
        self.rows = 0

    def write(self, frame_index: int, det: Detections, track_ids: list[int], category_ids: list[int]) -> None:
        for k, track_id in enumerate(track_ids):
            if track_id < 0:
                continue
            x0, y0, x1, y1 = det.boxes[k].tolist()
            score, category = float(det.scores[k]), category_ids[int(det.labels[k])]
            self.file.write(f"{frame_index + 1},{track_id},{x0:.1f},{y0:.1f},{x1 - x0:.1f},{y1 - y0:.1f},"
                            f"{score:.4f},{category}\n")  # fmt: skip
            self.rows += 1

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def read_mot(path: str | os.PathLike) -> list[tuple[int, int, float, float, float, float, float, int]]:
    """The rows `MotWriter` wrote: (frame (1-based), id, x, y, w, h, score, category id)."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split(",")
        if len(fields) != 8:
            raise UserError(f"{path}: line {n} has {len(fields)} fields, expected 8")
        f, i, x, y, w, h, s, c = fields
        rows.append((int(f), int(i), float(x), float(y), float(w), float(h), float(s), int(c)))
    return rows
