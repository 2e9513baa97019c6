"""Face alignment: warp a face so its 5 landmarks land on the ArcFace template.

Example::

    import facelite

    detector = facelite.FaceDetector()
    image = facelite.load_image("photo.jpg")
    for face in detector.detect(image):
        crop = facelite.align(image, face)           # 112 x 112 x 3 uint8 BGR
        crop, matrix = facelite.align(image, face, size=224, return_matrix=True)

The transform is the least-squares similarity (rotation, uniform scale, translation; no
reflection or shear) from the face's landmarks to the template (Umeyama's method, in NumPy).
Coordinates follow facelite's convention throughout: continuous pixels, origin at the
top-left corner of the top-left pixel. The template for ``size`` other than 112 is the
112 x 112 ArcFace template scaled by ``size / 112``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .face import Face

__all__ = ["ARCFACE_TEMPLATE", "align", "alignment_matrix", "arcface_template", "similarity_transform"]

ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # left eye
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)
"""The standard ArcFace 5-point template for a 112 x 112 crop, ``(x, y)`` in facelite's landmark order."""


def arcface_template(size: int = 112) -> np.ndarray:
    """The ArcFace template for a ``size`` x ``size`` crop (the 112 template scaled by ``size / 112``)."""
    size = _check_size(size)
    return ARCFACE_TEMPLATE * (size / 112.0)


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise ValueError(f"size must be an integer from 8 to 4096, got {size!r}")
    return int(size)


def similarity_transform(src: np.ndarray | Sequence, dst: np.ndarray | Sequence) -> np.ndarray:
    """The similarity transform that maps ``src`` points onto ``dst`` points best (least squares).

    Umeyama (1991): rotation + uniform scale + translation, never a reflection.

    Args:
        src, dst: ``(N, 2)`` point sets, ``N >= 2``, same order.

    Returns:
        ``2 x 3`` float64 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.

    Raises:
        ValueError: wrong shapes, non-finite values, or all ``src`` points coincide.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or len(s) < 2:
        raise ValueError(f"expected two (N, 2) point sets with N >= 2, got shapes {s.shape} and {d.shape}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("landmarks contain NaN or infinite values")
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    var_s = float((sc * sc).sum() / len(s))
    if var_s < 1e-12:
        raise ValueError("the landmarks all lie on one point: no transform can align them")
    cov = dc.T @ sc / len(s)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    rot = u @ e @ vt
    scale = float((sig * np.diag(e)).sum() / var_s)
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def _landmarks_of(face: Face | np.ndarray | Sequence) -> np.ndarray:
    pts = face.landmarks if isinstance(face, Face) else face
    if isinstance(pts, dict):
        pts = pts.get("landmarks")
    a = np.asarray(pts, dtype=np.float64)
    if a.shape != (5, 2):
        try:
            a = a.reshape(5, 2)
        except ValueError:
            raise ValueError(f"expected a Face or 5 (x, y) landmarks, got an array of shape {a.shape}") from None
    return a


def alignment_matrix(face: Face | np.ndarray | Sequence, size: int = 112) -> np.ndarray:
    """``2 x 3`` matrix mapping original-image points to the aligned ``size`` x ``size`` crop.

    Both sides in facelite's continuous pixel coordinates; apply it to points with
    ``pts @ M[:, :2].T + M[:, 2]``. (To warp with OpenCV yourself, which puts pixel centres at
    integers, use :func:`align` or shift by half a pixel on both sides.)
    """
    return similarity_transform(_landmarks_of(face), arcface_template(size))


def align(
    image: np.ndarray,
    face: Face | np.ndarray | Sequence,
    size: int = 112,
    *,
    interpolation: int = cv2.INTER_LINEAR,
    border_mode: int = cv2.BORDER_CONSTANT,
    border_value: Sequence[int] = (0, 0, 0),
    return_matrix: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The face warped so its 5 landmarks land on the ArcFace template.

    Args:
        image: ``H x W x C`` (or ``H x W``) image, usually uint8 BGR; not modified.
        face: a :class:`~facelite.face.Face`, a detection dict with ``"landmarks"``, or 5
            ``(x, y)`` landmarks in the image's pixels (order: left eye, right eye, nose, left
            mouth corner, right mouth corner).
        size: side of the square crop in pixels (112 is the ArcFace standard; others scale it).
        interpolation: OpenCV interpolation flag (default bilinear; ``cv2.INTER_AREA`` is not
            supported by ``warpAffine``, use ``INTER_LINEAR`` or ``INTER_CUBIC``).
        border_mode, border_value: how to fill crop pixels that fall outside the image.
        return_matrix: also return the ``2 x 3`` matrix (see :func:`alignment_matrix`).

    Returns:
        The ``size x size`` crop (same dtype and channels as ``image``), or ``(crop, matrix)``.
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected an H x W x 3 image array, got {getattr(image, 'shape', type(image).__name__)}")
    size = _check_size(size)
    m = alignment_matrix(face, size)
    # cv2 samples pixel (i, j) at integer coordinates; facelite puts pixel centres at +0.5.
    m_cv = m.copy()
    m_cv[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    crop = cv2.warpAffine(
        image,
        m_cv,
        (size, size),
        flags=interpolation,
        borderMode=border_mode,
        borderValue=tuple(int(v) for v in border_value),
    )
    return (crop, m) if return_matrix else crop
