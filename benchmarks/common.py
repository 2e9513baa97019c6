"""Small helpers shared by the adapters: resize-and-pad, letterbox, NMS, mapping back, ONNX Runtime
sessions, and the :class:`Peer` base class (settings, the run -> decode -> NMS pipeline).

Kept here (not in the package) so that the adapters do not depend on facelite's run-time
modules, whose behaviour they are meant to be compared with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

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
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        if interpolation == "auto":
            interpolation = cv2.INTER_AREA if nw * 2 < w else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interpolation)
    ph = int(math.ceil(nh / multiple) * multiple)
    pw = int(math.ceil(nw / multiple) * multiple)
    return image, nw / w, nh / h, (ph, pw)



def padded_input(
    image: np.ndarray,
    size: int,
    interpolation: int | str,
    to_float: Callable[[np.ndarray], np.ndarray],
    fill: float = 0.0,
    multiple: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """The network input of a dynamic-shape model: the image resized by :func:`resize_longer_side`,
    converted by ``to_float`` (``h x w x 3`` uint8 BGR -> ``h x w x 3`` float32, the model's channel
    order and normalisation) and padded bottom/right with ``fill`` to a multiple of ``multiple``.

    Returns ``(tensor [1,3,H,W] float32, (sx, sy), (0, 0))``: ``input = original * s + offset``.
    """
    resized, sx, sy, (ph, pw) = resize_longer_side(image, size, multiple, interpolation)
    h, w = resized.shape[:2]
    x = np.full((1, 3, ph, pw), fill, dtype=np.float32)
    x[0, :, :h, :w] = to_float(resized).transpose(2, 0, 1)
    return x, (sx, sy), (0.0, 0.0)


def centred_square(
    image: np.ndarray, size: int, interpolation: int | str, pad_value: int
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """The letterbox of a fixed square input: the image resized so its longer side is ``size``
    (aspect kept), centred on a ``size x size`` canvas of ``pad_value``.

    The offset is ``(size - w) // 2``: YOLOv5's ``round(dw - 0.1)`` with ``dw = (size - w) / 2`` and
    MediaPipe's floor give the same whole number.

    Returns ``(canvas (size, size, 3) uint8 BGR, (sx, sy), (left, top))``: ``input = original * s + offset``.
    """
    resized, sx, sy, _ = resize_longer_side(image, size, 1, interpolation)
    h, w = resized.shape[:2]
    left, top = (size - w) // 2, (size - h) // 2
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    canvas[top:top + h, left:left + w] = resized
    return canvas, (sx, sy), (left, top)

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
    opts.log_severity_level = 3  # errors only: some peer files list their weights as graph inputs (a warning per weight)
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- shared by the adapters

Detections = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]
"""``(boxes (K,4) float32 xyxy, scores (K,) float32, landmarks (K,5,2) float32 (x, y) or None)``,
original-image pixels, highest score first."""


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`Path`; a :class:`FileNotFoundError` naming the model when it is absent."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{what}: model file not found at {p} (the peer models live in <shared>/peers, see its README.md; "
            "set FACELITE_SHARED to the shared folder)"
        )
    return p


class MissingDependencyError(RuntimeError):
    """An adapter's run-time library (e.g. LiteRT for the ``.tflite`` peers) is not installed. The
    comparison skips such a model and keeps its rows from an earlier ``peers.json``."""


def check_bgr(image: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``image`` is an ``H x W x 3`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("expected a BGR uint8 HxWx3 image")


def empty_detections(landmarks: bool = True) -> Detections:
    """No faces: ``(0,4)``, ``(0,)`` and ``(0,5,2)`` (or ``None`` without landmarks) float32 arrays."""
    return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32) if landmarks else None)


def pre_nms_top_k(scores: np.ndarray, threshold: float, top_k: int) -> np.ndarray:
    """Indices of the scores ``>= threshold``, the ``top_k`` highest, by descending score (stable)."""
    idx = np.flatnonzero(scores >= threshold)
    return idx[np.argsort(-scores[idx], kind="stable")][:top_k]


def best_of_levels(
    boxes: list[np.ndarray], scores: list[np.ndarray], points: list[np.ndarray], threshold: float, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates of a detector's pyramid levels (lists of (K_i,4) boxes, (K_i,) scores,
    (K_i,5,2) landmarks), as one set: the ``top_k`` best with score ``>= threshold``, by descending
    score (:func:`pre_nms_top_k`); empty float32 arrays when no level has one."""
    if not scores:
        return empty_detections()  # type: ignore[return-value]
    b, s, p = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
    k = pre_nms_top_k(s, threshold, top_k)
    return b[k], s[k], p[k]


