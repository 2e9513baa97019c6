"""``facelite detect``: faces and landmarks in image files and folders (any number of them)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..distributed import is_url
from ._common import add_model_options, default_workers, non_negative_int, open_jsonl, os_errors_as_messages

if TYPE_CHECKING:
    import numpy as np

    from ..detector import FaceDetector
    from ..face import Face

HELP = "detect faces and 5 landmarks in images"

DESCRIPTION = """\
Detect faces and 5 landmarks in image files. Folders are searched recursively
for images (.jpg .jpeg .png .webp .bmp .tif .tiff .gif).

Writes annotated copies with --out (or anonymised ones with --anonymize), one
JSON record per image with --json (a list, written at the end) and/or --jsonl
(one line per image, appended and flushed as each image is done), and a COCO
file with --coco; use - for standard output with --json/--jsonl. Images are read
and decoded by --workers threads ahead of the detector. With several images a
progress line (count, images/s, ETA) goes to standard error. --resume with
--jsonl skips the images already recorded in that file, so an interrupted run
continues where it stopped. Unreadable files are reported on standard error and
skipped; the exit code is then 1.
"""


def add_collection_options(p: argparse.ArgumentParser, resume: bool = True) -> None:
    """Options for walking large collections: --workers (--resume) --verbose --quiet."""
    p.add_argument(
        "--workers",
        type=non_negative_int,
        default=default_workers(),
        metavar="N",
        help="threads that read and decode images ahead of the detector; 0 = none (default: %(default)s)",
    )
    if resume:
        p.add_argument(
            "--resume",
            action="store_true",
            help="skip images already recorded in the --jsonl file (continue an interrupted run)",
        )
    p.add_argument("-v", "--verbose", action="store_true", help="print a line per image (default for a single image)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders; - reads one image from standard input")
    add_model_options(p)
    from ._common import add_max_pixels_option

    add_max_pixels_option(p)
    p.add_argument("--out", type=Path, metavar="DIR", help="write annotated images into DIR")
    p.add_argument("--json", metavar="FILE", help="write all records as one JSON list to FILE (- for stdout)")
    p.add_argument("--jsonl", metavar="FILE", help="append one JSON record per image to FILE (- for stdout)")
    p.add_argument("--coco", metavar="FILE", help="write the detections as a COCO keypoint-detection JSON file")
    p.add_argument(
        "--anonymize",
        choices=("blur", "pixelate", "fill"),
        help="with --out: write the images with the faces blurred/pixelated/filled instead of annotated",
    )
    add_collection_options(p)
    from .detect_ray import add_ray_options

    add_ray_options(p)
    p.set_defaults(func=run)


STDIN = "-"
"""The input name that reads one image from standard input (``./-`` names a file called ``-``)."""


def iter_images(paths: list[str]) -> Iterator[tuple[Path, Path]]:
    """``(file, name relative to its input)`` for every input: files as given, folders walked
    recursively (sorted) for files with an image extension, and ``-`` (standard input, at most
    once) as ``(Path("-"), Path("stdin.png"))``."""
    from ..imageio import IMAGE_EXTENSIONS

    if paths.count(STDIN) > 1:
        raise ValueError("standard input (-) can be given only once")
    for raw in paths:
        if raw == STDIN:
            yield Path(STDIN), Path("stdin.png")
            continue
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


def load_input(path: Path, max_pixels: int | None):
    """An input of :func:`iter_images` as an ``H x W x 3`` uint8 BGR array (standard input for
    ``-``); raises :class:`facelite.imageio.ImageLoadError` as :func:`facelite.load_image` does."""
    from ..imageio import ImageLoadError, decode_image, load_image

    if str(path) == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise ImageLoadError("- reads an image from standard input, which is a terminal here: "
                                 "pipe one in (cat photo.jpg | facelite detect -)")
        return decode_image(sys.stdin.buffer.read(), max_pixels=max_pixels, name="standard input")
    return load_image(path, max_pixels=max_pixels)


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


def _line_start(f, pos: int) -> int:
    """Offset of the start of the line whose last byte (its newline, or the last byte of an
    unfinished line) is at ``pos - 1``, searching back a block at a time."""
    end = pos - 1 if pos > 0 else 0  # that last byte is not the newline before the line
    while end > 0:
        start = max(0, end - 65536)
        f.seek(start)
        i = f.read(end - start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def resume_key(path: str | os.PathLike[str]) -> str:
    """The key under which ``--resume`` finds an image: its absolute path with symlinks resolved,
    so that ``a/x.jpg``, ``./a/x.jpg``, ``/abs/a/x.jpg`` and a path through a linked folder are
    the same image (a relative path recorded by an older run is taken relative to the current
    directory). Standard input (``-``) and a URL (``s3://...``, ``--ray``) are their own keys."""
    text = os.fspath(path)
    return text if text == STDIN or is_url(text) else os.path.realpath(text)


def done_keys(jsonl: Path, command: str, whole_images: bool = False) -> set[str]:
    """The :func:`resume_key` of every image :func:`_done_paths` finds in ``jsonl``."""
    return {resume_key(p) for p in _done_paths(jsonl, command, whole_images)}


def _done_paths(jsonl: Path, command: str, whole_images: bool = False) -> set[str]:
    """Paths recorded in an existing JSON Lines file; an unfinished last line (a run killed while
    writing it) is cut off so that new records start on a line of their own.

    ``whole_images``: the file has several lines per image, each image's written at once; with
    an unfinished last line, the complete lines of the last image before it are cut off too
    (they may belong to the same unfinished write), so that image is done again, whole.
    """
    import json

    from ..coco import read_jsonl

    if not jsonl.is_file():
        return set()
    with open(jsonl, "r+b") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(max(end - 1, 0))
        if end and f.read(1) != b"\n":
            pos = _line_start(f, end)
            last = None  # the image of the last complete line
            while whole_images and pos > 0:
                start = _line_start(f, pos)
                f.seek(start)
                path = json.loads(f.read(pos - start))["path"]
                if last is not None and path != last:
                    break
                last, pos = path, start
            f.truncate(pos)
            print(f"facelite {command}: removed an unfinished last line from {jsonl}", file=sys.stderr)
    done = set()
    for record in read_jsonl(jsonl):
        if isinstance(record, dict) and "path" in record:
            done.add(str(record["path"]))
    return done


@os_errors_as_messages
def run(args: argparse.Namespace) -> int:
    if args.ray or args.ray_address or args.ray_actors:  # the same records, computed by Ray actors (detect_ray.py)
        from .detect_ray import run_ray

        return run_ray(args)
    return process_images(args, command="detect")


def image_record(path: Path | str, image: np.ndarray, faces: list[Face], detector: FaceDetector,
                 model: dict | None = None) -> dict:
    """The JSON record of one image (``--json``/``--jsonl``/COCO), without the output-file key:
    ``path``, ``width``/``height`` of ``image`` (``H x W x 3``), the faces (``Face.to_dict``), the
    model, input size, tiling and the detector's ``last_timings`` (ms, rounded to µs)."""
    return {
        "path": str(path),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [f.to_dict() for f in faces],
        "model": model if model is not None else detector.model_record(),
        "input_size": detector.input_size,
        **detector.tile_record(),
        "timings_ms": {k: round(v, 3) for k, v in detector.last_timings.items()},
    }


def output_picture(image: np.ndarray, faces: list[Face], anonymize_method: str | None, margin: float = 0.15,
                   shape: str = "ellipse") -> np.ndarray:
    """The ``--out`` picture of one image (``H x W x 3`` uint8 BGR): the faces anonymised by
    ``anonymize_method`` (blur/pixelate/fill), or drawn when it is None."""
    if anonymize_method:
        from ..anonymize import anonymize

        return anonymize(image, faces, anonymize_method, margin=margin, shape=shape)
    from ..draw import draw_faces

    return draw_faces(image, faces)


def process_images(args: argparse.Namespace, command: str) -> int:
    """The image loop shared by ``facelite detect`` and ``facelite blur``."""
    from ..fileio import write_image
    from ..prefetch import prefetch_map
    from ._common import build_detector, model_label, strip_path_prefix

    anonymize_method = getattr(args, "anonymize", None)
    if anonymize_method and args.out is None:
        raise ValueError("--anonymize needs --out DIR (where the anonymised images are written)")
    if args.resume and (not args.jsonl or args.jsonl == "-"):
        raise ValueError("--resume needs --jsonl FILE: the finished images are read back from that file")

    detector = build_detector(args)
    model = detector.model_record()
    done_before = done_keys(Path(args.jsonl), command) if args.resume else set()

    images = list(iter_images(args.paths))
    used: set[Path] = set()
    todo: list[tuple[Path, Path | None]] = []
    for path, rel in images:  # output names are reserved for every input, in order, so a resumed run names alike
        target = _out_path(args.out, rel, used) if args.out is not None else None
        if resume_key(path) not in done_before:
            todo.append((path, target))
    outputs = RunOutputs(args, command, total=len(images), skipped_done=len(images) - len(todo))

    def load(item: tuple[Path, Path | None]):
        return load_input(item[0], detector.max_image_pixels)

    try:
        for (path, target), image in prefetch_map(load, todo, workers=args.workers):
            if isinstance(image, Exception):
                if not isinstance(image, ValueError):
                    raise image
                outputs.skip(path, strip_path_prefix(path, image))
                continue
            faces = detector.detect(image)
            record = image_record(path, image, faces, detector, model)
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                picture = output_picture(image, faces, anonymize_method,
                                         getattr(args, "margin", 0.15), getattr(args, "shape", "ellipse"))
                write_image(target, picture)
                record["anonymized" if anonymize_method else "annotated"] = str(target)
            outputs.add(path, record, detector.last_timings["total_ms"])
    finally:
        outputs.close()
    outputs.finish(model_label(detector))
    if not images:
        print(f"facelite {command}: no images found", file=sys.stderr)
        return 1
    return 1 if outputs.failed else 0


class RunOutputs:
    """What a ``detect`` / ``blur`` run writes, fed one image at a time in input order: a line of
    the JSON Lines file as each image is done (after its picture: a recorded image is a finished
    one), the ``--json`` list and ``--coco`` at the end, the progress line, the skipped files and
    the summary (on standard error). The plain loop and the Ray driver (``detect_ray.py``) share it."""

    def __init__(self, args: argparse.Namespace, command: str, total: int, skipped_done: int) -> None:
        import time

        from ..coco import CocoBuilder
        from ..progress import Progress

        self.args, self.command, self.skipped_done = args, command, skipped_done
        self.json_out: str | None = getattr(args, "json", None)
        self.coco_out: str | None = getattr(args, "coco", None)
        self.jsonl = open_jsonl(args.jsonl)
        stdout_busy = self.jsonl is sys.stdout or self.json_out == "-"
        self.verbose = (args.verbose or total == 1) and not stdout_busy
        self.records: list[dict] = []
        self.coco = CocoBuilder() if self.coco_out and not args.resume else None
        self.done = self.failed = self.n_faces = 0
        self.total_ms = 0.0
        self.t_start = time.perf_counter()
        self.bar = Progress(total=total, desc=command, unit="img", initial=skipped_done,
                            enabled=not args.quiet and total > 1, log_interval=10.0)
        if skipped_done:
            print(f"facelite {command}: resuming: {skipped_done} of {total} images already in {args.jsonl}",
                  file=sys.stderr)

    def skip(self, path: Path | str, message: str) -> None:
        """An image that could not be read: reported, counted, not recorded."""
        self.failed += 1
        self.bar.update(1)
        print(f"facelite {self.command}: skipped {path}: {message}", file=sys.stderr, flush=True)

    def add(self, path: Path | str, record: dict, detector_ms: float) -> None:
        """One finished image's record (:func:`image_record`, with its picture already written)."""
        import json

        n = len(record["faces"])
        self.done += 1
        self.n_faces += n
        self.total_ms += detector_ms
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(record) + "\n")
            self.jsonl.flush()
        if self.json_out:
            self.records.append(record)
        if self.coco is not None:
            self.coco.add_record(record)
        if self.verbose:
            print(f"{path}: {n} face{'s' if n != 1 else ''}", flush=True)
        self.bar.update(1, faces=self.n_faces)

    def close(self) -> None:
        """The progress line and the JSON Lines file (also after an error: what was written stays)."""
        self.bar.close()
        if self.jsonl is not None and self.jsonl is not sys.stdout:
            self.jsonl.close()

    def finish(self, how: str) -> None:
        """After a complete run: ``--json``, ``--coco`` and the summary line (``how``: the detector)."""
        import time

        write_collected(self.args, self.records, self.coco, self.json_out, self.coco_out)
        print(summary_line(self.command, self.done, self.skipped_done, self.n_faces, self.failed,
                           time.perf_counter() - self.t_start, self.total_ms, how), file=sys.stderr)


