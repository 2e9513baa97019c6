"""``facelite eval``: WIDER FACE AP (Easy / Medium / Hard) and landmark error of a model.

``facelite eval widerface`` runs a model on a WIDER FACE split (default: the dev split in the
shared data folder) with the evaluation settings (score threshold 0.02, NMS 0.4, at most 750
faces per image) and scores it with the official algorithm; ``--predictions DIR`` scores an
existing submission folder (``<event>/<name>.txt``) instead, e.g. another detector's.
``facelite eval landmarks`` measures landmark NME on the held-out face crops.
``facelite eval labels`` scores a model on any labelled images (a RetinaFace ``label.txt``, a
WIDER ``*_bbx_gt.txt`` or a COCO file): AP, AP by face size, precision / recall at score thresholds, landmark
error; ``--predictions FILE`` scores the output of ``facelite detect --jsonl`` instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ._common import (
    add_max_pixels_option,
    add_tile_options,
    add_voting_options,
    max_pixels_of,
    os_errors_as_messages,
)

HELP = "accuracy: WIDER FACE AP (Easy/Medium/Hard) and landmark error"

DESCRIPTION = """\
Measure a model's accuracy.

  facelite eval widerface   AP on WIDER FACE (official protocol, restricted to a split)
  facelite eval landmarks   landmark NME / failure rate on the held-out 5-point crops
  facelite eval labels      AP, precision / recall and landmark error on your own labelled images

