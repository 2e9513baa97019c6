"""Ultra-Light-Fast-Generic-Face-Detector-1MB, RFB version (MIT), ONNX Runtime. Boxes only.

Contract (``<shared>/peers/README.md``): **fixed** input ``[1,3,240,320]`` (RFB-320) or
``[1,3,480,640]`` (RFB-640), **RGB, (x - 127) / 128**; the image is *stretched* to that size
(not letterboxed), as the project's own demo does, so the aspect ratio is not kept and
``input_size`` must be the model's width (320 or 640). Outputs ``scores [1,N,2]`` (softmax;
face = column 1) and ``boxes [1,N,4]``, already decoded corners ``x1 y1 x2 y2`` in 0-1 of the input.

Post-processing: score >= 0.02, the 5000 best into NMS 0.4 (the project's own: 0.3), at most
750 faces. Interpolation: facelite's policy per axis (area averaging when either side shrinks
more than 2x, else bilinear).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Unpack

import cv2
import numpy as np

from ..common import Detections, OrtPeer, Settings, check_bgr, finish, peers_dir, pre_nms_top_k, require_file

OWN_NMS_THRESHOLD = 0.3
INPUT_SHAPES = {320: (240, 320), 640: (480, 640)}
"""Width -> the fixed ``(height, width)`` of RFB-320 and RFB-640."""


def default_model_path(width: int = 320) -> Path:
    """``<shared>/peers/ultralight/version-RFB-{320,640}.onnx``."""
    if width not in INPUT_SHAPES:
        raise ValueError(f"Ultra-Light RFB comes in widths {sorted(INPUT_SHAPES)}, got {width}")
    return peers_dir() / "ultralight" / f"version-RFB-{width}.onnx"


class UltraLightRFB(OrtPeer):
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), None)`` float32, original-image
    pixels, highest score first (the model has no landmarks).

    ``input_size``: 320 (RFB-320, input 320x240) or 640 (RFB-640, input 640x480).
    """

    own_nms_threshold = OWN_NMS_THRESHOLD
    num_landmarks = 0

    def __init__(self, model_path: str | os.PathLike | None = None, input_size: int = 320,
                 **settings: Unpack[Settings]) -> None:
        if input_size not in INPUT_SHAPES:
            raise ValueError(f"Ultra-Light RFB has a fixed input: input_size must be 320 or 640 (the model's width), "
                             f"got {input_size}")
        self.name = f"ultralight-rfb-{input_size}"
        super().__init__(require_file(model_path or default_model_path(input_size), f"Ultra-Light RFB-{input_size}"),
                         input_size=input_size, **settings)
        shape = tuple(self.session.get_inputs()[0].shape[2:])
        if shape != INPUT_SHAPES[input_size]:
            raise ValueError(f"{self.model_path}: input shape {shape}, expected {INPUT_SHAPES[input_size]}")
        self.input_shape = INPUT_SHAPES[input_size]

    def settings(self) -> dict:
        h, w = self.input_shape
        return self._settings(fixed_input=f"{w}x{h}, image stretched (aspect ratio not kept)")

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """``[1,3,h,w]`` float32 RGB ``(x - 127) / 128`` of the stretched image."""
        h, w = self.input_shape
        ih, iw = image.shape[:2]
        interp = self.interpolation
        if interp == "auto":
            interp = cv2.INTER_AREA if (w * 2 < iw or h * 2 < ih) else cv2.INTER_LINEAR
        rgb = cv2.cvtColor(cv2.resize(image, (w, h), interpolation=interp), cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None])

    def __call__(self, image: np.ndarray) -> Detections:
        """The boxes come out in 0-1 of the stretched input: straight to the original image's pixels."""
        check_bgr(image)
        scores, boxes = self.run(self.preprocess(image))
        scores = scores[0, :, 1]
        k = pre_nms_top_k(scores, self.score_threshold, self.top_k)
        ih, iw = image.shape[:2]
        b = boxes[0, k] * np.asarray([iw, ih, iw, ih], dtype=np.float32)  # straight to original pixels
        return finish(b, scores[k], None, image.shape, nms_threshold=self.nms_threshold, keep_top_k=self.keep_top_k)
