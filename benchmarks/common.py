"""Small helpers shared by the adapters: resize-and-pad, NMS, ONNX Runtime sessions.

Kept here (not in the package) so that the adapters do not depend on facelite's run-time
modules, whose behaviour they are meant to be compared with.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np


def peers_dir() -> Path:
    from facelite.paths import shared_dir

    return shared_dir() / "peers"


def resize_longer_side(
    image: np.ndarray, size: int, multiple: int = 32, interpolation: int | str = "auto"
) -> tuple[np.ndarray, float, float, tuple[int, int]]:
    """Resize so that the longer side is ``size``, keep the aspect ratio.

    ``interpolation="auto"`` is facelite's policy (:mod:`facelite.preprocess`): area
    averaging when shrinking by more than 2x, bilinear otherwise; or give a cv2 flag.

    Returns ``(resized, sx, sy, (padded_h, padded_w))``: the resized image (not padded),
    the scale factors actually applied per axis (resized / original), and the network input
    shape after padding bottom/right to a multiple of ``multiple``.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    if (nw, nh) != (w, h):
        if interpolation == "auto":
            interpolation = cv2.INTER_AREA if nw * 2 < w else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interpolation)
    ph = int(math.ceil(nh / multiple) * multiple)
    pw = int(math.ceil(nw / multiple) * multiple)
    return image, nw / w, nh / h, (ph, pw)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, plus_one: bool = False) -> np.ndarray:
    """Greedy NMS, vectorised per kept box. Returns kept indices by descending score.

    ``plus_one``: use the ``(x2 - x1 + 1)`` area convention of the original RetinaFace
    ``py_cpu_nms`` (off by default).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = boxes.astype(np.float32, copy=False)
    one = 1.0 if plus_one else 0.0
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(x1[i], x1[rest])
        yy1 = np.maximum(y1[i], y1[rest])
        xx2 = np.minimum(x2[i], x2[rest])
        yy2 = np.minimum(y2[i], y2[rest])
        inter = np.maximum(0.0, xx2 - xx1 + one) * np.maximum(0.0, yy2 - yy1 + one)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def ort_session(path: str | os.PathLike, threads: int | None = 1):
    """An ONNX Runtime CPU session; ``threads`` intra-op threads (1 = single-threaded)."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise FileNotFoundError(f"model not found: {path}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
