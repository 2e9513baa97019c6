"""Draw detections on an image (for looking at results; not used by detection itself)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from .face import Face

__all__ = ["LANDMARK_COLORS", "draw_faces", "draw_text"]

LANDMARK_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),  # left eye: blue
    (0, 0, 255),  # right eye: red
    (0, 255, 0),  # nose: green
    (255, 0, 255),  # left mouth corner: magenta
    (0, 255, 255),  # right mouth corner: yellow
)
"""BGR colour of each landmark, in :data:`facelite.spec.LANDMARK_NAMES` order."""


def draw_faces(
    image: np.ndarray,
    faces: Iterable[Face],
    *,
    color: Sequence[int] = (0, 255, 0),
    show_scores: bool = True,
    thickness: int | None = None,
) -> np.ndarray:
    """An annotated copy of ``image``: a box, the score and 5 coloured landmark dots per face.

    Args:
        image: ``H x W x 3`` uint8 BGR array (not modified).
        faces: detections in this image's pixels (e.g. from :meth:`FaceDetector.detect`).
        color: BGR colour of the boxes and score labels.
        show_scores: write each face's score above its box (preceded by ``#id`` for faces
            that carry a ``track_id``, see :mod:`facelite.tracking`).
        thickness: line thickness in pixels (default: scaled with the image size).

    Returns:
        A new ``H x W x 3`` uint8 BGR array.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            "draw_faces expects an H x W x 3 uint8 BGR image; convert other images with facelite.imageio.to_bgr"
        )
    out = image.copy()
    h, w = out.shape[:2]
    t = thickness if thickness is not None else max(1, round(max(h, w) / 400))
    radius = max(2, t + 1)
    font_scale = max(0.4, max(h, w) / 1600)
    col = tuple(int(c) for c in color)
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), col, t, cv2.LINE_AA)
        if show_scores:
            label = f"{face.score:.2f}"
            track_id = getattr(face, "track_id", None)
            if track_id is not None:
                label = f"#{track_id} {label}"
            (_, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, t // 2))
            ty = y1 - base - 2 if y1 - th - base - 2 >= 0 else y1 + th + 2  # inside the box at the top edge
            cv2.putText(out, label, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, col, max(1, t // 2), cv2.LINE_AA)
        for (px, py), pc in zip(np.asarray(face.landmarks, dtype=np.float32).reshape(-1, 2), LANDMARK_COLORS):
            cv2.circle(out, (int(round(px)), int(round(py))), radius, pc, -1, cv2.LINE_AA)
    return out


def draw_text(
    image: np.ndarray,
    text: str,
    org: tuple[int, int] = (8, 8),
    *,
    color: Sequence[int] = (255, 255, 255),
    background: Sequence[int] | None = (0, 0, 0),
    scale: float | None = None,
) -> np.ndarray:
    """Write ``text`` on ``image`` **in place** with its top-left corner at ``org`` (for overlays
    such as a frame rate), on a filled ``background`` box for legibility. Returns ``image``."""
    h, w = image.shape[:2]
    font_scale = scale if scale is not None else max(0.5, max(h, w) / 1000)
    t = max(1, round(font_scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, t)
    x, y = org
    pad = max(2, t * 2)
    if background is not None:
        cv2.rectangle(image, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), tuple(int(c) for c in background), -1)
    cv2.putText(
        image, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, tuple(int(c) for c in color), t,
        cv2.LINE_AA,
    )
    return image
