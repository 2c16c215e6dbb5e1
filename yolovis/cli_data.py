"""The data commands of `yolovis`: `synth` (synthetic YouTube-VIS data) and `anchors` (IoU k-means).

Added to the parser by `yolovis/cli.py` (kept apart so that neither file passes ~400 lines); heavy imports happen in
the handlers, so that `yolovis --help` answers at once.
"""

from __future__ import annotations

import argparse


# -------------------------------------------------------------------------------------------------- synth
def _frame_size(text: str) -> tuple[int, int]:
    """'320x240' (W x H) -> (320, 240); any positive size (frames, not network inputs)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size WxH") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return w, h


def add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset in the YouTube-VIS layout")
    p.add_argument("out", help="output folder: OUT/JPEGImages/<video>/<frame>.jpg and OUT/instances.json")
    p.add_argument("--videos", type=int, default=10)
    p.add_argument("--frames", type=int, default=None, help="frames per video (20; 60 with --hard)")
    p.add_argument("--classes", type=int, default=3, help="number of object classes (1 to 8)")
    p.add_argument("--size", type=_frame_size, default=(320, 240), help="frame size WxH (default 320x240)")
    p.add_argument("--seed", type=int, default=0)
    hard = p.add_argument_group("harder videos, for trackers (all off by default)")
    hard.add_argument("--hard", action="store_true",
                      help="60 frames, 4-8 bouncing objects, fast motion, crowds 0.5, exits 0.3, 2 occluders, "
                           "instances of a class told apart by their second colour (the options below and "
                           "--frames override it)")  # fmt: skip
    hard.add_argument("--objects", type=_range(int), default=None, metavar="MIN-MAX", help="objects per video (1-4)")
    hard.add_argument("--speed", type=_range(float), default=None, metavar="MIN-MAX",
                      help="speed per frame, fraction of the frame diagonal (0.01-0.035)")  # fmt: skip
    hard.add_argument("--crowd", type=float, default=None, metavar="P", help="videos whose objects share one class")
    hard.add_argument("--exits", type=float, default=None, metavar="P", help="objects that leave and come back")
    hard.add_argument("--occluders", type=int, default=None, metavar="N", help="static bars hiding objects")
    hard.add_argument("--variety", type=float, default=None, metavar="V",
                      help="0-1: how far same-class objects' second colours differ (appearance)")  # fmt: skip
    p.set_defaults(handler=_synth)


def _range(kind: type):
    def parse(text: str) -> tuple:
        try:
            low, high = (kind(v) for v in text.split("-")) if "-" in text else (kind(text),) * 2
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a range MIN-MAX") from None
        return low, high

    return parse


def _synth(args: argparse.Namespace) -> None:
    import dataclasses

    from yolovis.data.synth import HARD, SynthConfig, generate

    w, h = args.size
    options = dict(HARD) if args.hard else {}
    if args.frames is not None:
        options["frames"] = args.frames
    for key, value in (("crowd_prob", args.crowd), ("exit_prob", args.exits), ("occluders", args.occluders),
                       ("speed", args.speed), ("instance_variety", args.variety)):  # fmt: skip
        if value is not None:
            options[key] = value
    if args.objects is not None:
        options["min_objects"], options["max_objects"] = args.objects
    cfg = dataclasses.replace(SynthConfig(videos=args.videos, classes=args.classes, width=w, height=h,
                                          seed=args.seed), **options)  # fmt: skip
    data = generate(args.out, cfg)
    n_frames = sum(v["length"] for v in data["videos"])
    print(f"wrote {len(data['videos'])} videos, {n_frames} frames, {len(data['annotations'])} tracks to {args.out}")


# ------------------------------------------------------------------------------------------------ anchors
def add_anchors(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anchors", help="fit anchors to a dataset's boxes (IoU k-means), write them as a config")
    p.add_argument("ann", help="YouTube-VIS annotation file (.json or .json.gz)")
    p.add_argument("--per-level", type=int, default=6, help="anchors per level (4 levels)")
    p.add_argument("--img-size", type=int, default=416, help="square network input S the anchors are for")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="anchors.yaml", help="YAML for `--config` (model.anchors, anchor_img_size)")
    p.set_defaults(handler=_anchors)


def _anchors(args: argparse.Namespace) -> None:
    from yolovis.data.anchors_kmeans import fit_anchors, write_anchor_config
    from yolovis.data.annotations import load_vis_annotations
    from yolovis.data.letterbox import check_input_size

    check_input_size(args.img_size, args.img_size)
    fit = fit_anchors(load_vis_annotations(args.ann), args.per_level, args.img_size, seed=args.seed)
    for level, anchors in enumerate(fit.per_level()):
        print(f"level {level} (stride {4 << level:>2}): " + "  ".join(f"{w:g}x{h:g}" for w, h in anchors))
    print(f"mean best IoU {fit.mean_best_iou:.3f} over {fit.num_boxes} boxes (input {args.img_size})")
    write_anchor_config(fit, args.img_size, args.out)
    print(f"wrote {args.out}")
