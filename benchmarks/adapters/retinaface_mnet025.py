"""RetinaFace with the MobileNet-0.25 backbone (the classic PyTorch release), ONNX Runtime.

Contract (``../shared/peers/README.md``): input ``[1,3,H,W]`` float32, BGR minus
(104, 117, 123), any H, W; outputs ``loc [1,N,4]``, ``conf [1,N,2]`` (softmax applied,
face = column 1), ``iou [1,N,10]`` (landmark offsets). Priors at strides 8/16/32 with
min sizes [16,32], [64,128], [256,512], order row, column, size; variances (0.1, 0.2).

The priors and the decoding are exactly facelite's (:mod:`facelite.anchors`,
:mod:`facelite.codec`), with a :class:`facelite.ModelSpec` describing this network, so
the adapter doubles as a check that the spec is general enough for a third-party model.

Pre/post-processing follows facelite's evaluation policy: longer side = ``input_size``
(area averaging when shrinking more than 2x, else bilinear), pad bottom/right to a multiple of 32 with the mean colour (0 after
normalisation), score threshold 0.02, top-k 5000 before NMS, NMS 0.4, at most 750 faces.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facelite.anchors import anchors_for
from facelite.codec import decode_boxes, decode_landmarks
from facelite.spec import ModelSpec

from ..common import nms, ort_session, peers_dir, resize_longer_side

SPEC = ModelSpec(
    name="retinaface-mnet0.25",
    alpha=0.25,
    strides=(8, 16, 32),
    min_sizes=((16, 32), (64, 128), (256, 512)),
    variances=(0.1, 0.2),
    channel_order="BGR",
    mean=(104.0, 117.0, 123.0),
    std=(1.0, 1.0, 1.0),
)


def default_model_path() -> Path:
    return peers_dir() / "retinaface_mnet025" / "retinaface_mnet025.onnx"


class RetinaFaceMnet025:
    """``image (BGR uint8) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))``, original pixels."""

    name = "retinaface-mnet0.25"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        input_size: int = 640,
        score_threshold: float = 0.02,
        nms_threshold: float = 0.4,
        top_k: int = 5000,
        keep_top_k: int = 750,
        threads: int | None = 1,
        interpolation: int | str = "auto",
        nms_plus_one: bool = False,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.session = ort_session(self.model_path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self.keep_top_k = keep_top_k
        self.interpolation = interpolation
        self.nms_plus_one = nms_plus_one
        self._mean = np.asarray(SPEC.mean, dtype=np.float32)

    def settings(self) -> dict:
        return {
            "model": self.name,
            "input_size": self.input_size,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "top_k": self.top_k,
            "keep_top_k": self.keep_top_k,
            "interpolation": str(self.interpolation),
            "nms_plus_one": self.nms_plus_one,
        }

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        resized, sx, sy, (ph, pw) = resize_longer_side(image, self.input_size, SPEC.pad_multiple, self.interpolation)
        h, w = resized.shape[:2]
        x = np.zeros((1, 3, ph, pw), dtype=np.float32)  # 0 = the mean colour after normalisation
        x[0, :, :h, :w] = (resized.astype(np.float32) - self._mean).transpose(2, 0, 1)
        return x, sx, sy

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("expected a BGR uint8 HxWx3 image")
        x, sx, sy = self.preprocess(image)
        loc, conf, lmk = self.session.run(None, {self.input_name: x})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: self.top_k]
        if keep.size == 0:  # (facelite.codec.decode_landmarks cannot reshape an empty array)
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        anchors = anchors_for(SPEC, x.shape[2], x.shape[3])[keep]
        boxes = decode_boxes(loc[0, keep], anchors, SPEC.variances)
        points = decode_landmarks(lmk[0, keep], anchors, SPEC.variances)
        scores = scores[keep]
        k = nms(boxes, scores, self.nms_threshold, self.nms_plus_one)[: self.keep_top_k]
        boxes, scores, points = boxes[k], scores[k], points[k]
        # back to the original image's pixels, boxes clipped to it
        scale = np.asarray([sx, sy], dtype=np.float32)
        boxes = (boxes.reshape(-1, 2, 2) / scale).reshape(-1, 4)
        points = points / scale
        h, w = image.shape[:2]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, h)
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)
