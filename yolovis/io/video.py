"""Video in and out: frame sources (a video file, a folder of frames, a glob, a URL PyAV opens or a camera
device, decoded one frame at a time, nothing holds more than one frame) and the H.264 writer of overlay videos."""

from __future__ import annotations

import glob as globlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from yolovis.errors import UserError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ts"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Seconds PyAV waits to open a stream, then for each read: a stalled network source ends instead of hanging.
STREAM_TIMEOUT = (15.0, 30.0)


def is_stream(source: str) -> bool:
    """A source without a known end: a URL (rtsp://, http(s)://, udp://, ...) or a camera device (/dev/video0)."""
    return "://" in source or source.startswith("/dev/video")


def _open_container(path: str):
    """PyAV's container of a file, URL or camera device (V4L2: FFmpeg does not guess a device's format)."""
    import av

    if path.startswith("/dev/video"):
        return av.open(path, format="v4l2", timeout=STREAM_TIMEOUT)
    return av.open(path, timeout=STREAM_TIMEOUT if "://" in path else None)


@dataclass
class FrameSource:
    """Where frames come from. Iterating yields (index, (H, W, 3) uint8 RGB); `decoded` counts what was read."""

    kind: str  # "video", "stream" (a URL or camera: no known end) or "images"
    path: str
    files: list[Path]
    fps: float = 25.0
    stride: int = 1
    decoded: int = 0
    truncated: bool = False
    expected: int = 0  # frames the container announces (0: unknown); fewer decoded means a truncated file

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        frames = self._image_frames() if self.kind == "images" else self._video_frames()
        for index, frame in frames:
            self.decoded = index + 1
            if frame is not None:
                yield index, frame

    def _image_frames(self) -> Iterator[tuple[int, np.ndarray | None]]:
        size = None
        for index, file in enumerate(self.files):
            if index % self.stride:  # not read at all: a skipped frame costs nothing but its index
                yield index, None
                continue
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise UserError(f"{file}: unreadable or corrupt image (frame {index} of {self.path})")
            if size is not None and image.shape[:2] != size:
                raise UserError(
                    f"{file}: frame {index} is {image.shape[1]}x{image.shape[0]}, the frames before it are "
                    f"{size[1]}x{size[0]}: a video's frames must share one size"
                )
            size = image.shape[:2]
            yield index, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _video_frames(self) -> Iterator[tuple[int, np.ndarray | None]]:
        import av

        try:
            container = _open_container(self.path)
        except (av.error.FFmpegError, OSError) as e:
            raise UserError(f"{self.path}: not a readable video ({e})") from None
        index = 0
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-parallel decoding where the codec allows it
            try:
                for frame in container.decode(stream):
                    yield index, frame.to_ndarray(format="rgb24") if index % self.stride == 0 else None
                    index += 1
            except av.error.FFmpegError as e:
                # A damaged file: keep what was decoded, say so, and let the caller decide.
                self.truncated = True
                warnings.warn(f"{self.path}: decoding stopped after frame {index} ({e})", stacklevel=2)
                return
        # A file cut short often decodes without an error: compare with what its header announced.
        if self.expected and index < self.expected - max(1, round(0.02 * self.expected)):
            self.truncated = True
            warnings.warn(
                f"{self.path}: {index} frames decoded, the file announces {self.expected}: truncated?", stacklevel=2
            )


def open_source(source: str | os.PathLike, stride: int = 1) -> FrameSource:
    """A video file, a folder of frames (sorted by name), a glob pattern of frame files, a URL PyAV opens
    (rtsp://, http(s)://, ...) or a camera device (/dev/video0)."""
    if stride < 1:
        raise UserError(f"--stride must be >= 1, got {stride}")
    text = str(source)
    path = Path(text)
    if is_stream(text):
        return _probe_video(text, "stream")
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in globlib.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{text}: the pattern matches no image files")
        return FrameSource("images", text, files, stride=stride)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"{path}: the folder holds no frames ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return FrameSource("images", text, files, stride=stride)
    if not path.exists():
        raise UserError(f"{path}: no such video file, folder or pattern")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))}), folder or glob")
    return _probe_video(text, "video", stride)


def _probe_video(text: str, kind: str, stride: int = 1) -> FrameSource:
    """Open once to read the frame rate and length (and to fail here, in one line, rather than mid-run)."""
    import av

    try:
        with _open_container(text) as container:
            if not container.streams.video:
                raise UserError(f"{text}: has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0
            expected = stream.frames or (round(container.duration / av.time_base * fps) if container.duration else 0)
    except (av.error.FFmpegError, OSError) as e:
        raise UserError(f"{text}: not a readable video ({e})") from None
    return FrameSource(kind, text, [], fps=fps, stride=stride, expected=int(expected) if kind == "video" else 0)


class VideoWriter:
    """H.264 (or MPEG-4 where libx264 is missing) via PyAV, into a temporary file renamed by `close()`."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp.mp4")
        self.container = av.open(str(self.tmp), mode="w")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.stream = self.container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        self.stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            # An overlay is a preview: x264's `superfast` encodes a 720p frame in ~14 ms instead of ~45 ms (the
            # default `medium`), and its short lookahead fills within ~10 frames, where `medium` kept adding
            # ~2 MB per frame for its first ~60 frames (docs/deployment.md); files are ~2x larger.
            self.stream.options = {"preset": "superfast"}
        self.opened = False

    def write(self, frame: np.ndarray) -> None:
        import av

        h, w = frame.shape[:2]
        if not self.opened:  # yuv420p needs even sizes: pad by one pixel where needed
            self.stream.width, self.stream.height = w + w % 2, h + h % 2
            self.opened = True
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.container.close()
        self.tmp.unlink(missing_ok=True)
