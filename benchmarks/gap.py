"""Where one detector loses AP against another: recall by face size, and confident false positives.

    python -m benchmarks.gap --models facelite-0.35 retinaface-mnet0.25 --input-size 640
    python -m benchmarks.gap --models facelite-0.35 mine=runs/x/mobilenetv2-0.35-float32.onnx

For each model (any name of :mod:`benchmarks.registry`, or a facelite ``.onnx`` / ``.tflite``
file as ``PATH`` or ``LABEL=PATH``, run by :class:`facelite.FaceDetector` with its defaults), on
the dev split at the evaluation settings (score 0.02, NMS 0.4):

- recall of the faces that count in a subset (default Easy and Medium), per bin of face size at
  the network input (``sqrt(w * h)`` of the ground-truth box times ``input_size / longer side``),
  at two score thresholds: a face is found when a prediction with IoU >= 0.5 scores above it;
- confident false positives: predictions above each threshold whose IoU with *every* labelled
  face of the image (ignored faces included) is below 0.3, so they are not near any labelled face.

Printed as a Markdown table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

from facelite.evaluation import widerface as wf

from .registry import select

SIZE_BINS = (0, 16, 32, 64, 128, 256)
THRESHOLDS = (0.5, 0.2)


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of ``x y w h`` boxes (continuous convention)."""
    a2, b2 = a[:, :2] + a[:, 2:4], b[:, :2] + b[:, 2:4]
    wh = np.clip(np.minimum(a2[:, None], b2[None]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def image_sides(split_dir: Path) -> dict[str, float]:
    """``image_key -> longer side`` of the original image, from the split's ``images.tsv``."""
    widths, heights = (wf.read_image_table(split_dir, c) for c in ("orig_w", "orig_h"))
    return {k: float(max(int(w), int(heights[k]))) for k, w in widths.items()}


def gap_stats(predictions: dict[str, np.ndarray], gt: dict[str, wf.ImageGroundTruth], sides: dict[str, float],
              input_size: int, subset: str) -> dict:
    """Recall per size bin and threshold, and confident false positives, for one model."""
    nbins = len(SIZE_BINS)
    faces = np.zeros(nbins, int)
    found = {t: np.zeros(nbins, int) for t in THRESHOLDS}
    fps = dict.fromkeys(THRESHOLDS, 0)
    for key, g in gt.items():
        p = predictions.get(key, np.zeros((0, 5)))
        keep = g.keep[subset]
        if len(p) and len(g.boxes):
            near = iou_xywh(g.boxes, p[:, :4]).max(0) < 0.3
            for t in THRESHOLDS:
                fps[t] += int((near & (p[:, 4] > t)).sum())
        if not len(keep):
            continue
        boxes = g.boxes[keep]
        size = np.sqrt(boxes[:, 2] * boxes[:, 3]) * input_size / sides[key]
        bins = np.searchsorted(SIZE_BINS, size, side="right") - 1
        best = np.zeros(len(keep))
        if len(p):
            m = iou_xywh(boxes, p[:, :4])
            best = np.where(m >= 0.5, p[None, :, 4], 0.0).max(1)
        np.add.at(faces, bins, 1)
        for t in THRESHOLDS:
            np.add.at(found[t], bins, (best > t).astype(int))
    return {"faces": faces.tolist(), "recall": {str(t): (found[t] / np.maximum(faces, 1)).round(4).tolist()
                                               for t in THRESHOLDS},
            "false_positives": {str(t): n for t, n in fps.items()}}


def table(results: dict[str, dict], subset: str) -> str:
    heads = [f"{lo}-{hi}" for lo, hi in pairwise(SIZE_BINS)] + [f"{SIZE_BINS[-1]}+"]
    first = next(iter(results.values()))
    lines = [f"{subset}: recall at score > {THRESHOLDS[0]} (> {THRESHOLDS[1]}) by face size at the network input, px",
             "", "| model | " + " | ".join(f"{h} ({n})" for h, n in zip(heads, first["faces"])) + " | FP > "
             + " / ".join(str(t) for t in THRESHOLDS) + " |", "|---" * (len(heads) + 2) + "|"]
    for name, r in results.items():
        cells = [f"{a:.3f} ({b:.3f})" if n else "-" for a, b, n in
                 zip(r["recall"][str(THRESHOLDS[0])], r["recall"][str(THRESHOLDS[1])], r["faces"])]
        fp = " / ".join(str(r["false_positives"][str(t)]) for t in THRESHOLDS)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fp} |")
    return "\n".join(lines)


def _model_file(arg: str) -> tuple[str, Path] | None:
    """``(label, path)`` when ``arg`` names a model file (``PATH`` or ``LABEL=PATH``), else None."""
    label, _, path = arg.rpartition("=")  # no "=": label ""
    if Path(path).suffix.lower() not in {".onnx", ".tflite"}:
        return None
    if not Path(path).is_file():
        raise ValueError(f"no such model file: {path}")
    return label or Path(path).stem, Path(path)


def _detectors(models: list[str], input_size: int, threads: int) -> dict[str, object]:
    """``label -> image -> (boxes, scores, landmarks)`` for registry names and model files, in the
    order given (registry names in table order)."""
    from facelite import FaceDetector

    files = {a: _model_file(a) for a in models}
    names = [a for a, f in files.items() if f is None]
    out: dict[str, object] = {e.name: e.build(input_size, threads=threads) for e in (select(names) if names else [])}
    for f in files.values():
        if f is not None:
            det = FaceDetector(f[1], input_size=input_size, score_threshold=0.02, nms_threshold=0.4, threads=threads)
            out[f[0]] = det.detect_arrays
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gap", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True,
                   help="names from benchmarks.registry and/or facelite .onnx/.tflite files (PATH or LABEL=PATH)")
    p.add_argument("--input-size", type=int, default=640)
    p.add_argument("--subsets", nargs="+", default=["easy", "medium"], choices=list(wf.SUBSETS))
    p.add_argument("--split-dir", type=Path, default=None, help="default <shared>/data/widerface/dev")
    p.add_argument("--limit", type=int, default=None, help="first N images only (smoke test)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    split_dir = args.split_dir or wf.default_split_dir()
    try:
        detectors = _detectors(args.models, args.input_size, args.threads)
    except (KeyError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    preds = {}
    for name, det in detectors.items():
        run = wf.run_detector_on_split(det, split_dir, limit=args.limit, show_progress=False)
        preds[name] = run.predictions
    names = list(next(iter(preds.values())))
    gt = wf.load_ground_truth(image_list=names)
    sides = image_sides(split_dir)
    out = {}
    for subset in args.subsets:
        out[subset] = {n: gap_stats(pr, gt, sides, args.input_size, subset) for n, pr in preds.items()}
        print(table(out[subset], subset), end="\n\n")
    if args.json:
        args.json.write_text(json.dumps({"input_size": args.input_size, "images": len(names), **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
