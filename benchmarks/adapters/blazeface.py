"""MediaPipe BlazeFace (Apache-2.0), short range and full range, on LiteRT's TFLite interpreter.
Boxes only (see below).

Contract (``<shared>/peers/README.md``, MediaPipe's ``face_detection_{short,full}_range`` graphs):
**fixed** square input ``[1,S,S,3]`` float32 NHWC, **RGB scaled to [-1, 1]** (``x / 127.5 - 1``),
S = 128 (short range) or 192 (full range); the image is letterboxed as MediaPipe's
``ImageToTensorCalculator`` (``keep_aspect_ratio: true``, ``BORDER_ZERO``) does: longer side S,
aspect kept, centred, black padding (-1 after scaling). Outputs ``regressors [1,N,16]`` and
``classificators [1,N,1]`` (raw logits).

Anchors: MediaPipe's ``SsdAnchorsCalculator`` with ``fixed_anchor_size: true`` (every anchor
1 x 1), centres ``((x + 0.5) / fm_w, (y + 0.5) / fm_h)``, order layer, row, column, anchor:

- short range: strides 8, 16, 16, 16 on 128 x 128 (``interpolated_scale_aspect_ratio`` 1.0: two
  anchors per layer and cell): 16 x 16 x 2 + 8 x 8 x 6 = 896 anchors;
- full range: stride 4 on 192 x 192 (``interpolated_scale_aspect_ratio`` 0.0: one anchor per
  cell): 48 x 48 x 1 = 2304 anchors.

Decoding: MediaPipe's ``TensorsToDetectionsCalculator`` (``reverse_output_order: true``,
x_scale = y_scale = w_scale = h_scale = S): box centre = ``raw[0:2] / S + anchor``, size =
``raw[2:4] / S`` (in 0-1 of the input; here directly in input pixels: ``raw[0:2] + anchor * S``,
``raw[2:4]``); keypoint k = ``raw[4+2k : 6+2k] / S + anchor``. Score = ``sigmoid(clip(logit,
-100, 100))`` (``score_clipping_thresh: 100``).

Landmarks: the six keypoints are right eye, left eye, nose tip, **mouth centre**, right and left
ear tragion. There is no faithful mapping to the five points of the comparison (two mouth
corners), so the adapter returns ``None`` (boxes only) and takes no part in the landmark table.

Post-processing: score >= 0.02, the 5000 best into greedy NMS 0.4, at most 750 faces, as for every
other model. MediaPipe's own graphs keep scores >= 0.5 (short) / 0.6 (full) and merge overlapping
boxes with **weighted** NMS (IoU 0.3), which is not reproduced here. Interpolation: facelite's
policy (area averaging when shrinking more than 2x, else bilinear); MediaPipe resamples
bilinearly.

Needs LiteRT's interpreter (``ai-edge-litert``, part of the ``tflite`` extra); without it the
constructor raises :class:`~benchmarks.common.MissingDependencyError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Unpack

import cv2
import numpy as np

from ..common import MissingDependencyError, Peer, Settings, centred_square, peers_dir, pre_nms_top_k, require_file

OWN_NMS_THRESHOLD = 0.3
"""MediaPipe's ``NonMaxSuppressionCalculator``: ``min_suppression_threshold: 0.3``, weighted."""

VARIANTS: dict[str, dict] = {
    # input size, strides, anchors per layer and cell (aspect ratio 1.0 + the interpolated one),
    # MediaPipe's own min_score_thresh, number of anchors
    "short": {"size": 128, "strides": (8, 16, 16, 16), "per_layer": 2, "own_score": 0.5, "anchors": 896},
    "full": {"size": 192, "strides": (4,), "per_layer": 1, "own_score": 0.6, "anchors": 2304},
}
NUM_KEYPOINTS = 6


def default_model_path(variant: str = "short") -> Path:
    """``<shared>/peers/blazeface/face_detection_{short,full}_range.tflite``."""
    if variant not in VARIANTS:
        raise ValueError(f"BlazeFace variant must be 'short' or 'full', got {variant!r}")
    return peers_dir() / "blazeface" / f"face_detection_{variant}_range.tflite"


