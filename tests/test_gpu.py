"""The CUDA paths: mixed precision and channels_last in training, float16 inference, NCCL DDP. Marked `gpu`:
they run where CUDA is (the device machine some sessions are lent) and are skipped elsewhere."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from yolovis.config import Config, load_config
from yolovis.data.synth import SynthConfig, generate
from yolovis.engine.checkpoint import read_checkpoint
from yolovis.engine.inference import Detector
from yolovis.engine.train import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    generate(out, SynthConfig(videos=3, frames=6, classes=2, width=96, height=64, seed=5, empty_prob=0.0))
    return out / "instances.json"


def gpu_config(**train) -> Config:
    cfg = load_config(Config, None, ["img_size=[64, 96]", "train.batch_size=4", "train.workers=0",
                                     "train.epochs=1", "model.assoc_dim=16"])  # fmt: skip
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_amp_and_channels_last_training_on_cuda(data, tmp_path):
    result = train(gpu_config(amp=True, channels_last=True), data, tmp_path / "run", val_ann=data, device="cuda")
    assert result.state.global_step > 0 and np.isfinite(result.metrics["loss"])
    assert next(result.model.parameters()).is_cuda
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["scaler"] and "val_AP50" in result.metrics


def test_half_inference_matches_float_on_cuda(data, tmp_path):
    train(gpu_config(amp=True), data, tmp_path / "run", device="cuda")
    frame = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    full = Detector.from_checkpoint(tmp_path / "run" / "last.pt", device="cuda", score_threshold=0.0)([frame])[0]
    half = Detector.from_checkpoint(tmp_path / "run" / "last.pt", device="cuda", half=True, score_threshold=0.0)
    half = half([frame])[0]
    assert half.boxes.dtype == torch.float32 and half.masks.shape[1:] == (64, 96)
    n = min(len(full), len(half), 5)
    torch.testing.assert_close(half.scores[:n], full.scores[:n], atol=2e-2, rtol=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs two GPUs")
def test_nccl_ddp_two_gpus_hold_the_same_weights(data, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import os, torch\n"
        "from yolovis.config import Config, load_config\n"
        "from yolovis.engine.train import train\n"
        "cfg = load_config(Config, None, ['img_size=[64, 96]', 'train.batch_size=2', 'train.workers=0',\n"
        "                                 'train.epochs=1', 'train.ema=false'])\n"
        f"result = train(cfg, r'{data}', r'{tmp_path / 'run'}', device='cuda')\n"
        "params = {n: p.detach().cpu() for n, p in result.model.named_parameters()}\n"
        f"torch.save(params, r'{tmp_path}' + f'/rank{{os.environ[\"RANK\"]}}.pt')\n"
    )
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29521",
                    str(script)], check=True, env=dict(os.environ), capture_output=True, timeout=600)  # fmt: skip
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
