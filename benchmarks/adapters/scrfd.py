"""SCRFD-0.5GF / 2.5GF with keypoints (InsightFace; weights: non-commercial research only, so
comparison only, never a teacher), ONNX Runtime.

Contract (``<shared>/peers/README.md``): input ``[1,3,H,W]`` float32, **RGB, (x - 127.5) / 128**,
H and W multiples of 32. Nine outputs: scores, boxes, keypoints for strides 8, 16, 32 in that
order (the 2.5G file has numeric output names, same order). Two priors per cell (same centre,
consecutive rows); cell centre ``(gx * s, gy * s)`` (no +0.5). Box = distances (left, top,
right, bottom) * s from the centre; keypoint i = centre + ``kps[2i:2i+2] * s``. Scores are
sigmoid outputs already.

Pre/post-processing: facelite's evaluation policy (longer side = ``input_size``, padded
bottom/right with black pixels as InsightFace's own letterbox does, score >= 0.02, the 5000 best
into NMS 0.4 -- SCRFD's own NMS threshold is 0.4 too -- at most 750 faces).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Unpack

import cv2
import numpy as np

from facelite.train.teachers import scrfd_levels

from ..common import OrtPeer, Settings, best_of_levels, padded_input, peers_dir, require_file

OWN_NMS_THRESHOLD = 0.4
FILES = {"0.5g": "scrfd_500m_bnkps.onnx", "2.5g": "scrfd_2.5g_bnkps.onnx"}


def default_model_path(variant: str = "0.5g") -> Path:
    """``<shared>/peers/scrfd/<file>`` for ``variant`` ``"0.5g"`` or ``"2.5g"``."""
    if variant not in FILES:
        raise ValueError(f"SCRFD variant must be one of {', '.join(FILES)}, got {variant!r}")
    return peers_dir() / "scrfd" / FILES[variant]


class SCRFD(OrtPeer):
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))`` float32,
    original-image pixels, highest score first."""

    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 5

    def __init__(self, variant: str = "0.5g", model_path: str | os.PathLike | None = None,
                 **settings: Unpack[Settings]) -> None:
        self.name = f"scrfd-{variant}"
        super().__init__(require_file(model_path or default_model_path(variant), f"SCRFD-{variant}"), **settings)
        if len(self.session.get_outputs()) != 9:
            raise ValueError(f"{self.model_path}: expected 9 outputs (scores, boxes, keypoints x 3 strides)")

    def settings(self) -> dict:
        return self._settings(padding="bottom/right, black")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,3,H,W] float32 RGB (x-127.5)/128, black padding; (sx, sy); (0, 0))``."""
        return padded_input(image, self.input_size, self.interpolation, _normalise, fill=-127.5 / 128.0)

    def candidates(self, x: np.ndarray, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return decode(outputs, x.shape[2], x.shape[3], self.score_threshold, self.top_k)


def _normalise(bgr: np.ndarray) -> np.ndarray:
    return (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) - 127.5) / 128.0


def decode(
    outs: list[np.ndarray], height: int, width: int, score_threshold: float, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nine SCRFD outputs for an ``height x width`` input -> the ``top_k`` best candidates with
    score >= ``score_threshold``: boxes (K,4) xyxy, scores (K,), landmarks (K,5,2), input pixels."""
    levels = [lvl for lvl in scrfd_levels(outs, height, width, score_threshold) if lvl[1].size]
    all_b, all_s, all_p = ([lvl[k] for lvl in levels] for k in range(3))
    return best_of_levels(all_b, all_s, all_p, score_threshold, top_k)
