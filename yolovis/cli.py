"""The `yolovis` command: one subcommand per job.

Each subcommand has a small `_add_<name>` function that declares its options and a handler that calls the
library. Heavy imports (torch) happen inside the handlers so that `yolovis --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from yolovis import __version__
from yolovis.cli_data import add_anchors, add_synth
from yolovis.errors import UserError


def _size(text: str) -> tuple[int, int]:
    """'416' -> (416, 416); '640x384' (W x H) -> (384, 640) as (H, W)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (S or WxH)") from None
    from yolovis.data.letterbox import check_input_size

    try:
        return check_input_size(h, w)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# --------------------------------------------------------------------------------------------------- info
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="versions, devices and the model scales with their sizes")
    p.add_argument("--model", default=None, help="only this scale (full, small, tiny)")
    p.add_argument("--num-classes", type=int, default=40)
    p.add_argument("--img-size", type=_size, default=(416, 416), help="S or WxH (multiple of 32)")
    p.set_defaults(handler=_info)


def _info(args: argparse.Namespace) -> None:
    import torch

    from yolovis.config import ModelConfig
    from yolovis.model import SCALES, build_model

    print(f"yolovis {__version__}, torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
    scales = [args.model] if args.model else list(SCALES)
    for name in scales:
        if name not in SCALES:
            raise UserError(f"--model {name!r}: unknown scale; choose from {', '.join(SCALES)}")
        model = build_model(ModelConfig(scale=name, num_classes=args.num_classes))
        n = sum(p.numel() for p in model.parameters())
        print(f"{name:>6}: {n / 1e6:8.2f} M parameters, levels at strides {model.strides}")


# -------------------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train YoloV4+1 on a YouTube-VIS (or COCO) annotation file")
    p.add_argument("ann", metavar="ANN.json", help="training annotations (YouTube-VIS 2019/2021/2022 or COCO)")
    p.add_argument("--images", default=None, help="image root (default: JPEGImages/ next to ANN.json)")
    p.add_argument("--extra", action="append", default=[], metavar="ANN.json[=IMAGES]",
                   help="more training data (YouTube-VIS or COCO), in ANN.json's categories; repeatable")  # fmt: skip
    p.add_argument("--val", default=None, metavar="ANN.json", help="held-out videos, scored every epoch")
    p.add_argument("--val-images", default=None, help="image root of --val (default: next to it)")
    p.add_argument("--model", default=None, help="scale: full, small or tiny (default: the config's, tiny)")
    p.add_argument("--img-size", type=_size, default=None, help="network input, S or WxH (multiple of 32)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", required=True, metavar="RUN", help="run folder: last.pt, best.pt, metrics.csv, ...")
    p.add_argument("--config", default=None, metavar="FILE", help="YAML file overriding the defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
    p.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                   help="fit the schedule to this budget and stop cleanly when it is spent")  # fmt: skip
    p.add_argument("--resume", default=None, metavar="RUN/last.pt", help="continue a run exactly where it stopped")
    p.add_argument("--darknet", default=None, metavar="PATH", help="backbone (+SPP) from darknet weights (full)")
    p.add_argument("--init", default=None, metavar="CKPT", help="initialise from another checkpoint's weights")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> None:
    from yolovis.config import Config, load_config, merge
    from yolovis.engine.train import train

    overrides = list(args.set)
    cfg = load_config(Config, args.config, overrides)
    flags: dict = {}
    if args.model is not None:
        flags.setdefault("model", {})["scale"] = args.model
    if args.img_size is not None:
        flags["img_size"] = list(args.img_size)
    for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size),
                       ("time_limit_minutes", args.time_limit)):  # fmt: skip
        if value is not None:
            flags.setdefault("train", {})[key] = value
    if args.extra:
        flags.setdefault("train", {})["extra_data"] = [*cfg.train.extra_data, *args.extra]
    cfg = merge(cfg, flags, "command line")
    if args.resume is not None:
        from yolovis.engine.checkpoint import read_checkpoint

        # A resumed run continues with the config it was started with (only the time limit may change).
        saved = read_checkpoint(args.resume)["config"]
        cfg = merge(Config(), saved, f"{args.resume}: config")
        if args.time_limit is not None:
            cfg.train.time_limit_minutes = args.time_limit
    train(cfg, args.ann, args.out, images_dir=args.images, val_ann=args.val, val_images=args.val_images,
          resume=args.resume, darknet=args.darknet, init_from=args.init, device=args.device)  # fmt: skip


