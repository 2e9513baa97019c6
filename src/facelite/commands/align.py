"""``facelite align``: aligned face crops (ArcFace 5-point template) from images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import add_model_options, open_jsonl, os_errors_as_messages, positive_int

HELP = "write aligned face crops (ArcFace 112x112 template)"

DESCRIPTION = """\
Detect the faces in image files (folders are searched recursively) and write
each one, warped by the similarity transform that puts its 5 landmarks on the
ArcFace template, as a SIZE x SIZE image into --out: <name>_<k>.png for the k-th
face of <name> (0 = highest score), keeping sub-folders. --jsonl records each
crop with its face and the 2x3 matrix from image to crop pixels, the lines of
one image written together; --resume with --jsonl skips the images already
recorded there (images without a face are detected again). Unreadable files are
reported and skipped (exit code 1).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from .detect import add_collection_options

    p = subparsers.add_parser(
        "align", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("paths", nargs="+", metavar="INPUT", help="image files and/or folders; - reads one image from standard input")
    p.add_argument("--out", type=Path, metavar="DIR", required=True, help="write the crops into DIR")
    p.add_argument("--size", type=int, default=112, help="crop side in pixels; the template scales (default: 112)")
    p.add_argument("--max-faces", type=positive_int, metavar="N", help="at most N faces per image (highest scores)")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="crop file format (default: png)")
    p.add_argument("--jsonl", metavar="FILE", help="append one JSON line per crop to FILE (- for stdout)")
    add_model_options(p)
    from ._common import add_max_pixels_option

    add_max_pixels_option(p)
    add_collection_options(p)
    p.set_defaults(func=run)


@os_errors_as_messages
def run(args: argparse.Namespace) -> int:
    import json
    import time

    from ..alignment import align
    from ..fileio import write_image
    from ..prefetch import prefetch_map
    from ..progress import Progress
    from ._common import build_detector, strip_path_prefix
    from .detect import _out_path, done_keys, iter_images, load_input, resume_key

    if not 8 <= args.size <= 4096:
        raise ValueError(f"--size must be from 8 to 4096, got {args.size}")
    if args.resume and (not args.jsonl or args.jsonl == "-"):
        raise ValueError("--resume needs --jsonl FILE: the finished images are read back from that file")
    detector = build_detector(args)
    done_before = done_keys(Path(args.jsonl), "align", whole_images=True) if args.resume else set()
    images = list(iter_images(args.paths))
    used: set[Path] = set()
    # output names are reserved for every input, in order, so a resumed run names alike
    todo = [(path, _out_path(args.out, rel.with_suffix("." + args.format), used)) for path, rel in images]
    todo = [(path, base) for path, base in todo if resume_key(path) not in done_before]
    if done_before:
        print(f"facelite align: {len(images) - len(todo)} of {len(images)} images already in {args.jsonl}",
              file=sys.stderr)
    jsonl = open_jsonl(args.jsonl)
    verbose = (args.verbose or len(images) == 1) and jsonl is not sys.stdout
    done = failed = crops = 0
    t0 = time.perf_counter()
    bar = Progress(total=len(todo), desc="align", unit="img", enabled=not args.quiet and len(images) > 1)

    def load(item: tuple[Path, Path]):
        return load_input(item[0], detector.max_image_pixels)

    try:
        for (path, base), image in prefetch_map(load, todo, workers=args.workers):
            bar.update(1)
            if isinstance(image, Exception):
                if not isinstance(image, ValueError):
                    raise image
                failed += 1
                print(f"facelite align: skipped {path}: {strip_path_prefix(path, image)}", file=sys.stderr, flush=True)
                continue
            done += 1
            faces = detector.detect(image)
            if args.max_faces:
                faces = faces[: args.max_faces]
            lines = []
            for k, face in enumerate(faces):
                crop, matrix = align(image, face, args.size, return_matrix=True)
                target = base.with_name(f"{base.stem}_{k}{base.suffix}")
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(target, crop)
                crops += 1
                record = {"path": str(path), "face": k, "crop": str(target), "size": args.size}
                record.update(face.to_dict())
                record["matrix"] = [[round(float(v), 6) for v in row] for row in matrix]
                lines.append(json.dumps(record) + "\n")
            if jsonl is not None and lines:
                # all of an image's lines at once, after its crops: a resumed run that finds the
                # image recorded finds all of it (a line cut by a kill is removed on --resume)
                jsonl.write("".join(lines))
                jsonl.flush()
            if verbose:
                print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''} aligned", flush=True)
    finally:
        bar.close()
        if jsonl is not None and jsonl is not sys.stdout:
            jsonl.close()
    print(
        f"facelite align: {crops} crop{'s' if crops != 1 else ''} of {args.size}x{args.size} from {done} "
        f"image{'s' if done != 1 else ''}{f', {failed} skipped' if failed else ''} in "
        f"{time.perf_counter() - t0:.1f} s, written to {args.out}",
        file=sys.stderr,
    )
    if not images:
        print("facelite align: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0
