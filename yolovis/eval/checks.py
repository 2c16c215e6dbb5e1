"""Check a YouTube-VIS results list against its annotation before scoring.

Evaluators of other VIS code bases either crash deep inside pycocotools or, worse, score a result whose mask
size or segmentation count is wrong as a miss. Here every such problem is listed with the result's index, its
video and its frame, and nothing is scored until the list is empty.

pycocotools does not validate a compressed RLE string: a truncated or corrupted one decodes to a mask of the
wrong number of pixels, and its area and IoU are then garbage. `rle_string_totals` parses all the strings of a
video at once with NumPy, following the LEB128-like code of pycocotools' `rleFrString`, so that each string's
run lengths can be checked to be non-negative and to cover exactly height x width pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolovis.data.annotations import VISAnnotations
from yolovis.errors import UserError

MAX_LISTED = 20  # problems spelled out in the error message; all of them are kept on the exception


@dataclass(frozen=True)
class ResultProblem:
    index: int  # position of the result (the track) in the results list
    video_id: Any
    message: str
    frame: int | None = None

    def __str__(self) -> str:
        where = f"result #{self.index} (video {self.video_id}"
        where += f", frame {self.frame})" if self.frame is not None else ")"
        return f"{where}: {self.message}"


class ResultsError(UserError):
    """The results do not fit the annotation; `problems` lists every one found."""

    def __init__(self, source: str, problems: list[ResultProblem]):
        self.problems = problems
        listed = "; ".join(str(p) for p in problems[:MAX_LISTED])
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        super().__init__(f"{source}: {len(problems)} problem(s) in the results, nothing scored: {listed}{more}")


def rle_string_totals(strings: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Parse compressed RLE count strings -> (pixels covered, ok) per string, both shape (N,) int64 / bool.

    ok is False where a string is empty, a character is outside pycocotools' alphabet, a value is unterminated
    or longer than a 32-bit count allows, or a run length is negative; such a string's total is meaningless.
    """
    n = len(strings)
    lengths = np.fromiter((len(s) for s in strings), dtype=np.int64, count=n)
    ok = lengths > 0
    totals = np.zeros(n, dtype=np.int64)
    if not ok.any():
        return totals, ok
    c = np.frombuffer(b"".join(strings), dtype=np.uint8) - np.uint8(48)  # (C,) all characters, wrapped
    string_end = np.cumsum(lengths)[ok] - 1
    if (c > 63).any():  # rare: find the strings with a foreign character
        owner = np.repeat(np.arange(n), lengths)
        ok &= np.bincount(owner[c > 63], minlength=n) == 0
        c = np.where(c > 63, 0, c)
    last = (c & 0x20) == 0  # a character without the continuation bit ends a value
    ok[lengths > 0] &= last[string_end]
    last[string_end] = True  # cut an unterminated value at its string's end (flagged above)
    ends = np.flatnonzero(last)  # (V,) last character of each value
    starts = np.concatenate(([0], ends[:-1] + 1))
    size = ends - starts + 1  # characters per value
    values_per_string = np.zeros(n, dtype=np.int64)
    values_per_string[lengths > 0] = np.diff(np.concatenate(([0], np.cumsum(last)[string_end])))
    value_owner = np.repeat(np.arange(n), values_per_string)  # (V,)
    if (size > 7).any():  # 7 characters hold any 32-bit count
        ok &= np.bincount(value_owner[size > 7], minlength=n) == 0
        size = np.minimum(size, 7)
    x = (c[starts] & 0x1F).astype(np.int64)  # (V,)
    for j in range(1, int(size.max())):
        more = np.flatnonzero(size > j)
        x[more] |= (c[starts[more] + j] & 0x1F).astype(np.int64) << (5 * j)
    x -= np.where((c[ends] & 0x10) != 0, np.left_shift(1, 5 * size), 0)  # sign bit of the last character
    # From the fourth value on, a value is stored as the difference to the one two places before
    # (rleToString): odd positions, and even positions >= 2, are two running sums within each string.
    first_value = np.cumsum(values_per_string) - values_per_string  # (N,) index of each string's first value
    pos = np.arange(len(x)) - first_value[value_owner]
    counts = x.copy()
    for chain in (pos % 2 == 1, (pos % 2 == 0) & (pos >= 2)):
        csum = np.cumsum(np.where(chain, x, 0))
        before = np.concatenate(([0], csum))[first_value[value_owner]]
        counts[chain] = (csum - before)[chain]
    owners = np.flatnonzero(values_per_string)
    firsts = first_value[owners]
    totals[owners] = np.add.reduceat(counts, firsts)
    ok[owners] &= np.minimum.reduceat(counts, firsts) >= 0
    return totals, ok


