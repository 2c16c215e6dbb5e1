"""Frame sources (video file, folder, glob), the overlay writer and the MOT rows: no model involved."""

import warnings

import av
import cv2
import numpy as np
import pytest
import torch

from yolovis.errors import UserError
from yolovis.io.draw import draw_overlay
from yolovis.io.mot import MotWriter, read_mot
from yolovis.io.video import VideoWriter, open_source
from yolovis.model.detections import Detections

H, W = 64, 96


def frame(t: int) -> np.ndarray:
    """Noise (so that every frame costs about as many bytes) whose mean level encodes the index (+-3 after coding)."""
    noise = np.random.default_rng(t).integers(0, 40, (H, W, 3))
    return (noise + 7 * t).astype(np.uint8)


def write_video(path, n: int, fps: int = 10, codec: str = "libx264") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for t in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame(t), format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def mkv(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mkv"  # Matroska: a cut file still decodes up to the cut
    write_video(path, 30)
    return path


def test_video_file_frames_in_order_with_stride(mkv):
    source = open_source(mkv)
    frames = list(source)
    assert [t for t, _ in frames] == list(range(30)) and source.decoded == 30 and not source.truncated
    assert source.fps == pytest.approx(10) and source.expected == 30
    assert frames[0][1].shape == (H, W, 3) and frames[0][1].dtype == np.uint8
    assert all(abs(float(f.mean()) - (19.5 + 7 * t)) < 3 for t, f in frames)
    strided = open_source(mkv, stride=4)
    assert [t for t, _ in strided] == [0, 4, 8, 12, 16, 20, 24, 28] and strided.decoded == 30


def test_truncated_video_keeps_the_decoded_frames_and_warns(mkv, tmp_path):
    data = mkv.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    source = open_source(cut)
    with pytest.warns(UserWarning, match="truncated"):
        frames = list(source)
    assert 0 < len(frames) < 30 and source.decoded == len(frames) and source.truncated
    assert all(abs(float(f.mean()) - (19.5 + 7 * t)) < 3 for t, f in frames)  # the right frames, in order
    # Header and the start of the first cluster only: the file opens but not one frame decodes.
    header = tmp_path / "header.mkv"
    header.write_bytes(data[: data.find(bytes.fromhex("1F43B675")) + 60])  # Matroska Cluster id
    source = open_source(header)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(source) == [] and source.decoded == 0


def test_folder_and_glob_sources(tmp_path):
    for t in range(5):
        cv2.imwrite(str(tmp_path / f"{t:05d}.png"), cv2.cvtColor(frame(t), cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_source(tmp_path, stride=2)
    frames = list(source)
    assert [t for t, _ in frames] == [0, 2, 4] and source.decoded == 5
    assert all((f == frame(t)).all() for t, f in frames)  # PNG: lossless, RGB order kept
    assert [t for t, _ in open_source(str(tmp_path / "0000[13].png"))] == [0, 1]


def test_bad_sources_are_one_line_user_errors(tmp_path):
    cases = {
        "missing": tmp_path / "nothing.mp4",
        "suffix": tmp_path / "frames.txt",
        "corrupt": tmp_path / "broken.mp4",
        "empty folder": tmp_path / "empty",
        "glob": str(tmp_path / "*.jpg"),
    }
    (tmp_path / "frames.txt").write_text("x")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "empty").mkdir()
    for case, path in cases.items():
        with pytest.raises(UserError) as info:
            open_source(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value), case
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "0.png"), np.zeros((H, W, 3), np.uint8))
    cv2.imwrite(str(mixed / "1.png"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(UserError, match=r"1\.png: frame 1 is 32x32, the frames before it are 96x64"):
        list(open_source(mixed))
    with pytest.raises(UserError, match="stride"):
        open_source(mixed, stride=0)


def test_video_writer_round_trip_with_odd_size(tmp_path):
    path = tmp_path / "out" / "overlay.mp4"
    writer = VideoWriter(path, fps=12.5)
    for t in range(6):
        writer.write(frame(t)[:63, :95])  # odd sizes: yuv420p needs even ones, the writer pads
    assert not path.exists()  # nothing under the final name until close()
    writer.close()
    source = open_source(path)
    frames = list(source)
    assert len(frames) == 6 and frames[0][1].shape == (64, 96, 3) and source.fps == pytest.approx(12.5)
    assert [p.name for p in path.parent.iterdir()] == ["overlay.mp4"]  # no temporary left behind
    aborted = VideoWriter(tmp_path / "gone.mp4", fps=10)
    aborted.write(frame(0))
    aborted.abort()
    assert list(tmp_path.glob("*gone*")) == []


def two_detections() -> Detections:
    masks = torch.zeros((2, H, W), dtype=torch.bool)
    masks[0, 10:30, 10:40] = True
    masks[1, 40:60, 60:90] = True
    boxes = torch.tensor([[10.0, 10.0, 40.0, 30.0], [60.0, 40.0, 90.0, 60.0]])
    return Detections(boxes, torch.tensor([0.9, 0.2]), torch.tensor([1, 0]), masks)


def test_mot_rows_round_trip_and_skip_untracked(tmp_path):
    det = two_detections()
    writer = MotWriter(tmp_path / "tracks.txt")
    writer.write(0, det, [3, -1], category_ids=[11, 12])
    writer.write(4, det, [3, 5], category_ids=[11, 12])
    writer.close()
    assert read_mot(tmp_path / "tracks.txt") == [
        (1, 3, 10.0, 10.0, 30.0, 20.0, 0.9, 12),
        (5, 3, 10.0, 10.0, 30.0, 20.0, 0.9, 12),
        (5, 5, 60.0, 40.0, 30.0, 20.0, 0.2, 11),
    ]
    assert writer.rows == 3 and [p.name for p in tmp_path.iterdir()] == ["tracks.txt"]


def test_overlay_draws_tracked_detections_only():
    det = two_detections()
    base = np.full((H, W, 3), 100, dtype=np.uint8)
    out = draw_overlay(base, det, [7, -1], names=["a", "b"])
    assert (base == 100).all()  # the input frame is not modified
    assert (out[15:25, 15:35] != 100).any(axis=-1).all()  # inside the tracked mask: tinted
    assert (out[45:55, 65:85] == 100).all()  # the untracked detection is not drawn