# ----------------------------------------------------------------------------------------------- evaluate
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="official YouTube-VIS video AP/AR, per-class AP, tracking metrics, plots")
    p.add_argument("ann", metavar="ANN.json", help="YouTube-VIS annotation file (.json or .json.gz)")
    p.add_argument("results", metavar="RESULTS.json", help="YouTube-VIS results list (.json or .json.gz)")
    p.add_argument("--out", default=None, metavar="metrics.json", help="write all figures here (else print a table)")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PR curves, AP per class, confusion PNGs")
    p.add_argument("--track-score", type=float, default=0.0, metavar="S",
                   help="tracking metrics use result tracks of score >= S (default 0: all, as TrackEval)")  # fmt: skip
    p.add_argument("--no-tracking", action="store_true", help="skip HOTA/IDF1/IDSW/Frag")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> None:
    from yolovis.eval import ResultsError, evaluate_files, format_table

    try:
        tracking = not args.no_tracking
        metrics = evaluate_files(args.ann, args.results, out=args.out, plots=args.plots, tracking=tracking,
                                 track_score_threshold=args.track_score)  # fmt: skip
    except ResultsError as e:
        for problem in e.problems:  # every one, then the one-line summary from main()
            print(f"{args.results}: {problem}", file=sys.stderr)
        raise
    if args.out is None:
        print(format_table(metrics))
    else:
        print(f"AP {metrics['AP']:.4f}  AP50 {metrics['AP50']:.4f}  AR10 {metrics['AR10']:.4f}: wrote {args.out}")
    if args.plots is not None:
        print(f"plots in {args.plots}")


# --------------------------------------------------------------------------------------- track, predict
def _add_inference_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--score-threshold", type=float, default=None, help="default: the checkpoint's (0.05)")
    p.add_argument("--img-size", type=_size, default=None, help="network input, S or WxH (default: the training size)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    p.add_argument("--half", action="store_true", help="float16 on CUDA")
    p.add_argument("--batch", type=int, default=4, help="frames per network call")


def _inference_options(args: argparse.Namespace, stride: int = 1, video: bool = True):
    from yolovis.engine.track import TrackOptions

    if args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    return TrackOptions(stride=stride, score_threshold=args.score_threshold, img_size=args.img_size,
                        device=args.device, half=args.half, batch_size=args.batch, video=video)  # fmt: skip


def _add_track(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="segment and track the objects of a video file, a frame folder or a glob")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint, or a folder written by `yolovis export`")
    p.add_argument("source", metavar="SOURCE",
                   help="video file (mp4, avi, mkv, webm), folder of frames, glob, a URL PyAV opens (rtsp://, "
                   "http(s)://) or a camera (/dev/video0); Ctrl-C ends it with complete outputs")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="results.json, tracks.txt, overlay.mp4")
    p.add_argument("--stride", type=int, default=1, help="process every n-th frame (the others stay null)")
    p.add_argument("--no-video", action="store_true", help="skip DIR/overlay.mp4")
    _add_inference_options(p)
    p.set_defaults(handler=_track)


def _track(args: argparse.Namespace) -> None:
    import warnings

    from yolovis.engine.track import track_source

    with warnings.catch_warnings(record=True) as caught:  # a truncated video: one line, not a stack frame
        warnings.simplefilter("always", UserWarning)
        try:
            summary = track_source(
                args.checkpoint, args.source, args.out, _inference_options(args, args.stride, not args.no_video)
            )
        finally:
            for w in caught:
                print(f"yolovis track: warning: {w.message}", file=sys.stderr)
    note = " (the video was truncated: results cover the decoded frames)" if summary["truncated"] else ""
    if summary["interrupted"]:
        note = " (stopped by Ctrl-C: the outputs cover the frames processed until then)"
    print(f"{summary['frames']} frames, {summary['tracks']} tracks -> {args.out}{note}")
    # Ctrl-C is how a live source (URL, camera) ends: a success. A file stopped early is an interrupted run
    # (130, as a shell reports SIGINT), though its outputs are complete for the frames processed.
    return 130 if summary["interrupted"] and not summary["stream"] else 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="results for every video of a YouTube-VIS annotation file (submission)")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("ann", metavar="ANN.json", help="the videos to run on (labels are not needed)")
    p.add_argument("--images", default=None, help="image root (default: JPEGImages/ next to ANN.json)")
    p.add_argument("--out", required=True, metavar="results.json")
    p.add_argument("--zip", action="store_true", help="also write the server's archive (results.json at its root)")
    _add_inference_options(p)
    p.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> None:
    from yolovis.engine.predict import predict_file

    results = predict_file(args.checkpoint, args.ann, args.out, args.images, args.zip, _inference_options(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{len(results)} tracks -> {args.out}" + (" and its .zip" if args.zip else ""))


# ------------------------------------------------------------------------------------------------- export
def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="the network as ONNX or OpenVINO IR, in a folder track/predict/diagnose accept")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--format", required=True, choices=["onnx", "openvino"],
                   help="onnx (ONNX Runtime runs it) or openvino (OpenVINO IR: the fast one on CPUs)")  # fmt: skip
    p.add_argument("--img-size", type=_size, default=None,
                   help="network input, S or WxH (default: the checkpoint's); fixed in the export")  # fmt: skip
    p.add_argument("--out", default=None, metavar="PATH", help="the folder (default: NAME_onnx/ or NAME_openvino/ "
                   "beside the checkpoint)")  # fmt: skip
    p.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> None:
    from yolovis.export.folder import export_checkpoint

    summary = export_checkpoint(args.checkpoint, args.format, args.img_size, args.out)
    h, w = summary.input_size
    check = ("not checked (its runtime is not installed here)" if summary.max_abs_diff is None
             else f"max |difference| from PyTorch {summary.max_abs_diff:.1e}")  # fmt: skip
    print(f"{summary.network} ({w}x{h} input, fixed; {check}) -> use {summary.folder} as the checkpoint")


