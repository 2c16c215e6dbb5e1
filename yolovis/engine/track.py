"""`yolovis track`: one video (file, folder of frames, glob, URL or camera) -> DIR/results.json, DIR/tracks.txt
(MOT rows) and DIR/overlay.mp4, streamed, with the config that was used saved beside them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from yolovis.engine.inference import Detector
from yolovis.engine.stream import Profile, iter_tracked
from yolovis.errors import UserError
from yolovis.track.build import build_tracker
from yolovis.track.results import ResultRule


@dataclass
class TrackOptions:
    stride: int = 1
    score_threshold: float | None = None  # None: the checkpoint's postprocess setting
    img_size: tuple[int, int] | None = None  # (H, W); None: the checkpoint's
    device: str = "cpu"
    half: bool = False
    batch_size: int = 4
    video: bool = True  # write DIR/overlay.mp4


def load_detector(checkpoint: str | os.PathLike, options: TrackOptions) -> Detector:
    detector = Detector.from_checkpoint(checkpoint, options.device, options.img_size, options.half,
                                        options.score_threshold)  # fmt: skip
    return detector


def track_source(checkpoint: str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike,
                 options: TrackOptions | None = None) -> dict:  # fmt: skip
    """`yolovis track`: DIR/results.json (YouTube-VIS results, video_id 1), DIR/tracks.txt (MOT rows: frame,
    id, x, y, w, h, score, category id) and DIR/overlay.mp4. Returns a summary dict."""
    options = options or TrackOptions()
    return track_video(load_detector(checkpoint, options), source, out_dir, options)


def track_video(detector: Detector, source: str | os.PathLike, out_dir: str | os.PathLike,
                options: TrackOptions | None = None, profile: Profile | None = None,
                progress: bool = True) -> dict:  # fmt: skip
    """`track_source` with a loaded detector; `profile` collects the seconds per phase.

    Memory stays flat: frames are dropped once written, MOT rows are streamed, and a track the tracker can no
    longer match leaves memory for the results' spool file (io/results_writer.py). The first Ctrl-C (SIGINT, in
    the main thread) ends the source there: every output is then completed for the frames processed so far."""
    from tqdm import tqdm

    from yolovis.config import save_config
    from yolovis.engine.interrupt import stop_on_sigint
    from yolovis.io.draw import draw_overlay
    from yolovis.io.mot import MotWriter
    from yolovis.io.results_writer import ResultsWriter
    from yolovis.io.video import VideoWriter, open_source

    options = options or TrackOptions()
    profile = profile or Profile()
    out = Path(out_dir)
    frames = open_source(source, options.stride)
    names = [c["name"] for c in detector.categories]
    category_ids = detector.category_ids
    cfg = detector.config.track
    tracker = build_tracker(cfg)
    mot = MotWriter(out / "tracks.txt")
    results = ResultsWriter(out / "results.json", 1, category_ids, ResultRule.of(cfg))
    writer = VideoWriter(out / "overlay.mp4", frames.fps / options.stride) if options.video else None
    total = len(frames.files) if frames.kind == "images" else frames.expected or None
    bar = tqdm(total=total, desc=f"track {Path(str(source)).name}", unit="frame", dynamic_ncols=True,
               disable=not progress)  # fmt: skip
    try:
        with stop_on_sigint() as stop:
            for item in iter_tracked(detector, stop.frames(frames), tracker, options.batch_size, profile):
                with profile.phase("write"):
                    mot.write(item.index, item.detections, item.track_ids, category_ids)
                    results.add(tracker.pop_final())
                    if writer is not None:
                        writer.write(draw_overlay(item.frame, item.detections, item.track_ids, names))
                bar.update(frames.decoded - bar.n)  # skipped frames (--stride) count too
        # Stopped: the results end with the last frame processed (a frame read after Ctrl-C was not).
        length = stop.last_index + 1 if stop.requested else frames.decoded
        if length == 0:
            raise UserError(f"{source}: no frame could be decoded" + (" before Ctrl-C" if stop.requested else ""))
        with profile.phase("write"):
            tracks = results.close(length, tracker.pop_final() + tracker.tracks)
            if writer is not None:
                writer.close()
            mot.close()
            save_config(detector.config, out / "config.yaml")
    except BaseException:
        if writer is not None:
            writer.abort()
        mot.abort()
        results.abort()
        raise
    finally:
        bar.close()
    return {"frames": length, "tracks": tracks, "truncated": frames.truncated, "interrupted": stop.requested,
            "stream": frames.kind == "stream"}  # fmt: skip
