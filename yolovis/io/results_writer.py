"""`results.json` of one video, streamed: a track that can no longer change leaves memory for a spool file on
disk as soon as the tracker lets it go; `close(length)` writes the YouTube-VIS results in track-id order,
byte for byte what `json.dumps(tracker.results(...))` gives, one entry at a time, through a temporary file.

A video's length is known only at its end (a live source has no announced length), and every entry holds
`length` segmentations, so no entry can be written before the end; what is kept meanwhile is one spool offset
per track.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from yolovis.track.results import ResultRule, Track, category_of, rle_to_json


class ResultsWriter:
    def __init__(
        self, path: str | os.PathLike, video_id: int, label_to_category: list[int] | None = None,
        rule: ResultRule | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.video_id = video_id
        self.label_to_category = label_to_category
        self.rule = rule or ResultRule()  # every track kept, ranked by its mean score
        self.spool_path = self.path.with_name(f".{self.path.name}.spool")
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.spool = open(self.spool_path, "w+", encoding="ascii")  # noqa: SIM115 (closed by close() or abort())
        self.offsets: dict[int, int] = {}  # track id -> where its line starts in the spool

    def add(self, tracks: list[Track]) -> None:
        """Tracks that will not change any more; those the rule drops are dropped here."""
        for track in tracks:
            if not self.rule.keeps(track):
                continue
            frames = sorted(track.frames.items())
            size = [int(s) for s in frames[0][1].rle["size"]]
            line = {"category_id": category_of(track, self.label_to_category),
                    "score": float(self.rule.score(track)), "size": size,
                    "frames": [[t, rle_to_json(a.rle)["counts"]] for t, a in frames]}  # fmt: skip
            self.offsets[track.track_id] = self.spool.tell()
            self.spool.write(json.dumps(line) + "\n")

    def close(self, length: int, remaining: list[Track]) -> int:
        """Add the tracks still open, write DIR/results.json for a video of `length` frames; returns the number
        of results."""
        self.add(remaining)
        self.spool.flush()
        with open(self.tmp, "w", encoding="ascii") as out:
            out.write("[")
            for k, track_id in enumerate(sorted(self.offsets)):
                self.spool.seek(self.offsets[track_id])
                line = json.loads(self.spool.readline())
                segmentations: list[dict | None] = [None] * length
                if line["frames"][-1][0] >= length:
                    raise ValueError(f"video {self.video_id}: track {track_id} ends after frame {length - 1}")
                for t, counts in line["frames"]:
                    segmentations[t] = {"size": line["size"], "counts": counts}
                entry = {"video_id": int(self.video_id), "category_id": line["category_id"], "score": line["score"],
                         "segmentations": segmentations}  # fmt: skip
                out.write((", " if k else "") + json.dumps(entry))
            out.write("]")
            out.flush()
            os.fsync(out.fileno())
        os.replace(self.tmp, self.path)
        self._drop_spool()
        return len(self.offsets)

    def abort(self) -> None:
        self._drop_spool()
        self.tmp.unlink(missing_ok=True)

    def _drop_spool(self) -> None:
        self.spool.close()
        self.spool_path.unlink(missing_ok=True)
