"""MTCNN (Zhang et al. 2016) with the weights facenet-pytorch ships (MIT), on PyTorch (CPU).

Contract (``<shared>/peers/README.md``): three PyTorch state dicts ``{pnet,rnet,onet}.pt``
(loaded with ``weights_only=True``); the classic cascade, re-implemented here as facenet-pytorch's
``detect_face`` does it: a P-Net image pyramid (minimum face 20 px, factor 0.709, NMS 0.5 per
scale and 0.7 over scales), R-Net on 24x24 crops (NMS 0.7), O-Net on 48x48 crops with 5
landmarks (NMS 0.7 on intersection over the smaller box). Input RGB ``(x - 127.5) / 128``;
crops resized with area averaging. Stage thresholds 0.6 and 0.7; the O-Net threshold is the
adapter's ``score_threshold`` (facenet-pytorch's default: 0.7).

"Input size" here: the image is first resized so that its longer side is ``input_size`` (as for
every other model), and the pyramid is built on that image; the 20 px minimum face is in its
pixels. No NMS threshold of the comparison applies (the cascade has its own).

torch is needed (the ``train`` extra); the cascade runs with ``threads`` torch threads.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..common import (
    Detections,
    MissingDependencyError,
    check_bgr,
    empty_detections,
    finish,
    nms,
    peers_dir,
    require_file,
    resize_longer_side,
)

STAGE_THRESHOLDS = (0.6, 0.7)
MIN_FACE = 20
FACTOR = 0.709


def default_model_dir() -> Path:
    return peers_dir() / "mtcnn"


def _load(path: Path) -> dict:
    import torch

    return {k: v.float() for k, v in torch.load(str(path), map_location="cpu", weights_only=True).items()}


class MTCNN:
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))`` float32,
    original-image pixels, highest score first."""

    num_landmarks = 5

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        input_size: int = 640,
        score_threshold: float = 0.02,
        nms_threshold: float = 0.4,
        keep_top_k: int = 750,
        threads: int | None = 1,
        interpolation: int | str = "auto",
    ) -> None:
        try:
            import torch
        except ModuleNotFoundError:
            raise MissingDependencyError("the MTCNN adapter needs torch (pip install torch==2.13.0, see DEVELOPERS.md)") from None
        folder = Path(model_dir) if model_dir is not None else default_model_dir()
        files = [require_file(folder / f"{n}.pt", f"MTCNN {n}") for n in ("pnet", "rnet", "onet")]
        self.name = "mtcnn"
        self.model_path = files[0]
        self.model_files = files
        self.pnet, self.rnet, self.onet = (_load(p) for p in files)
        if threads:
            torch.set_num_threads(threads)
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold  # recorded only: the cascade uses its own NMS
        self.keep_top_k = keep_top_k
        self.threads = threads
        self.interpolation = interpolation

    def settings(self) -> dict:
        return {
            "model": self.name, "backend": "torch (facenet-pytorch's cascade, re-implemented)",
            "input_size": self.input_size, "score_threshold": self.score_threshold,
            "stage_thresholds": list(STAGE_THRESHOLDS), "min_face": MIN_FACE, "factor": FACTOR,
            "nms": "cascade's own: 0.5 / 0.7 / 0.7 / 0.7 (min)", "keep_top_k": self.keep_top_k,
            "interpolation": str(self.interpolation),
        }

    def __call__(self, image: np.ndarray) -> Detections:
        import torch

        check_bgr(image)
        resized, sx, sy, _ = resize_longer_side(image, self.input_size, 1, self.interpolation)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        with torch.inference_mode():
            img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
            boxes, points = self._cascade(img)
        if len(boxes) == 0:
            return empty_detections()
        return finish(boxes[:, :4], boxes[:, 4], points, image.shape, (sx, sy), nms_threshold=None,
                      keep_top_k=self.keep_top_k)

    # ------------------------------------------------------------------ the cascade

    def _cascade(self, img) -> tuple[np.ndarray, np.ndarray]:
        """``img`` [1,3,h,w] float RGB 0-255 -> boxes (K,5) ``x1 y1 x2 y2 score``, points (K,5,2)."""
        import torch.nn.functional as F

        h, w = img.shape[2:]
        m = 12.0 / MIN_FACE
        minl = min(h, w) * m
        scales = []
        while minl >= 12:
            scales.append(m)
            m *= FACTOR
            minl *= FACTOR
        # stage 1: P-Net over the pyramid
        found = []
        for s in scales:
            x = F.interpolate(img, size=(int(h * s + 1), int(w * s + 1)), mode="area")
            reg, prob = _pnet((x - 127.5) * 0.0078125, self.pnet)
            b = _generate_boxes(reg[0].numpy(), prob[0, 1].numpy(), s, STAGE_THRESHOLDS[0])
            if len(b):
                found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        b = np.concatenate(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        b = np.stack([b[:, 0] + b[:, 5] * bw, b[:, 1] + b[:, 6] * bh, b[:, 2] + b[:, 7] * bw,
                      b[:, 3] + b[:, 8] * bh, b[:, 4]], axis=1)
        b = _square(b)
        # stage 2: R-Net
        crops, b = _crops(img, b, 24, w, h)
        if len(b) == 0:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        reg, prob = (t.numpy() for t in _rnet((crops - 127.5) * 0.0078125, self.rnet))
        keep = prob[:, 1] > STAGE_THRESHOLDS[1]
        b = np.concatenate([b[keep, :4], prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        k = nms(b[:, :4], b[:, 4], 0.7)
        b = _square(_regress(b[k], reg[k]))
        # stage 3: O-Net
        crops, b = _crops(img, b, 48, w, h)
        if len(b) == 0:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        reg, lmk, prob = (t.numpy() for t in _onet((crops - 127.5) * 0.0078125, self.onet))
        keep = prob[:, 1] > self.score_threshold
        b = np.concatenate([b[keep, :4], prob[keep, 1:2]], axis=1)
        reg, lmk = reg[keep], lmk[keep]
        bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
        points = np.stack([bw[:, None] * lmk[:, 0:5] + b[:, 0:1] - 1, bh[:, None] * lmk[:, 5:10] + b[:, 1:2] - 1], axis=2)
        b = _regress(b, reg)
        k = _nms_min(b[:, :4], b[:, 4], 0.7)
        return b[k].astype(np.float32), points[k].astype(np.float32)


# --------------------------------------------------------------------------- the three networks


def _pnet(x, p):
    import torch.nn.functional as F

    x = F.prelu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"])
    x = F.max_pool2d(x, 2, 2, ceil_mode=True)
    x = F.prelu(F.conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"])
    x = F.prelu(F.conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
    prob = F.softmax(F.conv2d(x, p["conv4_1.weight"], p["conv4_1.bias"]), dim=1)
    return F.conv2d(x, p["conv4_2.weight"], p["conv4_2.bias"]), prob


def _rnet(x, p):
    import torch.nn.functional as F

    x = F.max_pool2d(F.prelu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"]), 3, 2, ceil_mode=True)
    x = F.max_pool2d(F.prelu(F.conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"]), 3, 2, ceil_mode=True)
    x = F.prelu(F.conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"])
    x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)  # the Caffe weights' flattening order
    x = F.prelu(F.linear(x, p["dense4.weight"], p["dense4.bias"]), p["prelu4.weight"])
    return F.linear(x, p["dense5_2.weight"], p["dense5_2.bias"]), F.softmax(F.linear(x, p["dense5_1.weight"], p["dense5_1.bias"]), dim=1)


def _onet(x, p):
    import torch.nn.functional as F

    x = F.max_pool2d(F.prelu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"]), p["prelu1.weight"]), 3, 2, ceil_mode=True)
    x = F.max_pool2d(F.prelu(F.conv2d(x, p["conv2.weight"], p["conv2.bias"]), p["prelu2.weight"]), 3, 2, ceil_mode=True)
    x = F.max_pool2d(F.prelu(F.conv2d(x, p["conv3.weight"], p["conv3.bias"]), p["prelu3.weight"]), 2, 2, ceil_mode=True)
    x = F.prelu(F.conv2d(x, p["conv4.weight"], p["conv4.bias"]), p["prelu4.weight"])
    x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
    x = F.prelu(F.linear(x, p["dense5.weight"], p["dense5.bias"]), p["prelu5.weight"])
    return (F.linear(x, p["dense6_2.weight"], p["dense6_2.bias"]), F.linear(x, p["dense6_3.weight"], p["dense6_3.bias"]),
            F.softmax(F.linear(x, p["dense6_1.weight"], p["dense6_1.bias"]), dim=1))


# --------------------------------------------------------------------------- box helpers (facenet-pytorch's)


def _generate_boxes(reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net cells with prob >= threshold -> (K, 9) ``x1 y1 x2 y2 score dx1 dy1 dx2 dy2`` in image pixels."""
    ys, xs = np.nonzero(prob >= threshold)
    if ys.size == 0:
        return np.zeros((0, 9), np.float32)
    cell = np.stack([xs, ys], axis=1).astype(np.float32)
    q1 = np.floor((2 * cell + 1) / scale)
    q2 = np.floor((2 * cell + 12) / scale)
    return np.concatenate([q1, q2, prob[ys, xs][:, None], reg[:, ys, xs].T], axis=1).astype(np.float32)


def _regress(b: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
    out = b.copy()
    out[:, 0:4] = b[:, 0:4] + reg[:, 0:4] * np.stack([w, h, w, h], axis=1)
    return out


def _square(b: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    out = b.copy()
    out[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _crops(img, b: np.ndarray, size: int, w: int, h: int):
    """Crops of ``img`` inside the boxes (clipped to the image, as facenet-pytorch's ``pad``),
    resized to ``size`` x ``size``; and the boxes that gave a non-empty crop."""
    import torch
    import torch.nn.functional as F

    q = np.trunc(b[:, :4]).astype(np.int64)
    x, y = np.maximum(q[:, 0], 1), np.maximum(q[:, 1], 1)
    ex, ey = np.minimum(q[:, 2], w), np.minimum(q[:, 3], h)
    crops, kept = [], []
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            crops.append(F.interpolate(img[:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]], size=(size, size), mode="area"))
            kept.append(k)
    if not crops:
        return torch.zeros((0, 3, size, size)), b[:0]
    return torch.cat(crops), b[kept]


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS on intersection over the *smaller* box, ``+1`` areas (MTCNN's last step)."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)
