import json
import zipfile

import numpy as np
import pytest
import torch
from test_video import write_video

from yolovis.cli import main as cli_main
from yolovis.config import Config, load_config
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine.checkpoint import save_inference_checkpoint
from yolovis.engine.inference import Detector
from yolovis.engine.predict import VideoTracker
from yolovis.eval import check_results
from yolovis.io.video import VideoWriter, open_source


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    generate(root / "data", SynthConfig(videos=2, frames=5, classes=2, width=96, height=64, seed=1))
    # An untrained model: let its (random) detections through, so that the files have something in them.
    cfg = load_config(Config, None, ["model.num_classes=2", "img_size=[64, 96]", "postprocess.score_threshold=0.0",
                                     "postprocess.max_per_image=5", "track.detection_threshold=0.0",
                                     "track.new_track_threshold=0.0", "track.min_length=1"])  # fmt: skip
    torch.manual_seed(0)
    ckpt = root / "model.pt"
    save_inference_checkpoint(ckpt, config=cfg, categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    frames = sorted((root / "data" / "JPEGImages" / "video_0000").glob("*.jpg"))
    video = root / "clip.mp4"
    writer = VideoWriter(video, fps=10)
    for _, frame in open_source(root / "data" / "JPEGImages" / "video_0000"):
        writer.write(frame)
    writer.close()
    return root, ckpt, frames, video


def test_track_a_video_file_writes_all_outputs(setup):
    root, ckpt, _, video = setup
    out = root / "out_video"
    assert cli_main(["track", str(ckpt), str(video), "--out", str(out), "--img-size", "96x64"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results and all(len(r["segmentations"]) == 5 for r in results)
    assert {r["category_id"] for r in results} <= {1, 2}
    rows = [line.split(",") for line in (out / "tracks.txt").read_text().splitlines()]
    assert rows and all(len(r) == 8 and 1 <= int(r[0]) <= 5 for r in rows)
    assert (out / "overlay.mp4").stat().st_size > 0 and (out / "config.yaml").is_file()
    decoded = list(open_source(out / "overlay.mp4"))
    assert len(decoded) == 5 and decoded[0][1].shape == (64, 96, 3)


def test_track_a_folder_with_stride_and_no_video(setup):
    root, ckpt, frames, _ = setup
    out = root / "out_folder"
    args = ["track", str(ckpt), str(frames[0].parent), "--out", str(out), "--stride", "2", "--no-video"]
    assert cli_main(args) == 0
    results = json.loads((out / "results.json").read_text())
    for r in results:
        assert len(r["segmentations"]) == 5
        assert all(r["segmentations"][t] is None for t in (1, 3))  # skipped frames stay null
    assert not (out / "overlay.mp4").exists()


def test_track_bad_sources_fail_in_one_line(setup, tmp_path, capsys):
    _, ckpt, frames, _ = setup
    assert cli_main(["track", str(ckpt), str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "empty").mkdir()
    assert cli_main(["track", str(ckpt), str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    assert cli_main(["track", str(ckpt), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "o")]) == 2
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    import cv2

    cv2.imwrite(str(mixed / "0.jpg"), np.zeros((64, 96, 3), np.uint8))
    cv2.imwrite(str(mixed / "1.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert cli_main(["track", str(ckpt), str(mixed), "--out", str(tmp_path / "o")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("yolovis track: error:")]
    assert len(errors) == 4 and "missing.mp4" in errors[0] and "1.jpg" in errors[3]
    assert not (tmp_path / "o" / "results.json").exists()


def test_truncated_video_keeps_what_was_decoded(setup, tmp_path, capsys):
    _, ckpt, _, _ = setup
    clip = tmp_path / "clip.mkv"  # Matroska: a cut file still decodes up to the cut
    write_video(clip, 30)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    assert cli_main(["track", str(ckpt), str(cut), "--out", str(out), "--no-video", "--img-size", "96x64"]) == 0
    decoded = len(list(open_source(cut)))
    assert 0 < decoded < 30
    results = json.loads((out / "results.json").read_text())
    assert results and all(len(r["segmentations"]) == decoded for r in results)
    assert max(int(line.split(",")[0]) for line in (out / "tracks.txt").read_text().splitlines()) == decoded
    assert "yolovis track: warning:" in capsys.readouterr().err
    # Nothing decodable at all (the header and the start of the first cluster): nothing written, exit 2.
    header = tmp_path / "header.mkv"
    header.write_bytes(data[: data.find(bytes.fromhex("1F43B675")) + 60])
    assert cli_main(["track", str(ckpt), str(header), "--out", str(tmp_path / "none")]) == 2
    assert "no frame could be decoded" in capsys.readouterr().err
    assert not (tmp_path / "none" / "results.json").exists() and not (tmp_path / "none" / "overlay.mp4").exists()


def test_predict_every_video_with_non_contiguous_ids_and_zip(setup, tmp_path):
    root, ckpt, _, _ = setup
    ann = json.loads((root / "data" / "instances.json").read_text())
    # Video ids need not be contiguous nor sorted: 7 and 3 here.
    remap = {1: 7, 2: 3}
    for v in ann["videos"]:
        v["id"] = remap[v["id"]]
    for a in ann["annotations"]:
        a["video_id"] = remap[a["video_id"]]
    ann_path = root / "data" / "remapped.json"
    ann_path.write_text(json.dumps(ann))
    out = tmp_path / "results.json"
    assert cli_main(["predict", str(ckpt), str(ann_path), "--out", str(out), "--zip", "--img-size", "96x64"]) == 0
    results = json.loads(out.read_text())
    assert {r["video_id"] for r in results} == {7, 3}
    # Every frame of every video is there, the last frame of the last video included.
    assert all(len(r["segmentations"]) == 5 for r in results)
    from yolovis.data.annotations import parse_vis_annotations

    assert check_results(parse_vis_annotations(ann, "remapped.json"), results) == []
    with zipfile.ZipFile(out.with_suffix(".zip")) as z:
        assert z.namelist() == ["results.json"]
        assert json.loads(z.read("results.json")) == results


def test_python_api_matches_the_cli(setup):
    root, ckpt, frames, _ = setup
    det = Detector.from_checkpoint(ckpt, img_size=(64, 96))
    tracker = VideoTracker(det)
    items = list(tracker(frames[0].parent))
    assert [f.index for f in items] == [0, 1, 2, 3, 4] and tracker.length == 5
    assert all(len(f.track_ids) == len(f.detections) == len(f.rles) for f in items)
    out = root / "out_api"
    assert cli_main(["track", str(ckpt), str(frames[0].parent), "--out", str(out), "--no-video"]) == 0
    assert json.loads((out / "results.json").read_text()) == tracker.results(video_id=1)


def test_predict_under_torchrun_splits_and_merges(setup, tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    root, ckpt, _, _ = setup
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not installed")
    single = tmp_path / "single.json"
    assert cli_main(["predict", str(ckpt), str(root / "data" / "instances.json"), "--out", str(single)]) == 0
    merged = tmp_path / "merged.json"
    command = [torchrun, "--nproc_per_node", "2", "--master_port", "29523", "-m", "yolovis.cli", "predict",
               str(ckpt), str(root / "data" / "instances.json"), "--out", str(merged), "--zip"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # Each process took one of the two videos; the merged file is the single-process one, in the file's order.
    assert json.loads(merged.read_text()) == json.loads(single.read_text())
    with zipfile.ZipFile(merged.with_suffix(".zip")) as z:
        assert z.namelist() == ["results.json"]
