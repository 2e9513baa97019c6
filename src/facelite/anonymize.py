"""Anonymisation: blur, pixelate or fill the faces in an image.

Example::

    import facelite
    from facelite.anonymize import anonymize

    image = facelite.load_image("street.jpg")
    faces = facelite.FaceDetector().detect(image)
    safe = anonymize(image, faces, method="pixelate")

Only pixels inside each face's region (its box grown by ``margin`` on every side, clipped to
the image; with ``shape="ellipse"`` the ellipse inscribed in that box) change; everything
else is left exactly as it was. The blur and the pixel blocks scale with the face, so a
small face is as unrecognisable as a large one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from .face import Face

__all__ = ["METHODS", "SHAPES", "anonymize", "face_region"]

METHODS = ("blur", "pixelate", "fill")
SHAPES = ("ellipse", "box")


def face_region(
    box: Sequence[float], image_size: tuple[int, int], margin: float = 0.15
) -> tuple[int, int, int, int] | None:
    """The integer pixel rectangle ``(x1, y1, x2, y2)`` (end exclusive) covered for a face box.

    The box is grown by ``margin`` x its width/height on each side, then rounded outwards to
    whole pixels and clipped to the image ``(height, width)``; ``None`` if nothing is left.
    """
    h, w = image_size
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    ix1, iy1 = max(0, math.floor(x1 - mx)), max(0, math.floor(y1 - my))
    ix2, iy2 = min(w, math.ceil(x2 + mx)), min(h, math.ceil(y2 + my))
    if ix2 <= ix1 or iy2 <= iy1:
        return None
    return ix1, iy1, ix2, iy2


def _odd(n: float) -> int:
    k = max(3, int(round(n)))
    return k if k % 2 else k + 1


def _obscure(roi: np.ndarray, method: str, strength: float, fill: Sequence[int]) -> np.ndarray:
    h, w = roi.shape[:2]
    if method == "fill":
        out = np.empty_like(roi)
        out[:] = np.asarray(fill, dtype=roi.dtype)[: roi.shape[2]] if roi.ndim == 3 else fill[0]
        return out
    if method == "pixelate":
        blocks = max(2, int(round(8 / strength)))  # blocks across the longer side
        cell = max(h, w) / blocks
        small = cv2.resize(roi, (max(1, round(w / cell)), max(1, round(h / cell))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    # blur: a Gaussian whose width is a fixed fraction of the face (sigma = size / 8 at strength 1)
    sigma = max(h, w) / 8.0 * strength
    k = _odd(min(6 * sigma + 1, 2 * max(h, w) + 1))
    return cv2.GaussianBlur(roi, (k, k), sigma, borderType=cv2.BORDER_REPLICATE)


def anonymize(
    image: np.ndarray,
    faces: Iterable[Face | dict | Sequence[float]],
    method: str = "blur",
    *,
    margin: float = 0.15,
    shape: str = "ellipse",
    strength: float = 1.0,
    fill: Sequence[int] = (0, 0, 0),
    inplace: bool = False,
) -> np.ndarray:
    """A copy of ``image`` with every face blurred, pixelated or filled.

    Args:
        image: ``H x W x 3`` uint8 BGR array (``H x W`` works too).
        faces: :class:`~facelite.face.Face` objects, detection dicts with ``"box"``, or
            ``(x1, y1, x2, y2)`` boxes, in this image's pixels.
        method: ``"blur"`` (Gaussian), ``"pixelate"`` (coarse blocks) or ``"fill"`` (solid colour).
        margin: grow each box by this fraction of its width/height on every side (covers hair
            and chin that face boxes leave out).
        shape: ``"ellipse"`` (inscribed in the grown box) or ``"box"`` (the whole rectangle).
        strength: > 0; scales the blur width (``sigma = face size / 8 x strength``) or the block
            size (``8 / strength`` blocks across the face).
        fill: BGR colour for ``method="fill"``.
        inplace: modify ``image`` itself instead of a copy.

    Returns:
        The anonymised image (``image`` itself when ``inplace``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an H x W x 3 image array, got {getattr(image, 'shape', type(image).__name__)}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not strength > 0:
        raise ValueError(f"strength must be > 0, got {strength!r}")
    out = image if inplace else image.copy()
    for face in faces:
        if isinstance(face, Face):
            box = face.box
        elif isinstance(face, dict):
            box = face["box"]
        else:
            box = face
        region = face_region(box, out.shape[:2], margin)
        if region is None:
            continue
        x1, y1, x2, y2 = region
        roi = out[y1:y2, x1:x2]
        obscured = _obscure(np.ascontiguousarray(roi), method, strength, fill)
        if shape == "box":
            roi[...] = obscured
        else:
            h, w = roi.shape[:2]
            mask = np.zeros((h, w), np.uint8)
            cv2.ellipse(mask, ((w / 2.0, h / 2.0), (float(w), float(h)), 0.0), 255, -1)
            sel = mask.astype(bool)
            roi[sel] = obscured[sel]
    return out