def ssd_anchors(size: int, strides: tuple[int, ...], per_layer: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` ``(x, y)`` in 0-1 of the input, as MediaPipe's
    ``SsdAnchorsCalculator`` with ``fixed_anchor_size: true`` and anchor offset 0.5 makes them:
    consecutive layers with the same stride share one feature map, their anchors stacked per cell."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        fm = int(np.ceil(size / strides[i]))
        n = (j - i) * per_layer
        ys, xs = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        centres = np.stack([(xs + 0.5) / fm, (ys + 0.5) / fm], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, n, axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float32)


def litert_interpreter():
    """LiteRT's ``Interpreter`` class; :class:`MissingDependencyError` when it is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MissingDependencyError(
            "the BlazeFace adapter needs a TFLite interpreter: install the 'tflite' extra "
            "(pip install 'facelite[tflite]', or just ai-edge-litert)"
        ) from None
    return Interpreter


class BlazeFace(Peer):
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), None)`` float32, original-image
    pixels, highest score first.

    ``variant``: ``"short"`` (128 x 128, faces within about 2 m) or ``"full"`` (192 x 192).
    ``input_size``: ``None`` or the model's own size (the input is fixed).
    """

    backend = "ai-edge-litert (TFLite interpreter)"
    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 0

    def __init__(self, variant: str = "short", model_path: str | os.PathLike | None = None,
                 input_size: int | None = None, **settings: Unpack[Settings]) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"BlazeFace variant must be 'short' or 'full', got {variant!r}")
        v = VARIANTS[variant]
        size = v["size"]
        if input_size is not None and input_size != size:
            raise ValueError(f"BlazeFace {variant} range has a fixed input: input_size must be {size}, got {input_size}")
        self.name = f"blazeface-{variant}"
        self.variant = variant
        self.model_path = require_file(model_path or default_model_path(variant), f"BlazeFace {variant} range")
        self._configure(size, **settings)
        interpreter = litert_interpreter()
        self.interpreter = interpreter(model_path=str(self.model_path), num_threads=self.threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        if tuple(inp["shape"]) != (1, size, size, 3):
            raise ValueError(f"{self.model_path}: input shape {tuple(inp['shape'])}, expected (1, {size}, {size}, 3)")
        self.input_index = inp["index"]
        outs = {tuple(d["shape"])[-1]: d["index"] for d in self.interpreter.get_output_details()}
        if set(outs) != {16, 1}:
            raise ValueError(f"{self.model_path}: outputs {self.interpreter.get_output_details()}, "
                             "expected regressors [1,N,16] and classificators [1,N,1]")
        self.regressors_index, self.scores_index = outs[16], outs[1]
        self.anchors = ssd_anchors(size, v["strides"], v["per_layer"])
        n = int(self.interpreter.get_output_details()[0]["shape"][1])
        if len(self.anchors) != n or n != v["anchors"]:
            raise ValueError(f"{self.model_path}: {n} outputs per class, {len(self.anchors)} anchors")

    def settings(self) -> dict:
        return self._settings(
            own_nms="weighted NMS (not reproduced)", own_score_threshold=VARIANTS[self.variant]["own_score"],
            fixed_input=f"{self.input_size}x{self.input_size}, letterboxed (centred, black); reported in the 320 column",
            landmarks="none (6 MediaPipe keypoints, one mouth point: no 5-point mapping)",
        )

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,S,S,3] float32 RGB in [-1, 1], (sx, sy), (left, top))``:
        ``input = original * s + offset`` per axis."""
        canvas, scale, offset = centred_square(image, self.input_size, self.interpolation, 0)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        return (rgb.astype(np.float32) / 127.5 - 1.0)[None], scale, offset

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's ``(regressors (N,16), logits (N,))`` for an input tensor."""
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        reg = self.interpreter.get_tensor(self.regressors_index).reshape(-1, 16)
        logits = self.interpreter.get_tensor(self.scores_index).reshape(-1)
        return reg, logits

    def decode(self, reg: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(boxes (K,4) xyxy, scores (K,), keypoints (K,6,2))`` in input pixels, the ``top_k``
        best with score >= ``score_threshold``."""
        scores = (1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))).astype(np.float32)
        k = pre_nms_top_k(scores, self.score_threshold, self.top_k)
        centre = self.anchors[k] * self.input_size
        r = reg[k]
        c = r[:, 0:2] + centre
        half = r[:, 2:4] / 2
        boxes = np.concatenate([c - half, c + half], axis=1)
        kps = r[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + centre[:, None, :]
        return boxes, scores[k], kps

    run = raw

    def candidates(self, x: np.ndarray, outputs: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, None]:
        """The boxes and scores of :meth:`decode` (no landmarks: see the module doc)."""
        boxes, scores, _ = self.decode(*outputs)
        return boxes, scores, None