def _check_segmentation(seg: Any, height: int, width: int) -> tuple[str | None, bytes | None]:
    """One per-frame entry -> (problem or None, compressed counts to verify or None)."""
    if not isinstance(seg, dict):
        return f"segmentation of type {type(seg).__name__}, expected an RLE dict or null", None
    if "counts" not in seg or "size" not in seg:
        return f"RLE without 'counts'/'size' (keys {sorted(seg)})", None
    size = seg["size"]
    if not isinstance(size, list | tuple) or len(size) != 2:
        return f"RLE size {size!r} is not [height, width]", None
    if [int(v) for v in size] != [height, width]:
        return f"mask size {size[1]}x{size[0]} differs from the video's {width}x{height}", None
    counts = seg["counts"]
    if isinstance(counts, str):
        return None, counts.encode("ascii", errors="replace")
    if isinstance(counts, bytes):
        return None, counts
    if isinstance(counts, list):
        if not all(isinstance(v, int) and v >= 0 for v in counts) or sum(counts) != height * width:
            return f"malformed uncompressed RLE (runs must be >= 0 and cover {height}x{width} pixels)", None
        return None, None
    return f"RLE counts of type {type(counts).__name__}", None


def check_results(ann: VISAnnotations, results: Any) -> list[ResultProblem]:
    """Every problem of a results list against its annotation, in results order (an empty list: fine)."""
    if not isinstance(results, list):
        return [ResultProblem(-1, None, f"expected a list of results, got {type(results).__name__}")]
    category_ids = {c["id"] for c in ann.categories}
    videos = {v.id: v for v in ann.videos}
    problems: list[ResultProblem] = []
    strings: dict[Any, list[tuple[int, int, bytes]]] = {}  # video -> (result index, frame, counts)
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            problems.append(ResultProblem(i, None, f"a result is a {type(r).__name__}, not an object"))
            continue
        missing = {"video_id", "category_id", "score", "segmentations"} - set(r)
        vid = r.get("video_id")
        if missing:
            problems.append(ResultProblem(i, vid, f"missing key(s) {sorted(missing)}"))
            continue
        video = videos.get(vid) if isinstance(vid, int) else None
        if video is None:
            problems.append(ResultProblem(i, vid, "video_id is not in the annotation file"))
            continue
        if r["category_id"] not in category_ids or isinstance(r["category_id"], bool):
            problems.append(ResultProblem(i, vid, f"unknown category_id {r['category_id']!r}"))
        score = r["score"]
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            bad = score if isinstance(score, int | float) and not math.isnan(score) else repr(score)
            problems.append(ResultProblem(i, vid, f"score {bad} is not a number in [0, 1]"))
        segs = r["segmentations"]
        if not isinstance(segs, list):
            problems.append(ResultProblem(i, vid, "'segmentations' is not a list"))
            continue
        if len(segs) != video.length:
            problems.append(ResultProblem(i, vid, f"{len(segs)} segmentations for a video of {video.length} frames"))
            continue
        for f, seg in enumerate(segs):
            if seg is None:
                continue
            problem, counts = _check_segmentation(seg, video.height, video.width)
            if problem:
                problems.append(ResultProblem(i, vid, problem, f))
            elif counts is not None:
                strings.setdefault(vid, []).append((i, f, counts))
    for vid, entries in strings.items():
        video = videos[vid]
        totals, ok = rle_string_totals([s for _, _, s in entries])
        for (i, f, _), total, good in zip(entries, totals, ok, strict=True):
            if not good or total != video.height * video.width:
                covered = f"covers {total} pixels" if good else "does not parse"
                problems.append(ResultProblem(i, vid, f"malformed RLE: {covered}, not {video.height}x{video.width}", f))
    problems.sort(key=lambda p: (p.index, -1 if p.frame is None else p.frame))
    return problems


def ensure_valid_results(ann: VISAnnotations, results: Any, source: str) -> None:
    """Raise ResultsError listing every problem; return quietly when the results can be scored."""
    problems = check_results(ann, results)
    if problems:
        raise ResultsError(source, problems)
