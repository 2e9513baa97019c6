"""facelite's NMS (:func:`facelite.nms.nms_ranked`) against OpenCV's ``cv2.dnn.NMSBoxes`` on the
detector's real candidates: same kept boxes or not, and time per call.

    python -m benchmarks.nms_opencv                  # the 10 most crowded dev images, 640 and 320
    python -m benchmarks.nms_opencv --images 0       # every dev image, totals only (about a minute)

For each image and input size the candidates are made as ``FaceDetector`` makes them at the
evaluation's settings (score >= 0.02, the 5000 best ranked by score then anchor order, decoded;
NMS 0.4, at most 750 kept). OpenCV gets them as ``(x, y, w, h)`` float64 boxes (``Rect2d``: no "+1"
in its areas) with their float32 scores and ``top_k=0``: its ``top_k`` caps the candidates going in,
not the boxes kept, so the first 750 of its result are taken. Times are the fastest of several calls
on one thread; facelite's include nothing OpenCV's do not (the boxes are decoded beforehand for both).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from facelite import FaceDetector, load_image
from facelite.anchors import anchors_for
from facelite.codec import decode_boxes
from facelite.evaluation.widerface import default_split_dir
from facelite.nms import nms_ranked, top_k
from facelite.preprocess import preprocess


def candidates(det: FaceDetector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranked candidates ``FaceDetector`` hands to NMS: boxes (K, 4) float32 xyxy in network-input
    pixels, scores (K,) float32, best first."""
    tensor, box = preprocess(image, det.spec, det.input_size)
    scores, deltas, _ = (o[0] for o in det.backend.run(tensor))
    idx = np.flatnonzero(scores >= det.score_threshold)
    idx = idx[top_k(scores[idx], det.top_k)]
    anchors = anchors_for(det.spec, *box.padded_size)
    return decode_boxes(deltas[idx], anchors[idx], det.spec.variances).astype(np.float32), scores[idx]


def opencv_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, keep_top_k: int) -> np.ndarray:
    """``cv2.dnn.NMSBoxes`` on xyxy boxes: the kept indices in its (score) order, at most ``keep_top_k``."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).astype(np.float64)
    keep = cv2.dnn.NMSBoxes(xywh, scores, 0.0, iou_threshold, 1.0, 0)
    return np.asarray(keep, dtype=np.int64).reshape(-1)[:keep_top_k]


def fastest_ms(f: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return 1000.0 * best


def crowded_names(count: int) -> list[tuple[str, int]]:
    """``(name, annotated faces)`` of the dev images with the most faces (all of them for 0)."""
    lines = (default_split_dir() / "wider_face_dev_bbx_gt.txt").read_text().splitlines()
    found, i = [], 0
    while i + 1 < len(lines) and lines[i].strip():
        n = int(lines[i + 1])
        found.append((lines[i].strip(), n))
        i += 2 + max(n, 1)
    found.sort(key=lambda t: (-t[1], t[0]))
    return found if count == 0 else found[:count]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.nms_opencv", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10, help="the N most crowded dev images; 0: all (default: %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=[640, 320])
    p.add_argument("--repeats", type=int, default=7, help="calls per timing, the fastest counts (default: %(default)s)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    names = crowded_names(args.images)
    split = default_split_dir() / "images"
    images = {name: load_image(split / name) for name, _ in names}
    for size in args.sizes:
        det = FaceDetector(input_size=size, score_threshold=0.02, nms_threshold=0.4, keep_top_k=750, threads=1)
        same = total = 0
        ours_ms = theirs_ms = 0.0
        if args.images:
            print(f"input {size}: image (faces), candidates, kept, facelite ms, OpenCV ms, same")
        for name, faces in names:
            boxes, scores = candidates(det, images[name])
            if len(boxes) == 0:
                continue
            ours = nms_ranked(boxes, det.nms_threshold, keep_top_k=det.keep_top_k)
            theirs = opencv_nms(boxes, scores, det.nms_threshold, det.keep_top_k)
            equal = np.array_equal(ours, theirs)  # both in rank order
            same += equal
            total += 1
            t_ours = fastest_ms(partial(nms_ranked, boxes, det.nms_threshold, keep_top_k=det.keep_top_k), args.repeats)
            t_cv = fastest_ms(partial(opencv_nms, boxes, scores, det.nms_threshold, det.keep_top_k), args.repeats)
            ours_ms, theirs_ms = ours_ms + t_ours, theirs_ms + t_cv
            if args.images:
                print(f"  {name.split('/')[-1][:44]:44s} ({faces:3d}) {len(boxes):5d} {len(ours):4d} "
                      f"{t_ours:7.2f} {t_cv:7.2f}  {'yes' if equal else 'NO'}")
        print(f"input {size}: the same kept boxes on {same} of {total} images; NMS time in all: "
              f"{ours_ms:.1f} ms (facelite) vs {theirs_ms:.1f} ms (OpenCV)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