# ----------------------------------------------------------------------------------------------- diagnose
def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="frame AP, tracker video AP and perfect-association video AP, side by side")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("ann", metavar="ANN.json", help="annotated videos (YouTube-VIS, .json or .json.gz)")
    p.add_argument("--images", default=None, help="image root (default: JPEGImages/ next to ANN.json)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write diagnosis.json, results_tracker.json, results_oracle.json, config.yaml")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of the checkpoint, e.g. track.method=greedy")  # fmt: skip
    _add_inference_options(p)
    p.set_defaults(handler=_diagnose)


def _diagnose(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from yolovis.config import merge, parse_override, save_config
    from yolovis.data.annotations import load_vis_annotations
    from yolovis.engine.diagnose import diagnose, format_diagnosis
    from yolovis.engine.track import load_detector
    from yolovis.fileio import atomic_write_json

    detector = load_detector(args.checkpoint, _inference_options(args))
    for text in args.set:
        detector.config = merge(detector.config, parse_override(text), f"--set {text}")
    head = detector.model.assoc_head
    if head is not None and head.colour:  # the histogram has no weights: a checkpoint can take it up (or drop it)
        share = detector.config.model.assoc_histogram
        if detector.network is not None and head.histogram == 0 and share > 0:
            raise UserError(f"{args.checkpoint}: exported without the colour histogram (its graph does not output "
                            "the image); use --set model.assoc_histogram on the checkpoint instead")  # fmt: skip
        try:
            head.set_histogram(share)
        except ValueError as e:
            raise UserError(f"--set: {e}") from None
    total = load_vis_annotations(args.ann).num_frames
    with tqdm(total=total, desc="detect", unit="frame", dynamic_ncols=True) as bar:
        diagnosis, _ = diagnose(detector, args.ann, args.images, batch_size=args.batch, progress=bar.update)
    print(format_diagnosis(diagnosis.summary))
    if args.out is not None:
        out = Path(args.out)
        atomic_write_json(out / "results_tracker.json", diagnosis.results["tracker"])
        atomic_write_json(out / "results_oracle.json", diagnosis.results["oracle"])
        atomic_write_json(out / "diagnosis.json", diagnosis.summary, indent=2)
        save_config(detector.config, out / "config.yaml")
        print(f"wrote {out / 'diagnosis.json'} (and both results files)")


# --------------------------------------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic data -> train -> track -> official metrics, in about 10 minutes")
    p.add_argument("--out", default="demo_out", metavar="DIR", help="where everything goes (default: demo_out)")
    p.add_argument("--minutes", type=float, default=8.0, help="training time; the whole demo takes about 1 more")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> None:
    from yolovis.engine.demo import run_demo

    if args.minutes <= 0:
        raise UserError(f"--minutes must be positive, got {args.minutes}")
    run_demo(args.out, args.minutes, args.device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolovis",
        description="YoloV4+1 video instance segmentation and its greedy tracker (YouTube-VIS format).",
    )
    parser.add_argument("--version", action="version", version=f"yolovis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_info(sub)
    add_synth(sub)
    add_anchors(sub)
    _add_train(sub)
    _add_track(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_diagnose(sub)
    _add_export(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except UserError as e:
        print(f"yolovis {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"yolovis {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
