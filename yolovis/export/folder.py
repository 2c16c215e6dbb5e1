"""The exported folder: written by `yolovis export`, read by `Detector.from_checkpoint` (so by `track`,
`predict`, `diagnose`, `VideoTracker`) wherever a checkpoint is accepted.

    NAME_onnx/      network.onnx                  ONNX Runtime runs it (OpenVINO where ONNX Runtime is missing)
    NAME_openvino/  network.xml, network.bin      OpenVINO runs it
    both:           config.yaml                   the resolved config; img_size is the export's, fixed
                    categories.json               the dataset categories, in label order
                    roi_heads.pt                  what runs in PyTorch after the network: the weights of every
                                                  module `forward_dense` does not use (the mask head, and any
                                                  other RoI head the model has), and the names of those it uses

The folder is written under a temporary name beside its target and renamed into place when complete.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from yolovis.config import Config, ConfigError, load_saved_config, save_config
from yolovis.data.letterbox import check_input_size
from yolovis.engine.checkpoint import load_model, load_weights
from yolovis.errors import UserError
from yolovis.export.onnx import OnnxRuntimeNetwork, export_onnx
from yolovis.export.openvino import OpenVINONetwork, convert_onnx
from yolovis.export.runtime import flatten_dense
from yolovis.fileio import atomic_torch_save, atomic_write_json
from yolovis.model.detector import YoloV4Plus1, build_model
from yolovis.model.fuse import fuse_conv_bn

FORMATS = ("onnx", "openvino")
NETWORK_FILES = ("network.xml", "network.onnx")  # what a folder may hold, OpenVINO's first
ROI_HEADS_FORMAT = "yolovis-roi-heads-1"


@dataclass
class ExportedModel:
    """A loaded export: the network runner and the PyTorch part that runs after it."""

    network: OnnxRuntimeNetwork | OpenVINONetwork  # (1, 3, H, W) -> DenseOutput
    model: YoloV4Plus1  # without the modules the network replaces: box selection, RoI heads
    config: Config
    categories: list[dict]


@dataclass
class ExportSummary:
    folder: Path
    network: Path
    input_size: tuple[int, int]
    max_abs_diff: float | None  # exported network vs PyTorch on a random input; None when no runtime to check


def dense_module_names(model: YoloV4Plus1, sample: torch.Tensor) -> list[str]:
    """The model's top-level modules that `forward_dense` runs (found by running it, so a module added to the
    model is classed by what it does, not by a list kept here)."""
    called: set[str] = set()
    handles = [child.register_forward_hook(lambda *_, name=name: called.add(name))
               for name, child in model.named_children()]  # fmt: skip
    try:
        with torch.no_grad():
            model.forward_dense(sample)
    finally:
        for handle in handles:
            handle.remove()
    return sorted(called)


# The packages each format is written with (torch's exporter writes ONNX through `onnx`; OpenVINO converts it).
EXPORTERS = {"onnx": ("onnx",), "openvino": ("onnx", "openvino")}


def default_folder(checkpoint: str | os.PathLike, fmt: str) -> Path:
    """RUN/best.pt -> RUN/best_onnx/ or RUN/best_openvino/."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}_{fmt}")


def export_checkpoint(checkpoint: str | os.PathLike, fmt: str, img_size: tuple[int, int] | None = None,
                      out: str | os.PathLike | None = None) -> ExportSummary:  # fmt: skip
    """`yolovis export`: write the folder of `checkpoint` in format `fmt` (onnx, openvino) for inputs of
    `img_size` (H, W; default the checkpoint's), then check it against PyTorch where the runtime is installed."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    missing = [name for name in EXPORTERS[fmt] if importlib.util.find_spec(name) is None]
    if missing:  # before any work, and not torch's traceback from deep inside its exporter
        raise UserError(f"{checkpoint}: exporting to {fmt} needs {' and '.join(missing)}: pip install 'yolovis[{fmt}]'")
    model, config, categories = load_model(checkpoint)
    fuse_conv_bn(model.eval())  # as the PyTorch detector runs it; fewer layers for the runtime too
    size = check_input_size(*(img_size or config.img_size))
    config.img_size = list(size)
    folder = Path(out) if out is not None else default_folder(checkpoint, fmt)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's folder is private; give it the mode a plain mkdir would have
    try:
        sample = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
        dense = dense_module_names(model, sample)
        export_onnx(model, tmp / "network.onnx", size)
        if fmt == "openvino":
            convert_onnx(tmp / "network.onnx", tmp / "network.xml")
            (tmp / "network.onnx").unlink()  # one network per folder: what it holds chooses the runtime
        rest = {k: v for k, v in model.state_dict().items() if k.split(".", 1)[0] not in dense}
        atomic_torch_save({"format": ROI_HEADS_FORMAT, "dense_modules": dense, "weights": rest}, tmp / "roi_heads.pt")
        save_config(config, tmp / "config.yaml")
        atomic_write_json(tmp / "categories.json", categories, indent=1)
        diff = _check_against_pytorch(model, tmp, sample)
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    network = folder / ("network.xml" if fmt == "openvino" else "network.onnx")
    return ExportSummary(folder, network, size, diff)


def _check_against_pytorch(model: YoloV4Plus1, folder: Path, sample: torch.Tensor) -> float | None:
    try:
        exported = load_exported(folder)
    except UserError:  # the runtime is not installed here: the export is still valid
        return None
    with torch.no_grad():
        reference = model.forward_dense(sample)
    _, got = flatten_dense(exported.network(sample))
    _, want = flatten_dense(reference)
    return max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Rename the complete temporary folder into place (an older export of the same name goes once it has)."""
    old = None
    if folder.exists():
        if not (folder / "config.yaml").is_file() or not any((folder / f).is_file() for f in NETWORK_FILES):
            raise UserError(f"{folder}: exists and is not a folder written by `yolovis export`; choose another --out")
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def network_file(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    for name in NETWORK_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder}: holds no network file ({' or '.join(NETWORK_FILES)}): not a folder written by "
                    "`yolovis export`")  # fmt: skip


