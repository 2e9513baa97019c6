"""The detection result type."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .spec import LANDMARK_NAMES


@dataclass(frozen=True)
class Face:
    """One detected face, in pixels of the original image (x right, y down).

    Attributes:
        box: ``(x1, y1, x2, y2)`` corners, floats, clipped to the image.
        score: face confidence in [0, 1].
        landmarks: float32 array of shape (5, 2), ``(x, y)`` per point in the order
            left eye, right eye, nose, left mouth corner, right mouth corner
            (left/right as seen in the image).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict:
        """JSON-ready dict: box xyxy, score, landmarks as a list of 5 ``[x, y]`` with names."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "landmark_names": list(LANDMARK_NAMES),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Face:
        return cls(
            box=tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
            score=float(d["score"]),
            landmarks=np.asarray(d["landmarks"], dtype=np.float32).reshape(5, 2),
        )
