"""Streamed results (tracks popped as they end, spooled, written at the end) are byte for byte the results the
tracker gives when it keeps every track in memory."""

import json

import numpy as np
import pytest
import torch

from yolovis.config import TrackerConfig
from yolovis.io.results_writer import ResultsWriter
from yolovis.model.detections import Detections
from yolovis.track.build import build_tracker
from yolovis.track.results import ResultRule


def _frames(count: int, height: int = 48, width: int = 64, seed: int = 0) -> list[Detections]:
    """Objects that move, leave and come back, with scores around the thresholds: tracks start, end and get lost."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(count):
        boxes, masks = [], []
        for k in range(int(rng.integers(0, 5))):
            x0 = int((5 * t + 17 * k) % (width - 12))
            y0 = int((3 * k + t) % (height - 10))
            mask = torch.zeros(height, width, dtype=torch.bool)
            mask[y0 : y0 + 10, x0 : x0 + 12] = True
            boxes.append([x0, y0, x0 + 12, y0 + 10])
            masks.append(mask)
        n = len(boxes)
        stacked = torch.stack(masks) if masks else torch.zeros(0, height, width, dtype=torch.bool)
        scores = torch.from_numpy(rng.uniform(0.2, 1.0, n).astype(np.float32))
        boxes = torch.tensor(boxes, dtype=torch.float32).reshape(n, 4)
        frames.append(Detections(boxes, scores, torch.from_numpy(rng.integers(0, 3, n)), stacked))
    return frames


@pytest.mark.parametrize("method", ["greedy", "memory"])
def test_streamed_results_equal_the_trackers_own(tmp_path, method):
    cfg = TrackerConfig(method=method, max_age=3, min_length=2, detection_threshold=0.3)
    frames = _frames(60)
    whole = build_tracker(cfg)
    for t, det in enumerate(frames):
        whole.update(t, det)
    expected = json.dumps(whole.results(5, 62, [10, 20, 30]))

    streamed = build_tracker(cfg)
    writer = ResultsWriter(tmp_path / "results.json", 5, [10, 20, 30], ResultRule.of(cfg))
    popped = 0
    for t, det in enumerate(frames):
        streamed.update(t, det)
        final = streamed.pop_final()
        popped += len(final)
        writer.add(final)
        assert len(streamed.tracks) <= len(streamed.live)  # memory holds the matchable tracks only
    count = writer.close(62, streamed.pop_final() + streamed.tracks)
    assert popped > 5 and count == len(json.loads(expected)) > 3
    assert (tmp_path / "results.json").read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # spool and temporary file gone


def test_aborted_writer_leaves_nothing(tmp_path):
    writer = ResultsWriter(tmp_path / "results.json", 1)
    tracker = build_tracker(TrackerConfig(max_age=1, detection_threshold=0.0))
    for t, det in enumerate(_frames(10)):
        tracker.update(t, det)
        writer.add(tracker.pop_final())
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_empty_video_gives_an_empty_list(tmp_path):
    writer = ResultsWriter(tmp_path / "results.json", 1)
    assert writer.close(3, []) == 0
    assert json.loads((tmp_path / "results.json").read_text()) == []
