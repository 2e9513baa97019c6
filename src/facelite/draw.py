"""Draw detections on an image (for looking at results; not used by detection itself)."""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

from .face import Face

__all__ = ["LANDMARK_COLORS", "draw_faces"]

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
        show_scores: write each face's score above its box.
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
            (_, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, t // 2))
            ty = y1 - base - 2 if y1 - th - base - 2 >= 0 else y1 + th + 2  # inside the box at the top edge
            cv2.putText(out, label, (x1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, col, max(1, t // 2), cv2.LINE_AA)
        for (px, py), pc in zip(np.asarray(face.landmarks, dtype=np.float32).reshape(-1, 2), LANDMARK_COLORS):
            cv2.circle(out, (int(round(px)), int(round(py))), radius, pc, -1, cv2.LINE_AA)
    return out
