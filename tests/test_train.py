import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.ops import box_iou

from yolovis.cli import main as cli_main
from yolovis.config import Config, TrainConfig, load_config
from yolovis.data.augment import AugmentConfig
from yolovis.data.sample import collate_frames
from yolovis.data.sampling import epoch_batches
from yolovis.data.synth import SynthConfig, generate
from yolovis.data.ytvis import YTVISDataset
from yolovis.engine import distributed
from yolovis.engine.checkpoint import load_training_checkpoint, read_checkpoint
from yolovis.engine.inference import Detector
from yolovis.engine.optim import apply_lr, build_optimizer, lr_factor
from yolovis.engine.train import TrainingDiverged, train
from yolovis.loss.criterion import Criterion
from yolovis.model import build_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Three short 96x64 videos: enough frames for a few batches, small enough for a fast CPU step."""
    out = tmp_path_factory.mktemp("synth")
    generate(out, SynthConfig(videos=3, frames=6, classes=2, width=96, height=64, seed=5, empty_prob=0.0))
    return out / "instances.json"


def tiny_config(**train) -> Config:
    overrides = ["img_size=[64, 96]", "train.batch_size=2", "train.workers=0", "train.epochs=2",
                 "train.checkpoint_every_steps=1", "train.ema_warmup_steps=5"]  # fmt: skip
    cfg = load_config(Config, None, overrides)
    cfg.train.augment = AugmentConfig(mosaic=0.5, flip=0.5, scale=0.2, translate=0.1)
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def test_tiny_model_overfits_a_handful_of_frames(tmp_path):
    torch.manual_seed(0)
    generate(tmp_path, SynthConfig(videos=1, frames=4, classes=3, width=160, height=128, seed=3, min_objects=2,
                                   max_objects=3, empty_prob=0.0, vanish_prob=0.0))  # fmt: skip
    cfg = load_config(Config, None, ["model.num_classes=3", "train.lr=0.003"])
    ds = YTVISDataset(tmp_path / "instances.json", img_size=(128, 160), augment=None)
    images, targets = collate_frames([ds[i] for i in range(len(ds))])
    model = build_model(cfg.model)
    criterion = Criterion(cfg.train.criterion, len(model.strides))
    optimizer = build_optimizer(model, criterion, cfg.train)
    x = images.float() / 255
    raw = []
    for _ in range(150):
        apply_lr(optimizer, cfg.train, 0.5, False)
        loss, log = criterion(model(x, targets), targets)
        raw.append(log["box"] + log["obj"] + log["cls"] + log["mask"])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*model.parameters(), *criterion.parameters()], 10)
        optimizer.step()
    assert raw[-1] < raw[0] / 10
    # The balancing weights moved away from their initial 0 (they are in the optimizer and learn).
    assert criterion.level_weights.abs().max() > 0.5 and abs(criterion.mask_weight.item()) > 0.1
    model.eval()
    with torch.no_grad():
        selected = model(x).proposals
    for (boxes, scores, labels), target in zip(((p.boxes, p.scores, p.labels) for p in selected), targets,
                                               strict=True):  # fmt: skip
        keep = scores > 0.3
        iou = box_iou(target.boxes, boxes[keep])
        best = iou.argmax(1)
        assert (iou.max(1).values > 0.7).all()
        assert torch.equal(labels[keep][best], target.labels)


def test_param_groups_decay_only_weights():
    cfg = TrainConfig(weight_decay=0.01)
    model = build_model(load_config(Config, None, ["model.num_classes=2"]).model)
    criterion = Criterion(cfg.criterion, len(model.strides))
    optimizer = build_optimizer(model, criterion, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p), "balance")
            if group["weight_decay"] > 0:
                assert p.dim() > 1 and name.endswith("weight"), name
            elif name != "balance":
                assert p.dim() <= 1, name
            assert group["is_backbone"] == name.startswith("backbone.")
    total = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert total == sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in criterion.parameters())
    apply_lr(optimizer, cfg, 0.5, backbone_frozen=True)
    assert all((g["lr"] == 0) == g["is_backbone"] for g in optimizer.param_groups)


def test_warmup_then_cosine():
    cfg = TrainConfig(warmup_fraction=0.1, min_lr_ratio=0.05)
    assert lr_factor(0.05, cfg) == pytest.approx(0.5)
    assert lr_factor(0.1, cfg) == pytest.approx(1.0)
    assert lr_factor(0.55, cfg) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(1.0, cfg) == pytest.approx(0.05)


def test_a_bare_cuda_device_gets_the_index_that_set_device_needs(monkeypatch):
    # torch.cuda.set_device(torch.device("cuda")) raises, so `--device cuda` (the demo's and train's default on
    # a GPU machine) must name an index; under torchrun it is the process's own GPU.
    chosen = []

    def set_device(device):
        assert isinstance(device, torch.device) and device.index is not None, device
        chosen.append(device.index)

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert distributed.device_for("cuda", distributed.World(0, 1, 0)) == torch.device("cuda:0")
    assert distributed.device_for("cuda", distributed.World(3, 4, 1)) == torch.device("cuda:1")
    assert distributed.device_for("cuda:2", distributed.World(0, 1, 0)) == torch.device("cuda:2")
    assert distributed.device_for("cpu", distributed.World(0, 1, 0)) == torch.device("cpu")
    assert chosen == [0, 1, 2]


def test_epoch_batches_split_across_processes():
    single = epoch_batches(10, 2, seed=0, epoch=3)
    r0 = epoch_batches(10, 2, seed=0, epoch=3, rank=0, world=2)
    r1 = epoch_batches(10, 2, seed=0, epoch=3, rank=1, world=2)
    assert len(single) == 5 and len(r0) == len(r1) == 2
    assert [k for b in r0 + r1 for k in b] != [] and not {k for b in r0 for k in b} & {k for b in r1 for k in b}
    assert epoch_batches(10, 2, 0, 3) == single and epoch_batches(10, 2, 0, 4) != single


def test_cli_train_writes_a_complete_run(tiny_data, tmp_path):
    run = tmp_path / "run"
    code = cli_main(["train", str(tiny_data), "--val", str(tiny_data), "--out", str(run), "--img-size", "96x64",
                     "--epochs", "1", "--batch-size", "4", "--set", "train.workers=0",
                     "--set", "train.log_every_steps=2"])  # fmt: skip
    assert code == 0
    for name in ("last.pt", "best.pt", "metrics.csv", "config.yaml"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    header, row = (run / "metrics.csv").read_text().splitlines()[:2]
    assert "val_loss" in header and "val_AP50" in header and "w_obj" in header and "mask" in header
    ckpt = read_checkpoint(run / "last.pt")
    assert {"model", "ema", "optimizer", "scaler", "state", "rng", "config", "categories"} <= set(ckpt)
    assert ckpt["config"]["img_size"] == [64, 96] and ckpt["state"]["epoch"] == 1
    steps = EventAccumulator(str(run / "tensorboard"))
    steps.Reload()  # the loss of every window of 2 steps, beside the epoch's mean
    logged = [e.step for e in steps.Scalars("steps/loss")]
    assert logged and logged == list(range(2, ckpt["state"]["global_step"] + 1, 2))
    assert "train/loss" in steps.Tags()["scalars"]
    det = Detector.from_checkpoint(run / "best.pt")
    assert det.num_classes == 2 and [c["id"] for c in det.categories] == [1, 2]


def test_bad_training_input_is_one_line(tiny_data, tmp_path, capsys):
    assert cli_main(["train", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("yolovis train: error:") and "nope.json" in err and "\n" not in err
    assert cli_main(["train", str(tiny_data), "--out", str(tmp_path / "r"), "--set", "train.lr=abc"]) == 2


def test_non_finite_loss_stops_with_terms_and_keeps_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_forward = Criterion.forward

    def poisoned(self, *args, **kwargs):
        total, log = real_forward(self, *args, **kwargs)
        calls["n"] += 1
        return (total * float("nan"), log) if calls["n"] == 3 else (total, log)

    monkeypatch.setattr(Criterion, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss at epoch 1 step 3: loss=.*obj_4="):
        train(tiny_config(), tiny_data, tmp_path / "run")
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["state"]["global_step"] == 2


def test_time_limit_ends_cleanly_with_checkpoints(tiny_data, tmp_path):
    result = train(tiny_config(epochs=50, time_limit_minutes=0.002), tiny_data, tmp_path / "run")
    state = read_checkpoint(tmp_path / "run" / "last.pt")["state"]
    assert 0 < state["global_step"] < 50 and result.state.global_step == state["global_step"]
    assert (tmp_path / "run" / "best.pt").is_file()


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_killed_run_resumes_to_the_same_weights(tiny_data, tmp_path):
    """Kill a training process mid-epoch (SIGKILL), resume from its last.pt, and end with exactly the weights
    of a run that was never interrupted. On the CPU: even two uninterrupted CUDA runs end with different
    weights (seen on an H200; kernels that add with atomics), whatever the resume does."""
    cfg = tiny_config(epochs=3)
    reference = train(cfg, tiny_data, tmp_path / "uninterrupted", device="cpu")
    killed = tmp_path / "killed"
    script = (
        "import sys, torch; torch.set_num_threads(2)\n"
        "from yolovis.config import Config, from_dict\n"
        "from yolovis.engine.train import train\n"
        "import yaml\n"
        f"cfg = from_dict(Config, yaml.safe_load(open(r'{tmp_path / 'uninterrupted' / 'config.yaml'}')))\n"
        f"train(cfg, r'{tiny_data}', r'{killed}', device='cpu')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            last = killed / "last.pt"
            if last.is_file():
                state = torch.load(last, map_location="cpu", weights_only=False)["state"]
                if state["epoch"] >= 1 and state["step_in_epoch"] >= 1:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed mid-epoch"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    saved = torch.load(killed / "last.pt", map_location="cpu", weights_only=False)["state"]
    assert saved["step_in_epoch"] > 0  # mid-epoch
    resumed = train(cfg, tiny_data, tmp_path / "resumed", resume=killed / "last.pt", device="cpu")
    assert resumed.state.global_step == reference.state.global_step
    assert _same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert _same_weights(resumed.ema.state_dict(), reference.ema.state_dict())


def test_resume_restores_every_part(tiny_data, tmp_path):
    result = train(tiny_config(epochs=1), tiny_data, tmp_path / "run")
    cfg = result_cfg = tiny_config(epochs=1)
    model = build_model(load_config(Config, None, ["model.num_classes=2"]).model)
    criterion = Criterion(cfg.train.criterion, len(model.strides))
    optimizer = build_optimizer(model, criterion, result_cfg.train)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = load_training_checkpoint(tmp_path / "run" / "last.pt", model=model, criterion=criterion,
                                     optimizer=optimizer, scaler=scaler, ema=None)  # fmt: skip
    assert state.global_step == result.state.global_step and state.epoch == 1
    assert _same_weights(model.state_dict(), result.model.state_dict())
    assert len(optimizer.state) > 0


@pytest.mark.skipif(os.name != "posix", reason="torchrun with gloo on CPU")
def test_ddp_two_cpu_processes_hold_the_same_weights(tiny_data, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        "import os, torch\n"
        "from yolovis.config import Config, load_config\n"
        "from yolovis.engine.train import train\n"
        "torch.set_num_threads(1)\n"
        "cfg = load_config(Config, None, ['img_size=[64, 96]', 'train.batch_size=2', 'train.workers=0',\n"
        "                                 'train.epochs=1', 'train.ema=false'])\n"
        f"result = train(cfg, r'{tiny_data}', r'{tmp_path / 'run'}', device='cpu')\n"
        "params = {n: p.detach() for n, p in result.model.named_parameters()}\n"
        f"torch.save(params, r'{tmp_path}' + f'/rank{{os.environ[\"RANK\"]}}.pt')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                    str(script)], check=True, env=env, cwd=REPO, capture_output=True, timeout=300)  # fmt: skip
    # Parameters (and so the criterion's balancing weights' effect) are identical after the all-reduced steps;
    # BN running statistics are per process, as without SyncBatchNorm, and rank 0's are the ones saved.
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    assert _same_weights(a, b)
    fresh = build_model(load_config(Config, None, ["model.num_classes=2"]).model).state_dict()
    assert not torch.equal(a["head.preds.0.weight"], fresh["head.preds.0.weight"])  # it did train


@pytest.mark.skipif(os.name != "posix", reason="torchrun with gloo on CPU")
def test_ddp_ranks_whose_clocks_disagree_stop_together(tiny_data, tmp_path):
    # Rank 1's clock runs 55 s ahead of a 60 s budget: it sees the time spent long before rank 0 does. The ranks
    # must agree on the step to stop at (else rank 0 waits in an all-reduce that rank 1 never joins, until gloo's
    # timeout), and both validate their share of the held-out videos and end.
    script = tmp_path / "ddp_clock.py"
    script.write_text(
        "import os, torch\n"
        "from yolovis.config import Config, load_config\n"
        "from yolovis.engine import run\n"
        "from yolovis.engine.train import train\n"
        "torch.set_num_threads(1)\n"
        "if os.environ['RANK'] == '1':\n"
        "    elapsed = run.Clock.elapsed\n"
        "    run.Clock.elapsed = lambda self: elapsed(self) + 55.0\n"
        "cfg = load_config(Config, None, ['img_size=[64, 96]', 'train.batch_size=2', 'train.workers=0',\n"
        "                                 'train.epochs=50', 'train.ema=false', 'train.time_limit_minutes=1.0'])\n"
        f"result = train(cfg, r'{tiny_data}', r'{tmp_path / 'run'}', val_ann=r'{tiny_data}', device='cpu')\n"
        f"torch.save({{'step': result.state.global_step, 'metrics': result.metrics}}, r'{tmp_path}' + "
        "f'/rank{os.environ[\"RANK\"]}.pt')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
                    str(script)], check=True, env=env, cwd=REPO, capture_output=True, timeout=240)  # fmt: skip
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert a["step"] == b["step"] and 0 < a["step"] < 50 * 4  # stopped early, at the same step
    assert "val_AP50" in a["metrics"] and "val_loss" in a["metrics"]  # rank 0 scored every rank's share
