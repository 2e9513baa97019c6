"""YuNet (libfacedetection, Apache-2.0): YuNet-n / YuNet-s through ONNX Runtime, and YuNet-s
through OpenCV's ``cv2.FaceDetectorYN`` as users call it.

Contract (``<shared>/peers/README.md``): input ``[1,3,H,W]`` float32, **BGR, 0-255, no
normalisation**, H and W multiples of 32 (padded bottom/right with black, as OpenCV does).
Twelve outputs ``cls_s``, ``obj_s``, ``bbox_s``, ``kps_s`` for strides s = 8, 16, 32, each
``[1, (H/s)(W/s), k]``: one prior per grid cell, row-major. Score =
``sqrt(clip(cls, 0, 1) * clip(obj, 0, 1))``; for cell ``(gx, gy)``: box centre =
``(g + bbox[0:2]) * s``, size = ``exp(bbox[2:4]) * s``; landmark i = ``(g + kps[2i:2i+2]) * s``.

Pre/post-processing: facelite's evaluation policy (longer side = ``input_size``, area
averaging when shrinking more than 2x else bilinear, score >= 0.02, the 5000 best into NMS 0.4,
at most 750 faces). YuNet's own defaults: score 0.9 (demo), NMS 0.3, top-k 5000 / keep 750.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Unpack

import numpy as np

from ..common import (
    Detections,
    OrtPeer,
    Peer,
    Settings,
    best_of_levels,
    check_bgr,
    empty_detections,
    finish,
    padded_input,
    peers_dir,
    require_file,
    resize_longer_side,
)

STRIDES = (8, 16, 32)
OWN_NMS_THRESHOLD = 0.3
"""The NMS threshold of YuNet's own demo / ``cv2.FaceDetectorYN`` default."""


def default_model_path(variant: str = "n") -> Path:
    """``<shared>/peers/yunet/yunet_{n,s}_dynamic.onnx``; ``variant="opencv"``: the file for cv2."""
    if variant == "opencv":
        return peers_dir() / "yunet" / "face_detection_yunet_2026may.onnx"
    if variant not in ("n", "s"):
        raise ValueError(f"YuNet variant must be 'n', 's' or 'opencv', got {variant!r}")
    return peers_dir() / "yunet" / f"yunet_{variant}_dynamic.onnx"


class YuNet(OrtPeer):
    """YuNet-n or -s on ONNX Runtime: ``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,),
    landmarks (K,5,2))`` float32 in original-image pixels, highest score first."""

    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 5

    def __init__(self, variant: str = "n", model_path: str | os.PathLike | None = None,
                 **settings: Unpack[Settings]) -> None:
        self.name = f"yunet-{variant}"
        super().__init__(require_file(model_path or default_model_path(variant), f"YuNet-{variant}"), **settings)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def settings(self) -> dict:
        return self._settings(padding="bottom/right, black")

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,3,H,W] float32 BGR 0-255, black padding; (sx, sy); (0, 0))``."""
        return padded_input(image, self.input_size, self.interpolation, lambda bgr: bgr)

    def candidates(self, x: np.ndarray, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return decode(dict(zip(self.output_names, outputs)), x.shape[2], x.shape[3], self.score_threshold, self.top_k)


def decode(
    out: dict[str, np.ndarray], height: int, width: int, score_threshold: float, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YuNet outputs for an ``height x width`` input -> the ``top_k`` best candidates with
    score >= ``score_threshold``: boxes (K,4) xyxy, scores (K,), landmarks (K,5,2), input pixels."""
    all_b, all_s, all_p = [], [], []
    for s in STRIDES:
        gw = width // s
        cls = np.clip(out[f"cls_{s}"].reshape(-1), 0, 1)
        obj = np.clip(out[f"obj_{s}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        idx = np.flatnonzero(score >= score_threshold)
        if idx.size == 0:
            continue
        g = np.stack([idx % gw, idx // gw], axis=1).astype(np.float32)
        bb = out[f"bbox_{s}"].reshape(-1, 4)[idx]
        centre = (g + bb[:, 0:2]) * s
        half = np.exp(bb[:, 2:4]) * s / 2
        all_b.append(np.concatenate([centre - half, centre + half], axis=1))
        all_p.append((g[:, None, :] + out[f"kps_{s}"].reshape(-1, 5, 2)[idx]) * s)
        all_s.append(score[idx])
    return best_of_levels(all_b, all_s, all_p, score_threshold, top_k)


class YuNetOpenCV(Peer):
    """YuNet-s through ``cv2.FaceDetectorYN`` (OpenCV's own pre/post-processing and NMS), as an
    application calls it: the image resized by facelite's policy, ``setInputSize`` to the resized
    size, ``detect``. Same output contract as :class:`YuNet`.

    ``threads=1`` sets OpenCV's process-wide thread count to 1 (``cv2.setNumThreads``).
    """

    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 5

    def __init__(self, model_path: str | os.PathLike | None = None, **settings: Unpack[Settings]) -> None:
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no cv2.FaceDetectorYN (needs >= 4.5.4)")
        self.name = "yunet-s-opencv"
        self.model_path = require_file(model_path or default_model_path("opencv"), "YuNet for cv2.FaceDetectorYN")
        self._configure(**settings)
        if self.threads:
            cv2.setNumThreads(self.threads)
        self.detector = cv2.FaceDetectorYN.create(str(self.model_path), "", (self.input_size, self.input_size),
                                                  self.score_threshold, self.nms_threshold, self.top_k)
        self.backend = f"opencv {cv2.__version__} FaceDetectorYN"
        self._size: tuple[int, int] | None = None

    def settings(self) -> dict:
        return self._settings(padding="OpenCV's (bottom/right, black)")

    def __call__(self, image: np.ndarray) -> Detections:
        check_bgr(image)
        resized, sx, sy, _ = resize_longer_side(image, self.input_size, 32, self.interpolation)
        size = (resized.shape[1], resized.shape[0])
        if size != self._size:
            self.detector.setInputSize(size)
            self._size = size
        _, faces = self.detector.detect(resized)
        if faces is None or len(faces) == 0:
            return empty_detections()
        faces = np.asarray(faces, dtype=np.float32).reshape(len(faces), -1)
        boxes = faces[:, 0:4].copy()
        boxes[:, 2:4] += boxes[:, 0:2]
        return finish(boxes, faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2), image.shape, (sx, sy),
                      nms_threshold=None, keep_top_k=self.keep_top_k)
