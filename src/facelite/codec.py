"""Box and landmark coding relative to anchors (SSD / RetinaFace convention), NumPy.

Anchors are ``(cx, cy, w, h)`` and boxes ``(x1, y1, x2, y2)``, both in network-input
pixels. With variances ``(v0, v1)``:

- box centre  = anchor centre + d[0:2] * v0 * anchor size
- box size    = anchor size * exp(d[2:4] * v1)
- landmark i  = anchor centre + d[2i:2i+2] * v0 * anchor size

The PyTorch twin used in training (:mod:`facelite.train.codec_torch`) is tested
against these functions.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-6


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(N, 4) deltas + (N, 4) anchors -> (N, 4) float32 xyxy boxes."""
    d = deltas.astype(np.float32, copy=False)
    centre = anchors[:, :2] + d[:, :2] * variances[0] * anchors[:, 2:]
    size = anchors[:, 2:] * np.exp(d[:, 2:] * variances[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32, copy=False)


def encode_boxes(boxes: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(N, 4) xyxy boxes + (N, 4) anchors -> (N, 4) float32 deltas (inverse of :func:`decode_boxes`)."""
    b = boxes.astype(np.float32, copy=False)
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = np.maximum(b[:, 2:] - b[:, :2], _EPS)
    d_c = (centre - anchors[:, :2]) / (variances[0] * anchors[:, 2:])
    d_s = np.log(size / anchors[:, 2:]) / variances[1]
    return np.concatenate([d_c, d_s], axis=1).astype(np.float32, copy=False)


def decode_landmarks(deltas: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(N, 2K) deltas + (N, 4) anchors -> (N, K, 2) float32 points."""
    d = deltas.astype(np.float32, copy=False).reshape(len(deltas), deltas.shape[-1] // 2, 2)
    return (anchors[:, None, :2] + d * variances[0] * anchors[:, None, 2:]).astype(np.float32, copy=False)


def encode_landmarks(points: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(N, K, 2) points + (N, 4) anchors -> (N, 2K) float32 deltas."""
    p = points.astype(np.float32, copy=False)
    d = (p - anchors[:, None, :2]) / (variances[0] * anchors[:, None, 2:])
    return d.reshape(len(points), 2 * p.shape[1]).astype(np.float32, copy=False)
