"""YOLO5Face-0.5GF (GPL-3.0: comparison only, never a teacher), ONNX Runtime.

Contract (``<shared>/peers/README.md``): **fixed** input ``[1,3,320,320]``, **RGB / 255**; the
image is letterboxed as YOLOv5 does (longer side 320, aspect kept, centred, grey 114 padding),
so ``input_size`` must be 320. Output ``[1,6300,16]``: ``cx cy w h obj``, 10 landmark
coordinates ``(x, y) x 5``, ``cls``, in input pixels, sigmoid already applied;
score = ``obj * cls``.

Post-processing: score >= 0.02, the 5000 best into NMS 0.4 (the project's WIDER evaluation
uses IoU 0.5), at most 750 faces.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..common import (
    Detections,
    OrtPeer,
    check_bgr,
    empty_detections,
    finish,
    peers_dir,
    pre_nms_top_k,
    require_file,
    resize_longer_side,
)

OWN_NMS_THRESHOLD = 0.5
INPUT_SIZE = 320
PAD_VALUE = 114


def default_model_path() -> Path:
    return peers_dir() / "yolo5face" / "yolo5face_500m_320x320.onnx"


class YOLO5Face(OrtPeer):
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))`` float32,
    original-image pixels, highest score first."""

    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 5

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        input_size: int = INPUT_SIZE,
        score_threshold: float = 0.02,
        nms_threshold: float = 0.4,
        top_k: int = 5000,
        keep_top_k: int = 750,
        threads: int | None = 1,
        interpolation: int | str = "auto",
    ) -> None:
        if input_size != INPUT_SIZE:
            raise ValueError(f"YOLO5Face-0.5GF has a fixed 320x320 input: input_size must be 320, got {input_size}")
        self.name = "yolo5face-0.5g"
        self.model_path = require_file(model_path or default_model_path(), "YOLO5Face-0.5GF")
        self._open(self.model_path, input_size, score_threshold, nms_threshold, top_k, keep_top_k, threads,
                   interpolation)

    def settings(self) -> dict:
        return self._settings(fixed_input="320x320, letterboxed (centred, grey 114)")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,3,320,320] float32 RGB / 255, (sx, sy), (left, top))``:
        ``input = original * s + offset`` per axis."""
        resized, sx, sy, _ = resize_longer_side(image, INPUT_SIZE, 1, self.interpolation)
        h, w = resized.shape[:2]
        dw, dh = (INPUT_SIZE - w) / 2, (INPUT_SIZE - h) / 2  # YOLOv5's letterbox(auto=False)
        top, left = round(dh - 0.1), round(dw - 0.1)
        canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), PAD_VALUE, dtype=np.uint8)
        canvas[top:top + h, left:left + w] = resized
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]), (sx, sy), (left, top)

    def __call__(self, image: np.ndarray) -> Detections:
        check_bgr(image)
        x, scale, offset = self.preprocess(image)
        out = self.session.run(None, {self.input_name: x})[0].reshape(-1, 16)
        scores = out[:, 4] * out[:, 15]
        k = pre_nms_top_k(scores, self.score_threshold, self.top_k)
        if k.size == 0:
            return empty_detections()
        o = out[k]
        boxes = np.concatenate([o[:, 0:2] - o[:, 2:4] / 2, o[:, 0:2] + o[:, 2:4] / 2], axis=1)
        return finish(boxes, scores[k], o[:, 5:15].reshape(-1, 5, 2), image.shape, scale, offset,
                      nms_threshold=self.nms_threshold, keep_top_k=self.keep_top_k)