widerface needs scipy (its .mat ground truth) and --plot needs matplotlib: pip install 'facelite[eval]'.
WIDER FACE and the landmark crops come from the shared folder ($FACELITE_SHARED, default ../shared)
unless given; labels needs only the run-time install.
"""


def _add_model_args(p: argparse.ArgumentParser, input_size: int, score: float) -> None:
    p.add_argument(
        "--model",
        default="mobilenetv2-0.35",
        help="shipped model name or path of a facelite .onnx (default: %(default)s)",
    )
    p.add_argument("--precision", default="float32", choices=("float32", "int8"), help="default: %(default)s")
    p.add_argument("--input-size", type=int, default=input_size, help="longer side of the network input (default: %(default)s)")
    p.add_argument("--score-threshold", type=float, default=score, help="detector score threshold (default: %(default)s)")
    p.add_argument("--nms-threshold", type=float, default=0.4, help="NMS IoU threshold (default: %(default)s)")
    add_voting_options(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the network (default: %(default)s)")
    add_tile_options(p)
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images (smoke test)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE (- for stdout)")
    p.add_argument("--plot", metavar="PNG", help="write a plot (PR curves / CED curve) to PNG")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="eval_task", metavar="TASK")

    w = sub.add_parser(
        "widerface",
        help="WIDER FACE AP (official algorithm) on a split",
        description="Run a model on a WIDER FACE split and compute Easy / Medium / Hard AP with the "
        "official algorithm (IoU 0.5, ignore faces, 1000 thresholds, normalised scores).",
    )
    _add_model_args(w, input_size=640, score=0.02)
    w.add_argument("--split-dir", type=Path, default=None, help="split folder with images.txt and images/ (default: the shared dev split)")
    w.add_argument("--gt-dir", type=Path, default=None, help="folder of the official .mat ground truth (default: shared eval/)")
    w.add_argument("--keep-top-k", type=int, default=750, help="at most this many faces per image (default: %(default)s)")
    w.add_argument("--cache", type=Path, metavar="DIR", help="keep per-image predictions in DIR; a rerun resumes from them")
    w.add_argument("--submission", type=Path, metavar="DIR", help="also write the predictions in the WIDER layout to DIR")
    w.add_argument("--predictions", type=Path, metavar="DIR", help="score this WIDER submission folder instead of running a model")
    add_max_pixels_option(w)
    w.set_defaults(func=run_widerface)

    lm = sub.add_parser(
        "landmarks",
        help="landmark NME on the held-out 5-point crops",
        description="Detect on each held-out crop (padded with 80 grey pixels) and measure the landmark "
        "error of the detection that matches the face: NME / inter-ocular distance, failure rate "
        "(NME > 10 %), miss rate.",
    )
    _add_model_args(lm, input_size=320, score=0.5)
    lm.add_argument("--data-dir", type=Path, default=None, help="folder with landmarks.txt and crops (default: shared landmarks5/)")
    lm.add_argument("--reference", choices=("landmarks", "crop"), default="landmarks",
                    help="box a detection must overlap (IoU >= 0.3): the face box implied by the labels, or the crop square (default: %(default)s)")
    lm.add_argument("--all-crops", action="store_true", help="evaluate every crop, not only the held-out 10 %%")
    lm.add_argument("--include-known-bad", action="store_true", help="keep the crops with known wrong labels")
    add_max_pixels_option(lm)
    lm.set_defaults(func=run_landmarks)

    lb = sub.add_parser(
        "labels",
        help="AP, precision / recall and landmark error on your own labelled images",
        description="Run a model on labelled images and score it: AP at IoU 0.5 (greedy matching, "
        "all-point interpolation), AP by face size (small < 32 px, medium 32-96, large >= 96, as sqrt(w*h)), "
        "precision / recall / F1 at score thresholds and the threshold with the best F1, and the landmark "
        "error of the faces found. Labels: a RetinaFace label.txt (as `facelite train` reads), a WIDER FACE "
        "*_bbx_gt.txt (faces marked invalid are ignored) or a COCO file (crowd faces are ignored).",
    )
    lb.add_argument("labels", type=Path, help="label file: RetinaFace label.txt, WIDER *_bbx_gt.txt or COCO .json")
    lb.add_argument("--images", type=Path, default=None, metavar="DIR",
                    help="folder the label file's image paths are relative to (default: LABELS' folder/images; "
                    "for COCO, LABELS' folder)")
    lb.add_argument("--format", dest="label_format", choices=("auto", "retinaface", "wider", "coco"), default="auto",
                    help="label file format (default: %(default)s: COCO when it starts with '{', RetinaFace with '#')")
    _add_model_args(lb, input_size=640, score=0.02)
    lb.add_argument("--keep-top-k", type=int, default=750, help="at most this many faces per image (default: %(default)s)")
    lb.add_argument("--iou", type=float, default=0.5, help="IoU for a detection to find a face (default: %(default)s)")
    lb.add_argument("--min-size", type=float, default=0.0, metavar="PX",
                    help="ignore labelled faces (and unmatched detections) under PX pixels, as sqrt(w*h) (default: 0)")
    lb.add_argument("--cache", type=Path, metavar="FILE",
                    help="write the detections to FILE (JSON Lines) as they are made; a rerun resumes from it")
    lb.add_argument("--predictions", type=Path, metavar="FILE",
                    help="score this `facelite detect --jsonl` (or --json, --coco) output instead of running a model")
    add_max_pixels_option(lb)
    lb.set_defaults(func=run_labels)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _detector(args: argparse.Namespace, keep_top_k: int = 750) -> Any:
    from ._common import build_detector

    return build_detector(args, keep_top_k=keep_top_k)


def _model_info(det: Any) -> dict[str, Any]:
    info = getattr(det, "model_info", None)
    return {
        "name": getattr(det, "name", None),
        "path": str(getattr(info, "path", "")) or None,
        "sha256": getattr(info, "sha256", None),
        "precision": getattr(det, "precision", None),
    }


def _run_settings(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The detector of a ``widerface`` / ``labels`` run, its model record, and the settings that
    identify its predictions (the key of ``--cache``: a cache made with others is refused)."""
    from .. import __version__

    det = _detector(args, args.keep_top_k)
    model = _model_info(det)
    settings = {
        "model_sha256": model["sha256"],
        "precision": model["precision"] or args.precision,  # the file's own, for a model given by path
        "input_size": args.input_size,
        "score_threshold": args.score_threshold,
        "nms_threshold": args.nms_threshold,
        "keep_top_k": args.keep_top_k,
        "landmark_voting": args.landmark_voting,
        "box_voting": args.box_voting,
        "facelite_version": __version__,
        **({"tile": args.tile, "tile_overlap": args.tile_overlap} if args.tile else {}),
    }
    return det, model, settings


def _title(args: argparse.Namespace, model: dict[str, Any], settings: dict[str, Any]) -> str:
    return f"{model['name']} {settings['precision']} @{args.input_size}" + (f", tiles {args.tile}" if args.tile else "")


def _write_json(target: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, default=float) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)


