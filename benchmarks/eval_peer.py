"""Evaluate a third-party (peer) detector with facelite's evaluation code.

    python -m benchmarks.eval_peer retinaface --input-size 640
    python -m benchmarks.eval_peer retinaface --input-size 320 --json out/rf320.json --plot out/rf320.png
    python -m benchmarks.eval_peer retinaface --task landmarks --input-size 320
    python -m benchmarks.eval_peer yunet-n --input-size 320      # any name of benchmarks.registry
    python -m benchmarks.eval_peer yunet-n --task labels --labels val.txt --images DIR --cache yunet-n.jsonl

``--task labels`` runs the peer on the images of a label file (RetinaFace label.txt, WIDER txt or
COCO) and scores it as ``facelite eval labels`` does (the same function); ``--cache`` keeps its
detections as JSON Lines, which ``facelite eval labels LABELS --predictions FILE`` also scores.

Fixed-input peers take only their own size (ultralight-rfb-320 / -640, yolo5face-0.5g: 320;
blazeface-short / -full: 320, the table column, though their networks take 128 / 192).

WIDER FACE AP on the dev split (official algorithm, score threshold 0.02, NMS 0.4, at most
750 faces per image, longer side = input size, single-threaded ONNX Runtime), or landmark
error on the held-out crops (score threshold 0.5 unless given).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _builder(name: str) -> Callable[[argparse.Namespace, float], Any]:
    def build(args: argparse.Namespace, score_threshold: float) -> Any:
        from .registry import ENTRIES

        return ENTRIES[name].build(args.input_size, score_threshold, args.nms_threshold, args.threads,
                                   args.interpolation)

    return build


def _peers() -> dict[str, Callable[[argparse.Namespace, float], Any]]:
    from .registry import ENTRIES

    table = {name: _builder(name) for name in ENTRIES}
    table["retinaface"] = _builder("retinaface-mnet0.25")  # the original short name
    return table


PEERS: dict[str, Callable[[argparse.Namespace, float], Any]] = _peers()
"""``name -> (args, score threshold) -> detector``: every entry of :mod:`benchmarks.registry`
(facelite's shipped models included, for a like-for-like run), plus ``retinaface``."""


def _interpolation(value: str) -> int | str:
    import cv2

    table = {"auto": "auto", "linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}
    if value not in table:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(table)}")
    return table[value]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.eval_peer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("peer", choices=sorted(PEERS))
    p.add_argument("--task", choices=("widerface", "landmarks", "labels"), default="widerface")
    p.add_argument("--labels", type=Path, default=None, help="--task labels: the label file")
    p.add_argument("--images", type=Path, default=None, help="--task labels: its image folder")
    p.add_argument("--input-size", type=int, default=640)
    p.add_argument("--score-threshold", type=float, default=None,
                   help="default 0.02 for widerface, 0.5 for landmarks")
    p.add_argument("--nms-threshold", type=float, default=0.4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--interpolation", type=_interpolation, default="auto",
                   help="resize: auto (facelite's policy: area when shrinking > 2x, else linear), linear, area, cubic")
    p.add_argument("--split-dir", type=Path, default=None)
    p.add_argument("--cache", type=Path, default=None, help="per-image prediction cache (resumable)")
    p.add_argument("--submission", type=Path, default=None, help="also write a WIDER submission folder")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", default=None, help="write results as JSON (- for stdout)")
    p.add_argument("--plot", default=None, help="PNG: PR curves (widerface) or CED curve (landmarks)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from facelite.evaluation import widerface as wf

    if args.task == "widerface":
        score = 0.02 if args.score_threshold is None else args.score_threshold
        det = PEERS[args.peer](args, score)
        split_dir = args.split_dir or wf.default_split_dir()
        names = wf.read_image_list(split_dir)[: args.limit]
        settings = {**det.settings(), "model_sha256": wf.file_sha256(det.model_path)}
        run = wf.run_detector_on_split(det, split_dir, names, score_threshold=score, cache_dir=args.cache,
                                       cache_settings=settings, show_progress=not args.quiet)
        if args.submission:
            wf.write_submission(run.predictions, args.submission)
        result = wf.evaluate_widerface(run.predictions, None, names)
        title = f"{det.name} @{args.input_size}"
        print(result.table(title))
        print(f"{run.images_per_second:.2f} images/s ({args.threads} thread(s)); "
              f"detection {run.detect_seconds:.1f} s, wall {run.wall_seconds:.1f} s")
        out = {"task": "widerface", "peer": args.peer, "split_dir": str(split_dir), "settings": settings,
               **result.to_dict(), "timing": run.to_dict()}
        if args.plot:
            from facelite.evaluation.plots import plot_pr_curves

            plot_pr_curves({title: result}, args.plot, title=f"WIDER FACE, {Path(split_dir).name} split")
    elif args.task == "labels":
        from facelite.evaluation import labels as lb

        if args.labels is None:
            raise ValueError("--task labels needs --labels FILE")
        score = 0.02 if args.score_threshold is None else args.score_threshold
        det = PEERS[args.peer](args, score)
        samples = lb.read_labels(args.labels, args.images)[: args.limit]
        settings = {**det.settings(), "model_sha256": wf.file_sha256(det.model_path)}
        found, skipped, seconds = lb.run_detector_on_labels(det, samples, cache=args.cache, cache_settings=settings,
                                                            show_progress=not args.quiet)
        result = lb.evaluate_labels(samples, found, skipped=skipped)
        title = f"{det.name} @{args.input_size}"
        print(result.table(f"{title} on {args.labels}"))
        out = {"task": "labels", "peer": args.peer, "labels": str(args.labels), "settings": settings,
               **result.to_dict(), "detect_seconds": round(seconds, 3)}
    else:
        from facelite.evaluation import landmarks as lm

        score = 0.5 if args.score_threshold is None else args.score_threshold
        det = PEERS[args.peer](args, score)
        result = lm.evaluate_landmarks(det, limit=args.limit, show_progress=not args.quiet, settings=det.settings())
        title = f"{det.name} @{args.input_size}"
        print(result.table(title))
        out = {"task": "landmarks", "peer": args.peer, **result.to_dict()}
        if args.plot:
            from facelite.evaluation.plots import plot_ced

            plot_ced({title: result}, args.plot)
    if args.json:
        text = json.dumps(out, indent=2, default=float) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"eval_peer: error: {exc}", file=sys.stderr)
        sys.exit(1)
