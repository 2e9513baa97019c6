"""``facelite detect``: faces and landmarks in image files and folders."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterator

HELP = "detect faces and 5 landmarks in images"

DESCRIPTION = """\
Detect faces and 5 landmarks in image files. Folders are searched recursively
for images (.jpg .jpeg .png .webp .bmp .tif .tiff .gif).

Writes annotated copies with --out, one JSON record per image with --json (a
list, written at the end) and/or --jsonl (one line per image, appended and
flushed as each image is done); use - for standard output. Unreadable files are
reported on standard error and skipped; the exit code is then 1.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders")
    p.add_argument(
        "--model",
        default="mobilenetv2-0.35",
        help="shipped model name (mobilenetv2-0.35, mobilenetv2-1.0) or path of a facelite .onnx (default: %(default)s)",
    )
    p.add_argument("--precision", default="float32", choices=("float32", "int8"), help="default: %(default)s")
    p.add_argument("--input-size", type=int, default=640, help="longer side of the network input (default: %(default)s)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="minimum face score (default: %(default)s)")
    p.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network (default: all cores)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write annotated images into DIR")
    p.add_argument("--json", metavar="FILE", help="write all records as one JSON list to FILE (- for stdout)")
    p.add_argument("--jsonl", metavar="FILE", help="append one JSON record per image to FILE (- for stdout)")
    p.set_defaults(func=run)


def iter_images(paths: list[str]) -> Iterator[tuple[Path, Path]]:
    """``(file, name relative to its input)`` for every input: files as given, folders walked
    recursively (sorted) for files with an image extension."""
    from ..imageio import IMAGE_EXTENSIONS

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        f = Path(root) / name
                        yield f, f.relative_to(p)
        else:
            yield p, Path(p.name)


def _out_path(out_dir: Path, rel: Path, used: set[Path]) -> Path:
    from ..imageio import IMAGE_EXTENSIONS

    suffix = rel.suffix.lower() if rel.suffix.lower() in IMAGE_EXTENSIONS and rel.suffix.lower() != ".gif" else ".png"
    target = out_dir / rel.with_suffix(suffix)
    stem, n = target.with_suffix(""), 1
    while target in used:  # two inputs with the same name
        n += 1
        target = Path(f"{stem}-{n}{suffix}")
    used.add(target)
    return target


def run(args: argparse.Namespace) -> int:
    import json
    import time

    import cv2

    from ..detector import FaceDetector
    from ..draw import draw_faces
    from ..imageio import load_image

    detector = FaceDetector(
        model=args.model,
        precision=args.precision,
        input_size=args.input_size,
        score_threshold=args.score_threshold,
        nms_threshold=args.nms_threshold,
        threads=args.threads,
    )
    model = {
        "name": detector.name,
        "precision": detector.precision,
        "sha256": detector.model_info.sha256[:12],
    }
    jsonl = None
    if args.jsonl:
        if args.jsonl == "-":
            jsonl = sys.stdout
        else:
            Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
            jsonl = open(args.jsonl, "a", encoding="utf-8")
    records: list[dict] = []
    used: set[Path] = set()
    done = failed = n_faces = 0
    total_ms = 0.0
    t_start = time.perf_counter()
    try:
        for path, rel in iter_images(args.paths):
            try:
                image = load_image(path, max_pixels=detector.max_image_pixels)
            except ValueError as exc:
                failed += 1
                reason = str(exc)
                prefix = f"{path}: "
                if reason.startswith(prefix):
                    reason = reason[len(prefix):]
                print(f"facelite detect: skipped {path}: {reason}", file=sys.stderr, flush=True)
                continue
            faces = detector.detect(image)
            timings = {k: round(v, 3) for k, v in detector.last_timings.items()}
            total_ms += detector.last_timings["total_ms"]
            record = {
                "path": str(path),
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "faces": [f.to_dict() for f in faces],
                "model": model,
                "input_size": detector.input_size,
                "timings_ms": timings,
            }
            done += 1
            n_faces += len(faces)
            if args.out is not None:
                target = _out_path(args.out, rel, used)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(target), draw_faces(image, faces)):
                    raise RuntimeError(f"could not write {target}")
                record["annotated"] = str(target)
            if jsonl is not None:
                jsonl.write(json.dumps(record) + "\n")
                jsonl.flush()
            if args.json:
                records.append(record)
            if jsonl is not sys.stdout and args.json != "-":
                print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}", flush=True)
    finally:
        if jsonl is not None and jsonl is not sys.stdout:
            jsonl.close()
    if args.json:
        text = json.dumps(records, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            target = Path(args.json)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
    wall = time.perf_counter() - t_start
    per = f", {total_ms / done:.1f} ms/image in the detector" if done else ""
    print(
        f"facelite detect: {done} image{'s' if done != 1 else ''}, {n_faces} face{'s' if n_faces != 1 else ''}"
        f"{f', {failed} skipped' if failed else ''} in {wall:.1f} s{per} "
        f"({model['name']}/{model['precision'] or '?'}, input {detector.input_size})",
        file=sys.stderr,
    )
    if done == 0 and failed == 0:
        print("facelite detect: no images found", file=sys.stderr)
        return 1
    return 1 if failed else 0
