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
from typing import Unpack

import cv2
import numpy as np

from ..common import OrtPeer, Settings, centred_square, peers_dir, pre_nms_top_k, require_file

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

    def __init__(self, model_path: str | os.PathLike | None = None, input_size: int = INPUT_SIZE,
                 **settings: Unpack[Settings]) -> None:
        if input_size != INPUT_SIZE:
            raise ValueError(f"YOLO5Face-0.5GF has a fixed 320x320 input: input_size must be 320, got {input_size}")
        self.name = "yolo5face-0.5g"
        super().__init__(require_file(model_path or default_model_path(), "YOLO5Face-0.5GF"), input_size=input_size,
                         **settings)

    def settings(self) -> dict:
        return self._settings(fixed_input="320x320, letterboxed (centred, grey 114)")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,3,320,320] float32 RGB / 255, (sx, sy), (left, top))``:
        ``input = original * s + offset`` per axis (YOLOv5's ``letterbox(auto=False)``)."""
        canvas, scale, offset = centred_square(image, INPUT_SIZE, self.interpolation, PAD_VALUE)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]), scale, offset

    def candidates(self, x: np.ndarray, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = outputs[0].reshape(-1, 16)
        scores = out[:, 4] * out[:, 15]
        o = out[pre_nms_top_k(scores, self.score_threshold, self.top_k)]
        boxes = np.concatenate([o[:, 0:2] - o[:, 2:4] / 2, o[:, 0:2] + o[:, 2:4] / 2], axis=1)
        return boxes, o[:, 4] * o[:, 15], o[:, 5:15].reshape(-1, 5, 2)
