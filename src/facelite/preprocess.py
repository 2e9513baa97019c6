"""Image -> network input tensor, and the mapping of coordinates between the two.

The image is resized (aspect ratio kept) so that its **longer side equals**
``input_size``, then padded on the **bottom and right** to a multiple of
``spec.pad_multiple``. Because the padding is only bottom/right, the mapping between
original-image pixels and network-input pixels is a pure per-axis scale:
``x_net = x_orig * scale_x``, ``y_net = y_orig * scale_y``, where ``scale_x`` =
resized width / original width (and likewise for y). Coordinates are continuous
pixel coordinates with the origin at the top-left *corner* of the top-left pixel
(so a box edge at the image border maps to the border exactly).

The padded area is filled with zeros *after* normalisation (i.e. with the mean
colour), the same value the network's own zero padding uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .spec import ModelSpec

__all__ = ["Letterbox", "letterbox_geometry", "normalise_into", "preprocess", "preprocess_batch"]


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed into the network input.

    Attributes:
        original_size: ``(height, width)`` of the original image in pixels.
        resized_size: ``(height, width)`` of the resized image inside the input.
        padded_size: ``(height, width)`` of the network input (resized + bottom/right padding).
    """

    original_size: tuple[int, int]
    resized_size: tuple[int, int]
    padded_size: tuple[int, int]

    @property
    def scale_x(self) -> float:
        """Network-input pixels per original pixel, horizontally."""
        return self.resized_size[1] / self.original_size[1]

    @property
    def scale_y(self) -> float:
        """Network-input pixels per original pixel, vertically."""
        return self.resized_size[0] / self.original_size[0]

    @property
    def scale(self) -> float:
        """The nominal resize factor: input size / longer original side."""
        return max(self.resized_size) / max(self.original_size)

    def _scales(self, points: np.ndarray) -> np.ndarray:
        if points.shape[-1] % 2:
            raise ValueError(f"last axis must hold (x, y) pairs, got shape {points.shape}")
        return np.tile(np.array([self.scale_x, self.scale_y], dtype=np.float64), points.shape[-1] // 2)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Network-input coordinates -> original-image coordinates.

        Args:
            points: float array whose last axis holds ``(x, y)`` pairs: points ``(..., 2)``,
                xyxy boxes ``(..., 4)``, or flattened landmarks ``(..., 10)``.

        Returns:
            float32 array of the same shape (not clipped).
        """
        p = np.asarray(points, dtype=np.float32)
        return (p / self._scales(p)).astype(np.float32)

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """Original-image coordinates -> network-input coordinates (inverse of :meth:`to_original`)."""
        p = np.asarray(points, dtype=np.float32)
        return (p * self._scales(p)).astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def letterbox_geometry(height: int, width: int, input_size: int, pad_multiple: int) -> Letterbox:
    """The :class:`Letterbox` for an ``height`` x ``width`` image (no pixels touched)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    scale = input_size / max(height, width)
    rh = max(1, min(input_size, int(round(height * scale))))
    rw = max(1, min(input_size, int(round(width * scale))))
    return Letterbox((height, width), (rh, rw), (_round_up(rh, pad_multiple), _round_up(rw, pad_multiple)))


def _resize(image: np.ndarray, box: Letterbox) -> np.ndarray:
    rh, rw = box.resized_size
    h, w = box.original_size
    if (rh, rw) == (h, w):
        return image
    if 2 * max(rh, rw) >= max(h, w):
        return cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    return _shrink(image, rw, rh)


def _shrink(image: np.ndarray, rw: int, rh: int) -> np.ndarray:
    """Shrink ``image`` to ``rw`` x ``rh`` by a factor ``s`` > 2 without aliasing.

    Bilinear interpolation to ``2**k`` times the target size (``2**k <= s < 2**(k+1)``, so by a
    factor in [1, 2)), then ``k`` exact 2x2 averages (OpenCV's INTER_AREA at an integer factor,
    which is fast). The result is close to INTER_AREA at the full factor (mean difference
    about 0.2-0.4 grey levels on WIDER FACE images), which costs several times more at a
    non-integer factor (about 7 ms for 1024 -> 320 pixels, against 2). The geometry is exactly the
    letterbox's: output pixel ``j`` is centred on original ``(j + 0.5) * w / rw``."""
    h, w = image.shape[:2]
    f = 1
    while 4 * f * max(rh, rw) <= max(h, w):
        f *= 2
    out = cv2.resize(image, (rw * 2 * f, rh * 2 * f), interpolation=cv2.INTER_LINEAR)
    while f >= 1:
        out = cv2.resize(out, (rw * f, rh * f), interpolation=cv2.INTER_AREA)
        f //= 2
    return out


def normalise_into(resized: np.ndarray, spec: ModelSpec, out: np.ndarray) -> None:
    """Write ``(resized - mean) / std`` in ``spec.channel_order`` into ``out[:, :h, :w]``.

    Args:
        resized: ``h x w x 3`` uint8 BGR image.
        spec: gives channel order, mean and std (on the 0..255 scale, in channel order).
        out: float32 ``(3, H, W)`` view with ``H >= h`` and ``W >= w``; the region outside
            ``[:h, :w]`` is left untouched.
    """
    h, w = resized.shape[:2]
    planes = cv2.split(resized)  # B, G, R
    src = (2, 1, 0) if spec.channel_order == "RGB" else (0, 1, 2)
    for c in range(3):
        a = 1.0 / spec.std[c]
        # one pass per channel: plane * a - mean * a, converted to float32 straight into the output
        cv2.addWeighted(planes[src[c]], a, planes[src[c]], 0.0, -spec.mean[c] * a, dst=out[c, :h, :w], dtype=cv2.CV_32F)


def preprocess(image: np.ndarray, spec: ModelSpec, input_size: int) -> tuple[np.ndarray, Letterbox]:
    """Resize, pad and normalise one image for the network.

    Args:
        image: ``H x W x 3`` uint8 BGR array (see :func:`facelite.imageio.to_bgr`).
        spec: the model's :class:`~facelite.spec.ModelSpec` (normalisation, channel order,
            pad multiple).
        input_size: the longer side of the resized image, in pixels.

    Returns:
        ``(tensor, letterbox)``: float32 ``(1, 3, Hp, Wp)`` C-contiguous, where ``Hp, Wp``
        is ``letterbox.padded_size``; and the :class:`Letterbox` to map coordinates back.
    """
    box = letterbox_geometry(image.shape[0], image.shape[1], input_size, spec.pad_multiple)
    ph, pw = box.padded_size
    rh, rw = box.resized_size
    out = np.empty((1, 3, ph, pw), dtype=np.float32)
    out[:, :, rh:, :] = 0.0
    out[:, :, :rh, rw:] = 0.0
    normalise_into(_resize(image, box), spec, out[0])
    return out, box


def preprocess_batch(
    images: Sequence[np.ndarray], spec: ModelSpec, input_size: int
) -> tuple[np.ndarray, list[Letterbox]]:
    """Like :func:`preprocess` for several images in one tensor.

    Every image is placed at the top-left of a common ``(Hp, Wp)`` (the largest padded
    size among them), so each keeps its own scale; the rest is zero.

    Returns:
        float32 ``(B, 3, Hp, Wp)`` and one :class:`Letterbox` per image, whose
        ``padded_size`` is the common ``(Hp, Wp)``.
    """
    if len(images) == 0:
        raise ValueError("no images")
    boxes = [letterbox_geometry(im.shape[0], im.shape[1], input_size, spec.pad_multiple) for im in images]
    ph = max(b.padded_size[0] for b in boxes)
    pw = max(b.padded_size[1] for b in boxes)
    out = np.zeros((len(images), 3, ph, pw), dtype=np.float32)
    result = []
    for i, (im, b) in enumerate(zip(images, boxes)):
        normalise_into(_resize(im, b), spec, out[i])
        result.append(Letterbox(b.original_size, b.resized_size, (ph, pw)))
    return out, result
