"""``facelite detect --ray``: the records of ``facelite detect``, computed by Ray Data actors.

The driver (this process) lists the inputs, skips what ``--resume`` finds in the JSONL file,
and writes every output (JSONL, JSON, COCO, the ``--out`` pictures) in input order; the actors
read and decode the images, run one detector each and return, per image, the very record
``facelite detect`` writes (built by the same :func:`~facelite.commands.detect.image_record`) and
the encoded ``--out`` picture (drawn by the same :func:`~facelite.commands.detect.output_picture`).
Without ``--ray-address`` a local Ray instance is started for the run and stopped after it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..distributed import RAY_INSTALL, FaceDetectorUDF, is_url
from ._common import positive_int

BATCH_SIZE = 4
"""Images per actor call: small, so that a slow image holds back little behind it."""


def add_ray_options(p: argparse.ArgumentParser) -> None:
    """``--ray --ray-address --ray-actors`` for ``facelite detect``."""
    g = p.add_argument_group(f"Ray: many cores or machines (the ray extra: {RAY_INSTALL})")
    g.add_argument("--ray", action="store_true",
                   help="run the detector in Ray actors (a local Ray instance, or the cluster of --ray-address); "
                   "PATH may then also be a URL (s3://bucket/folder/, gs://..., file:///...: read through "
                   "pyarrow.fs by the actors). --threads is per actor (default 1). docs/SCALE.md")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="join this Ray cluster (auto: the one `ray start` runs here; ray://host:10001: a remote "
                   "one) instead of starting a local instance")
    g.add_argument("--ray-actors", type=positive_int, metavar="N",
                   help="detector actors (default: the cluster's CPUs / --threads)")


class RecordUDF(FaceDetectorUDF):
    """Per image: ``record`` (the JSON line of ``facelite detect``, without the output-file key),
    ``picture`` (the ``--out`` image, encoded in the format of its output name, or ``b""``),
    ``total_ms`` and ``error`` (``""`` or why the image was skipped)."""

    def __init__(self, detector: Any, picture: dict[str, Any] | None = None, base_dir: str | None = None) -> None:
        super().__init__(detector, base_dir=base_dir)
        self.picture = picture
        self.model = self.detector.model_record()

    def result(self, path: str, image: Any) -> dict[str, Any]:
        from .detect import image_record

        faces = self.detector.detect(image)
        record = image_record(path, image, faces, self.detector, self.model)
        return {"record": json.dumps(record), "picture": self._encode(path, image, faces),
                "total_ms": float(self.detector.last_timings["total_ms"]), "error": ""}

    def failure(self, path: str, message: str) -> dict[str, Any]:
        return {"record": "", "picture": b"", "total_ms": 0.0, "error": message}

    def _encode(self, path: str, image: Any, faces: list) -> bytes:
        if self.picture is None:
            return b""
        from ..fileio import encode_image
        from .detect import _out_path, output_picture

        suffix = _out_path(Path("."), Path(Path(path).name), set()).suffix  # as the output name has it
        return encode_image(output_picture(image, faces, **self.picture), suffix.lower())


def _connect(address: str | None) -> bool:
    """Connect to Ray (a new local instance without an address); True when this call did it
    (and the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, configure_logging=True)
    except (ConnectionError, TimeoutError) as exc:
        raise RuntimeError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    return True


def _quiet_ray_data() -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # records in input order, as without Ray
    ctx.enable_progress_bars = False  # facelite's own progress line
    ctx.print_on_execution_start = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_ray(args: argparse.Namespace, command: str = "detect") -> int:
    """``facelite detect ... --ray``; exit codes as without Ray, 2 when Ray is not installed."""
    if not args.ray:
        raise ValueError("--ray-address and --ray-actors go with --ray")
    try:
        from ..distributed import require_ray

        ray = require_ray()
    except ImportError:
        print(f"facelite {command}: --ray needs Ray Data, which is not installed: {RAY_INSTALL}", file=sys.stderr)
        return 2
    if args.anonymize and args.out is None:
        raise ValueError("--anonymize needs --out DIR (where the anonymised images are written)")
    if args.resume and (not args.jsonl or args.jsonl == "-"):
        raise ValueError("--resume needs --jsonl FILE: the finished images are read back from that file")
    from .detect import STDIN

    if STDIN in args.paths:
        raise ValueError("--ray reads files and URLs, not standard input (-)")
    urls = [p for p in args.paths if is_url(p)]
    if urls and len(urls) != len(args.paths):
        raise ValueError("with --ray, give either local paths or URLs (s3://...), not both")
    if args.threads is None:
        args.threads = 1  # per actor: the actors, not the threads, use the cores
    started = _connect(args.ray_address)
    try:
        _quiet_ray_data()
        return _run(args, command, ray, urls)
    finally:
        if started:
            ray.shutdown()


def _run(args: argparse.Namespace, command: str, ray: Any, urls: list[str]) -> int:
    from ..distributed import default_concurrency, list_url, map_detector
    from ..imageio import IMAGE_EXTENSIONS
    from ._common import build_detector, model_label, strip_path_prefix
    from .detect import RunOutputs, _out_path, done_keys, iter_images, resume_key

    detector = build_detector(args)
    done_before = done_keys(Path(args.jsonl), command) if args.resume else set()
    used: set[Path] = set()
    targets: list[Path | None] = []  # of the images to do, in order
    if urls:  # listed here through pyarrow's file systems (what Ray reads with), sorted
        images: list[tuple[Any, Path]] = [(u, Path(rel)) for url in urls for u, rel in list_url(url, IMAGE_EXTENSIONS)]
    else:  # listed exactly as without Ray
        images = list(iter_images(args.paths))
    todo = []
    for path, rel in images:  # output names are reserved for every input, in order, so a resumed run names alike
        target = _out_path(args.out, rel, used) if args.out is not None else None
        if resume_key(str(path)) not in done_before:
            todo.append(str(path))
            targets.append(target)
    total, skipped_done = len(images), len(images) - len(todo)
    # the actors read the files (local paths: from the node's file system; URLs: through pyarrow)
    ds = ray.data.from_items([{"path": p, "index": i} for i, p in enumerate(todo)]) if todo else None
    actors = args.ray_actors or default_concurrency(args.threads)
    picture = None
    if args.out is not None:
        picture = {"anonymize_method": args.anonymize, "margin": getattr(args, "margin", 0.15),
                   "shape": getattr(args, "shape", "ellipse")}
    if ds is not None:
        ds = map_detector(ds, RecordUDF, {"detector": detector, "picture": picture, "base_dir": os.getcwd()},
                          concurrency=actors, threads=args.threads, batch_size=BATCH_SIZE)

    outputs = RunOutputs(args, command, total=total, skipped_done=skipped_done)
    try:
        for row in ds.iter_rows() if ds is not None else ():
            path = str(row["path"])
            if row["error"]:
                outputs.skip(path, strip_path_prefix(path, row["error"]))
                continue
            record = json.loads(row["record"])
            target = targets[int(row["index"])]
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(bytes(row["picture"]))
                record["anonymized" if args.anonymize else "annotated"] = str(target)
            outputs.add(path, record, float(row["total_ms"]))
    finally:
        outputs.close()
    outputs.finish(f"{model_label(detector)}; Ray, {actors} actor{'s' if actors != 1 else ''} x {args.threads} "
                   f"thread{'s' if args.threads != 1 else ''}")
    if total == 0:
        print(f"facelite {command}: no images found", file=sys.stderr)
        return 1
    return 1 if outputs.failed else 0