def finish(
    boxes: np.ndarray,
    scores: np.ndarray,
    points: np.ndarray | None,
    image_shape: tuple[int, ...],
    scale: tuple[float, float] = (1.0, 1.0),
    offset: tuple[float, float] = (0.0, 0.0),
    nms_threshold: float | None = 0.4,
    keep_top_k: int = 750,
    plus_one: bool = False,
    drop_empty: bool = True,
) -> Detections:
    """NMS, the ``keep_top_k`` best, and back to the original image.

    Args:
        boxes: (K, 4) xyxy in network-input pixels. scores: (K,). points: (K, 5, 2) ``(x, y)``
            in network-input pixels, or ``None``.
        image_shape: the original image's shape (``H, W, ...``).
        scale, offset: ``input = original * scale + offset`` per axis ``(x, y)``.
        nms_threshold: greedy NMS IoU threshold; ``None``: no NMS (already done), sort only.
        plus_one: the NMS's ``+1`` area convention (see :func:`nms`).
        drop_empty: drop the boxes that are empty once clipped (RetinaFace's own code keeps them).

    Returns:
        :data:`Detections` sorted by descending score; boxes clipped to the image (and empty
        boxes dropped), landmarks not clipped.
    """
    if len(scores) == 0:
        return empty_detections(points is not None)
    if nms_threshold is None:
        keep = np.argsort(-scores, kind="stable")[:keep_top_k]
    else:
        keep = nms(boxes, scores, nms_threshold, plus_one)[:keep_top_k]
    s = np.asarray([scale[0], scale[1]], dtype=np.float32)
    o = np.asarray([offset[0], offset[1]], dtype=np.float32)
    b = ((boxes[keep].reshape(-1, 2, 2) - o) / s).reshape(-1, 4).astype(np.float32)
    h, w = image_shape[:2]
    b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
    b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
    sc = scores[keep].astype(np.float32)
    pts = None if points is None else ((points[keep] - o) / s).astype(np.float32)
    if not drop_empty:
        return b, sc, pts
    valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[valid], sc[valid], None if pts is None else pts[valid]


class Settings(TypedDict, total=False):
    """The detection settings every peer adapter takes (keyword arguments, defaults in :class:`Peer`):
    ``input_size`` (longer side of the network input), ``score_threshold`` (candidates kept before
    NMS, ``>=``), ``nms_threshold`` (greedy NMS IoU), ``top_k`` (candidates into NMS), ``keep_top_k``
    (faces out), ``threads`` (of the runtime; ``None``: its default), ``interpolation`` (of the resize:
    ``"auto"`` is facelite's policy, or a cv2 flag)."""

    input_size: int
    score_threshold: float
    nms_threshold: float
    top_k: int
    keep_top_k: int
    threads: int | None
    interpolation: int | str


class Peer:
    """The detection settings every peer adapter takes, the ``settings()`` dict built on them (the
    cache key of a row), and the pipeline of a single-shot detector.

    Subclasses set ``name`` and ``backend``, call :meth:`_configure` from ``__init__`` and build
    ``settings()`` on :meth:`_settings`. Calling the adapter runs ``preprocess`` (image -> input,
    scale, offset), ``run`` (input -> raw outputs) and ``candidates`` (the ``top_k`` best with a score
    ``>= score_threshold`` in input pixels), then :func:`finish` (NMS, back to the original image);
    an adapter with another pipeline overrides ``__call__``."""

    name: str
    backend: str
    own_nms_threshold: float | None = None
    nms_plus_one = False
    """:func:`finish`'s ``plus_one``."""
    drop_empty = True
    """:func:`finish`'s ``drop_empty``."""

    def _configure(self, input_size: int = 640, score_threshold: float = 0.02, nms_threshold: float = 0.4,
                   top_k: int = 5000, keep_top_k: int = 750, threads: int | None = 1,
                   interpolation: int | str = "auto") -> None:
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.keep_top_k = keep_top_k
        self.threads = threads
        self.interpolation = interpolation

    def _settings(self, **extra: Any) -> dict:
        return {
            "model": self.name, "backend": self.backend, "input_size": self.input_size,
            "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
            "own_nms_threshold": self.own_nms_threshold, "top_k": self.top_k, "keep_top_k": self.keep_top_k,
            "interpolation": str(self.interpolation), **extra,
        }

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(network input, (sx, sy), (left, top))`` with ``input = original * s + offset`` per axis."""
        raise NotImplementedError

    def run(self, x: np.ndarray) -> Any:
        """The network's raw outputs for the input ``x``."""
        raise NotImplementedError

    def candidates(self, x: np.ndarray, outputs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(boxes (K,4) xyxy, scores (K,), landmarks (K,5,2) or None)`` in input pixels: the
        ``top_k`` best with score ``>= score_threshold``, by descending score."""
        raise NotImplementedError

    def __call__(self, image: np.ndarray) -> Detections:
        check_bgr(image)
        x, scale, offset = self.preprocess(image)
        boxes, scores, points = self.candidates(x, self.run(x))
        return finish(boxes, scores, points, image.shape, scale, offset, nms_threshold=self.nms_threshold,
                      keep_top_k=self.keep_top_k, plus_one=self.nms_plus_one, drop_empty=self.drop_empty)


class OrtPeer(Peer):
    """A :class:`Peer` on ONNX Runtime: ``OrtPeer.__init__(self, model_path, **settings)`` opens the
    session (``self.session``, ``self.input_name``) and stores the settings."""

    backend = "onnxruntime"

    def __init__(self, model_path: Path, **settings: Unpack[Settings]) -> None:
        self.model_path = model_path
        self._configure(**settings)
        self.session = ort_session(model_path, self.threads)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})
