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
from typing import Unpack

import numpy as np

from facelite.anchors import anchors_for
from facelite.codec import decode_boxes, decode_landmarks
from facelite.spec import ModelSpec

from ..common import OrtPeer, Settings, empty_detections, padded_input, peers_dir

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


class RetinaFaceMnet025(OrtPeer):
    """``image (BGR uint8) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))``, original pixels.

    As the RetinaFace release's own code: candidates with a score strictly above
    ``score_threshold``, boxes left in the result when they are empty once clipped; ``nms_plus_one``
    uses its NMS's ``+1`` area convention."""

    name = "retinaface-mnet0.25"
    drop_empty = False

    def __init__(self, model_path: str | os.PathLike | None = None, nms_plus_one: bool = False,
                 **settings: Unpack[Settings]) -> None:
        super().__init__(Path(model_path) if model_path is not None else default_model_path(), **settings)
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

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
        """``(tensor [1,3,H,W] float32 BGR - mean, padded with 0 = the mean colour; (sx, sy); (0, 0))``."""
        return padded_input(image, self.input_size, self.interpolation, lambda bgr: bgr.astype(np.float32) - self._mean,
                            multiple=SPEC.pad_multiple)

    def candidates(self, x: np.ndarray, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        loc, conf, lmk = outputs
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: self.top_k]
        if keep.size == 0:  # (facelite.codec.decode_landmarks cannot reshape an empty array)
            return empty_detections()
        anchors = anchors_for(SPEC, x.shape[2], x.shape[3])[keep]
        return (decode_boxes(loc[0, keep], anchors, SPEC.variances), scores[keep],
                decode_landmarks(lmk[0, keep], anchors, SPEC.variances))