def load_exported(folder: str | os.PathLike) -> ExportedModel:
    """Read a folder written by `export_checkpoint`; the runtime follows the network file it holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such exported folder")
    network_path = network_file(folder)
    for name in ("config.yaml", "categories.json", "roi_heads.pt"):
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing (every folder written by `yolovis export` has one)")
    try:
        config = load_saved_config(folder / "config.yaml")
    except ConfigError as e:
        raise UserError(str(e)) from None
    try:
        categories = json.loads((folder / "categories.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{folder / 'categories.json'}: malformed JSON ({e})") from None
    model = _roi_model(folder / "roi_heads.pt", config)
    if len(categories) != model.num_classes:
        raise UserError(f"{folder / 'categories.json'}: {len(categories)} categories for a model of "
                        f"{model.num_classes} classes")  # fmt: skip
    network = _runner(network_path)
    if list(network.input_size) != list(config.img_size):
        raise UserError(f"{network_path}: its input is {network.input_size[1]}x{network.input_size[0]}, "
                        f"config.yaml says {config.img_size[1]}x{config.img_size[0]}")  # fmt: skip
    _check_outputs(network, model, network_path)
    return ExportedModel(network, model, config, categories)


def _roi_model(path: Path, config: Config) -> YoloV4Plus1:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files; the user needs the file name
        raise UserError(f"{path}: not readable ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(saved, dict) or saved.get("format") != ROI_HEADS_FORMAT:
        raise UserError(f"{path}: not a yolovis RoI-heads file (no '{ROI_HEADS_FORMAT}' format tag)")
    model = build_model(config.model, config.postprocess)
    for name in saved["dense_modules"]:
        setattr(model, name, None)  # the network file computes these; nothing to hold in memory
    load_weights(model, saved["weights"], path)
    return model.eval()


def _runner(path: Path) -> OnnxRuntimeNetwork | OpenVINONetwork:
    """OpenVINO for an IR; ONNX Runtime for an ONNX graph, or OpenVINO (it reads ONNX) where only it is installed."""
    if path.suffix == ".onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            try:
                import openvino  # noqa: F401
            except ImportError:
                raise UserError(f"{path}: needs ONNX Runtime (pip install 'yolovis[onnx]') or OpenVINO") from None
            return OpenVINONetwork(path)
        return OnnxRuntimeNetwork(path)
    return OpenVINONetwork(path)


def _check_outputs(network: OnnxRuntimeNetwork | OpenVINONetwork, model: YoloV4Plus1, path: Path) -> None:
    """The graph's outputs must be the levels the PyTorch part expects (a network of another model fails here,
    in one line, not in the middle of a video)."""
    levels = len(model.strides)
    wanted = {f"{field}.{k}" for field in ("predictions", "embeddings") for k in range(levels)}
    missing = wanted - set(network.names)
    if missing:
        raise UserError(f"{path}: lacks the outputs {', '.join(sorted(missing))}; export the checkpoint again")
    outputs = network.output_shapes["predictions.0"][-1]  # (1, nA, H/4, W/4, 5 + K)
    if outputs != 5 + model.num_classes:
        raise UserError(f"{path}: predicts {outputs - 5} classes, config.yaml says {model.num_classes}")
