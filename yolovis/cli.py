"""The `yolovis` command: one subcommand per job.

Each subcommand has a small `_add_<name>` function that declares its options and a handler that calls the
library. Heavy imports (torch) happen inside the handlers so that `yolovis --help` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from yolovis import __version__
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
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise argparse.ArgumentTypeError(f"{text!r}: the network input must be a positive multiple of 32")
    return h, w


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolovis",
        description="YoloV4+1 video instance segmentation and its greedy tracker (YouTube-VIS format).",
    )
    parser.add_argument("--version", action="version", version=f"yolovis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_info(sub)
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