def write_collected(args: argparse.Namespace, records: list[dict], coco: Any, json_out: str | None,
                    coco_out: str | None) -> None:
    """After the image loop: ``--json`` (all records as one list) and ``--coco``; with
    ``--resume`` both hold what the JSON Lines file held before this run plus what it added."""
    import json

    from ..coco import CocoBuilder, read_jsonl
    from ..fileio import write_atomic

    if args.resume and (json_out or coco_out):
        previous = [r for r in read_jsonl(args.jsonl) if isinstance(r, dict) and "path" in r]
        if json_out:
            records = previous
        if coco_out:
            coco = CocoBuilder()
            for r in previous:
                coco.add_record(r)
    if json_out:
        text = json.dumps(records, indent=2) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
        else:
            target = Path(json_out)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, text)
    if coco is not None:
        coco.write(coco_out)


def summary_line(command: str, done: int, skipped_done: int, n_faces: int, failed: int, wall: float,
                 total_ms: float, how: str) -> str:
    """The last line of a run: images, faces, skipped files, time, rate, detector time per image."""
    per = f", {total_ms / done:.1f} ms/image in the detector" if done else ""
    rate = f", {done / wall:.1f} images/s" if done and wall > 0 else ""
    resumed = f" ({skipped_done} done before)" if skipped_done else ""
    return (f"facelite {command}: {done} image{'s' if done != 1 else ''}{resumed}, "
            f"{n_faces} face{'s' if n_faces != 1 else ''}"
            f"{f', {failed} skipped' if failed else ''} in {wall:.1f} s{rate}{per} ({how})")
