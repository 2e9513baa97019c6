"""Options and helpers shared by the commands that run the detector (detect, video, align, blur)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..imageheader import DEFAULT_MAX_PIXELS


def add_model_options(p: argparse.ArgumentParser, input_size: int = 640) -> None:
    """``--model --precision --input-size --score-threshold --nms-threshold --[no-]landmark-voting
    --[no-]box-voting --min-face-size --threads`` and the tile options."""
    p.add_argument(
        "--model",
        default="mobilenetv2-0.35",
        help="shipped model name (mobilenetv2-0.35, mobilenetv2-1.0) or path of a facelite .onnx (default: %(default)s)",
    )
    p.add_argument("--precision", default="float32", choices=("float32", "int8"), help="default: %(default)s")
    p.add_argument(
        "--input-size", type=int, default=input_size, help="longer side of the network input (default: %(default)s)"
    )
    p.add_argument("--score-threshold", type=float, default=0.5, help="minimum face score (default: %(default)s)")
    p.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: %(default)s)")
    add_voting_options(p)
    p.add_argument(
        "--min-face-size", type=float, default=0.0, metavar="PX",
        help="drop faces whose box is narrower or lower than PX pixels of the image (default: keep all)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: all cores)")
    add_tile_options(p)


def add_voting_options(p: argparse.ArgumentParser) -> None:
    """``--[no-]landmark-voting``, ``--[no-]box-voting`` (both on by default): each face's landmarks
    and box are the score-weighted mean over the candidates NMS merged into it."""
    p.add_argument(
        "--landmark-voting", action=argparse.BooleanOptionalAction, default=True,
        help="each face's landmarks are the score-weighted mean over the candidates NMS merged into it; "
        "--no-landmark-voting: the one candidate NMS kept (default: on)",
    )
    p.add_argument(
        "--box-voting", action=argparse.BooleanOptionalAction, default=True,
        help="the same for each face's box; --no-box-voting: the kept candidate's box (default: on)",
    )


def add_tile_options(p: argparse.ArgumentParser) -> None:
    """``--tile PX --tile-overlap FRAC``: tiled detection of small faces in large images."""
    p.add_argument(
        "--tile", type=int, default=None, metavar="PX",
        help="small faces in large images: also run the network on overlapping PX x PX tiles "
        "(PX = --input-size: full resolution) and merge (default: one pass over the whole image)",
    )
    p.add_argument(
        "--tile-overlap", type=float, default=0.25, metavar="FRAC",
        help="fraction of a tile shared with its neighbours, 0-0.75 (default: %(default)s)",
    )


def add_max_pixels_option(p: argparse.ArgumentParser) -> None:
    """``--max-pixels N``: the size limit of the image files a command reads (docs/INPUT.md)."""
    p.add_argument(
        "--max-pixels", type=non_negative_int, default=None, metavar="N",
        help="refuse image files of more than N pixels (width x height), read from the header before "
        f"decoding; 0: no limit (default: {DEFAULT_MAX_PIXELS}, which takes 200-megapixel photos)",
    )


def max_pixels_of(args: argparse.Namespace) -> int | None:
    """The image size limit of ``--max-pixels`` (the library default when the option is absent or
    not given; ``None`` for 0, no limit)."""
    from ..imageio import DEFAULT_MAX_PIXELS

    value = getattr(args, "max_pixels", None)
    if value is None:
        return DEFAULT_MAX_PIXELS
    return None if value == 0 else int(value)


def build_detector(args: argparse.Namespace, **extra):
    """A FaceDetector from the common model options (and ``--max-pixels`` where the command has
    it); ``extra`` adds other constructor arguments."""
    from ..detector import FaceDetector

    if "max_image_pixels" not in extra:
        extra["max_image_pixels"] = max_pixels_of(args)
    return FaceDetector(
        model=args.model,
        precision=args.precision,
        input_size=args.input_size,
        score_threshold=args.score_threshold,
        nms_threshold=args.nms_threshold,
        threads=args.threads,
        min_face_size=getattr(args, "min_face_size", 0.0),  # `facelite eval` has no such option
        tile_size=args.tile,
        tile_overlap=args.tile_overlap,
        landmark_voting=getattr(args, "landmark_voting", True),
        box_voting=getattr(args, "box_voting", True),
        **extra,
    )


def model_label(detector) -> str:
    """``name/precision, input N[, tiles T]`` (without ``/precision`` when the file records
    none), for summary lines."""
    precision = f"/{detector.precision}" if detector.precision else ""
    tiles = f", tiles {detector.tile_size}" if detector.tile_size else ""
    return f"{detector.name}{precision}, input {detector.input_size}{tiles}"


def open_jsonl(path: str | None):
    """The JSON Lines output of ``--jsonl``: None, stdout for ``-``, else the file opened for appending."""
    if not path:
        return None
    if path == "-":
        return sys.stdout
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = _int_at_least(1)
"""argparse type: an integer >= 1."""
non_negative_int = _int_at_least(0)
"""argparse type: an integer >= 0."""


def strip_path_prefix(path: object, exc: BaseException) -> str:
    """The exception's message without a leading ``"<path>: "`` (the caller names the path itself)."""
    reason = str(exc)
    prefix = f"{path}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def warn(command: str, message: str) -> None:
    print(f"facelite {command}: {message}", file=sys.stderr, flush=True)


def os_errors_as_messages(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn operating-system errors (an output folder that cannot be created, a full disk, no
    permission) into a one-line error from the ``facelite`` dispatcher instead of a traceback."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except OSError as exc:
            # facelite's own errors (e.g. a missing model) carry their message; a closed stdout
            # is the dispatcher's to handle
            if exc.strerror is None or isinstance(exc, BrokenPipeError):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            raise RuntimeError(f"{where}{exc.strerror}") from None

    return wrapper