def run_widerface(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..evaluation import widerface as wf

    split_dir = args.split_dir or wf.default_split_dir()
    names = wf.read_image_list(split_dir)
    if args.limit is not None:
        names = names[: args.limit]
    out: dict[str, Any] = {"task": "widerface", "split_dir": str(split_dir), "facelite_version": __version__}
    if args.predictions:
        predictions = wf.read_submission(args.predictions)
        out["predictions"] = str(args.predictions)
        title = str(args.predictions)
    else:
        det, model, settings = _run_settings(args)
        run = wf.run_detector_on_split(
            det.detect_arrays,
            split_dir,
            names,
            score_threshold=args.score_threshold,
            max_faces=args.keep_top_k,
            cache_dir=args.cache,
            cache_settings=settings,
            show_progress=not args.quiet,
            max_pixels=max_pixels_of(args),
        )
        predictions = run.predictions
        out.update(model=model, settings={**settings, "threads": args.threads}, timing=run.to_dict())
        title = _title(args, model, settings)
        if args.submission:
            wf.write_submission(predictions, args.submission)
    t = time.perf_counter()
    result = wf.evaluate_widerface(predictions, args.gt_dir, names, missing="error")
    out.update(result.to_dict())
    out["eval_seconds"] = round(time.perf_counter() - t, 3)

    print(result.table(title))
    if "timing" in out and out["timing"]["num_computed"]:
        print(f"{out['timing']['images_per_second']:.2f} images/s (network + pre/post-processing, {args.threads} thread(s))")
    if args.json:
        _write_json(args.json, out)
    if args.plot:
        from ..evaluation.plots import plot_pr_curves

        plot_pr_curves({title: result}, args.plot, title=f"WIDER FACE, {Path(split_dir).name} split")
    return 0


def run_landmarks(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..evaluation import landmarks as lmk

    det = _detector(args)
    model = _model_info(det)
    precision = model["precision"] or args.precision
    settings = {
        "precision": precision,
        "input_size": args.input_size,
        "score_threshold": args.score_threshold,
        "nms_threshold": args.nms_threshold,
        "landmark_voting": args.landmark_voting,
        "box_voting": args.box_voting,
        "threads": args.threads,
    }
    result = lmk.evaluate_landmarks(
        det.detect_arrays,
        args.data_dir,
        "all" if args.all_crops else "heldout",
        reference=args.reference,
        exclude_known_bad=not args.include_known_bad,
        limit=args.limit,
        show_progress=not args.quiet,
        settings=settings,
        max_pixels=max_pixels_of(args),
    )
    title = f"{model['name']} {precision} @{args.input_size}"
    print(result.table(title))
    if args.json:
        _write_json(args.json, {"task": "landmarks", "facelite_version": __version__, "model": model, **result.to_dict()})
    if args.plot:
        from ..evaluation.plots import plot_ced

        plot_ced({title: result}, args.plot)
    return 0


@os_errors_as_messages
def run_labels(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..evaluation import labels as lb

    if not 0.0 < args.iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {args.iou}")
    if args.min_size < 0:
        raise ValueError(f"--min-size must be >= 0, got {args.min_size}")
    samples = lb.read_labels(args.labels, args.images, args.label_format)
    if args.limit is not None:
        samples = samples[: args.limit]
    if not samples:
        raise ValueError(f"{args.labels}: no labelled images")
    out: dict[str, Any] = {"task": "labels", "labels": str(args.labels), "facelite_version": __version__}
    skipped: list[str] = []
    if args.predictions:
        found = lb.align_keys(samples, lb.read_predictions(args.predictions))
        missing = [s for s in samples if str(s.path) not in found]
        if missing:
            raise ValueError(f"{args.predictions} has no record for {len(missing)} of the {len(samples)} labelled "
                             f"images (e.g. {missing[0].path}); run `facelite detect` on all of them")
        detections, title = found, str(args.predictions)
        out["predictions"] = str(args.predictions)
    else:
        det, model, settings = _run_settings(args)
        t = time.perf_counter()
        detections, skipped, seconds = lb.run_detector_on_labels(
            det.detect_arrays, samples, cache=args.cache, cache_settings=settings, show_progress=not args.quiet,
            max_pixels=max_pixels_of(args))
        out.update(model=model, settings={**settings, "threads": args.threads},
                   timing={"detect_seconds": round(seconds, 3), "wall_seconds": round(time.perf_counter() - t, 3)})
        title = _title(args, model, settings)
    result = lb.evaluate_labels(samples, detections, iou_threshold=args.iou, min_size=args.min_size, skipped=skipped)
    out.update(result.to_dict())
    print(result.table(f"{title} on {args.labels}"))
    if args.json:
        _write_json(args.json, out)
    if args.plot:
        from ..evaluation.plots import plot_labels_pr

        plot_labels_pr({title: result}, args.plot, title=f"{Path(args.labels).name}")
    return 1 if skipped else 0
