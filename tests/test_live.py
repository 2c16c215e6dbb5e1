"""Live sources: a video served over HTTP on 127.0.0.1 (by a thread of the test) gives the results of the same
file read locally; SIGINT mid-run ends a `yolovis track` subprocess with complete, valid outputs."""

import json
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config
from yolovis.engine.checkpoint import save_inference_checkpoint
from yolovis.io.mot import read_mot
from yolovis.io.video import open_source

H, W = 64, 96


def write_stream(path: Path, frames: int, fps: int = 25) -> None:
    """An MPEG-TS file (what a live HTTP stream carries: readable front to back, no index at the end)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w", format="mpegts") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for t in range(frames):
            frame = np.full((H, W, 3), 90, np.uint8)
            x = (3 * t) % (W - 20)
            frame[20:44, x : x + 20] = (230, 40, 40)
            frame[5:25, W - 1 - x - 16 : W - 1 - x] = (40, 200, 60)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class SlowHandler(SimpleHTTPRequestHandler):
    """Serves files in 2 kB chunks, `delay` seconds apart (0: at once), as a live stream arrives."""

    delay = 0.0

    def copyfile(self, source, outputfile):
        while chunk := source.read(2048):
            try:
                outputfile.write(chunk)
                outputfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: fine for a live stream
                return
            time.sleep(self.delay)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    cfg = load_config(Config, None, ["model.num_classes=2", f"img_size=[{H}, {W}]", "postprocess.score_threshold=0.0",
                                     "postprocess.max_per_image=4", "track.detection_threshold=0.0",
                                     "track.min_length=1", "track.new_track_threshold=0.0"])  # fmt: skip
    torch.manual_seed(0)
    ckpt = root / "model.pt"
    save_inference_checkpoint(ckpt, config=cfg, categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    (root / "www").mkdir()
    write_stream(root / "www" / "short.ts", 12)
    write_stream(root / "www" / "long.ts", 1500)
    return root, ckpt


def serve(folder: Path, delay: float) -> ThreadingHTTPServer:
    handler = type("Handler", (SlowHandler,), {"delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def check_outputs(out: Path, frames: int) -> list[dict]:
    """Every output there, complete and consistent for a video of `frames` frames."""
    results = json.loads((out / "results.json").read_text())
    assert results and all(len(r["segmentations"]) == frames for r in results)
    assert all(r["category_id"] in (1, 2) and 0 <= r["score"] <= 1 for r in results)
    rows = read_mot(out / "tracks.txt")
    assert rows and max(r[0] for r in rows) <= frames
    overlay = list(open_source(out / "overlay.mp4"))
    assert len(overlay) == frames and overlay[0][1].shape == (H, W, 3)
    assert (out / "config.yaml").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "overlay.mp4", "results.json", "tracks.txt"]
    return results


def test_http_source_gives_the_local_files_results(setup):
    root, ckpt = setup
    server = serve(root / "www", delay=0.0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/short.ts"
        assert cli_main(["track", str(ckpt), url, "--out", str(root / "http")]) == 0
    finally:
        server.shutdown()
    assert cli_main(["track", str(ckpt), str(root / "www" / "short.ts"), "--out", str(root / "local")]) == 0
    remote = check_outputs(root / "http", 12)
    assert remote == json.loads((root / "local" / "results.json").read_text())


def test_an_unreachable_url_fails_in_one_line(setup, capsys):
    root, ckpt = setup
    server = serve(root / "www", delay=0.0)
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    assert cli_main(["track", str(ckpt), f"http://127.0.0.1:{port}/short.ts", "--out", str(root / "x")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"127.0.0.1:{port}/short.ts" in errors[0]


def test_sigint_mid_stream_leaves_complete_outputs(setup):
    root, ckpt = setup
    server = serve(root / "www", delay=0.02)  # ~100 kB/s: the 1500 frames would take minutes
    out = root / "sigint"
    url = f"http://127.0.0.1:{server.server_address[1]}/long.ts"
    process = subprocess.Popen([sys.executable, "-m", "yolovis.cli", "track", str(ckpt), url, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    stderr = bytearray()

    def read_stderr():
        for chunk in iter(lambda: process.stderr.read1(4096), b""):
            stderr.extend(chunk)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        done = lambda: [int(n) for n in re.findall(rb"long\.ts: (\d+)frame", bytes(stderr))]  # noqa: E731 (tqdm)
        while max(done(), default=0) < 12 and time.monotonic() < deadline:  # frames processed, by the progress bar
            assert process.poll() is None, bytes(stderr).decode(errors="replace")
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        server.shutdown()
    reader.join(timeout=5)
    message = stdout.decode()
    assert process.returncode == 0, (message, bytes(stderr).decode(errors="replace"))  # a live source ends so
    frames = int(re.search(r"(\d+) frames", message).group(1))
    assert "stopped by Ctrl-C" in message and 10 <= frames < 1500
    check_outputs(out, frames)
