"""``facelite blur``: anonymise images by blurring, pixelating or filling the faces."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_model_options, os_errors_as_messages
from .detect import add_collection_options, process_images

HELP = "blur or pixelate the faces in images (anonymisation)"

DESCRIPTION = """\
Detect the faces in image files (folders are searched recursively) and write
copies into --out with every face blurred, pixelated or filled. Only the pixels
inside each face's region change: the box grown by --margin on each side, as an
ellipse (default) or the whole rectangle. A lower --score-threshold hides more
doubtful faces too. --jsonl records what was found (and with --resume skips
images already done). Unreadable files are reported and skipped (exit code 1).
For videos use: facelite video SOURCE --out out.mp4 --anonymize blur
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "blur", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders; - reads one image from standard input")
    p.add_argument("--out", type=Path, metavar="DIR", required=True, help="write the anonymised images into DIR")
    p.add_argument(
        "--method", dest="anonymize", choices=("blur", "pixelate", "fill"), default="blur", help="default: %(default)s"
    )
    p.add_argument(
        "--margin", type=float, default=0.15,
        help="grow each face box by this fraction of its size on every side (default: %(default)s)",
    )
    p.add_argument("--shape", choices=("ellipse", "box"), default="ellipse", help="region shape (default: %(default)s)")
    p.add_argument("--jsonl", metavar="FILE", help="append one JSON record per image to FILE (- for stdout)")
    add_model_options(p)
    from ._common import add_max_pixels_option

    add_max_pixels_option(p)
    add_collection_options(p)
    p.set_defaults(func=run)


@os_errors_as_messages
def run(args: argparse.Namespace) -> int:
    if not args.margin >= 0:
        raise ValueError(f"--margin must be >= 0, got {args.margin}")
    return process_images(args, command="blur")
