"""The interface every inference backend implements.

A backend wraps one model file and runs the network on a preprocessed batch. It knows
nothing about images, anchors or thresholds: :class:`facelite.FaceDetector` does the
rest. The ONNX Runtime backend (:mod:`facelite.runtime.onnx`) is the default; others
(e.g. TFLite) implement the same protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..spec import ModelSpec

__all__ = ["Backend", "check_outputs"]


@runtime_checkable
class Backend(Protocol):
    """A loaded detector network.

    Attributes:
        spec: the model's geometry and input convention, read from the model file itself.
        path: the model file.
        metadata: the model file's key/value metadata (strings).
    """

    spec: ModelSpec
    path: Path
    metadata: dict[str, str]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run the network.

        Args:
            batch: float32 ``(B, 3, H, W)``, C-contiguous, normalised per :attr:`spec`,
                ``H`` and ``W`` multiples of ``spec.pad_multiple``.

        Returns:
            ``(scores, boxes, landmarks)``: float32 ``(B, N)`` face probabilities in [0, 1],
            ``(B, N, 4)`` encoded box deltas and ``(B, N, 10)`` encoded landmark deltas, with
            N = :func:`facelite.anchors.num_anchors` for (H, W), in anchor order.

        Safe to call from several threads at once (a backend either runs concurrent calls in
        parallel or serialises them).
        """
        ...


def check_outputs(
    outputs: tuple[np.ndarray, np.ndarray, np.ndarray], batch: int, num_landmarks: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the shapes of a backend's outputs (shared by backends); returns them as float32."""
    scores, boxes, lmks = (np.asarray(o, dtype=np.float32) for o in outputs)
    n = scores.shape[1] if scores.ndim == 2 else -1
    if (
        scores.shape != (batch, n)
        or boxes.shape != (batch, n, 4)
        or lmks.shape != (batch, n, 2 * num_landmarks)
    ):
        raise RuntimeError(
            f"model outputs have unexpected shapes scores {scores.shape}, boxes {boxes.shape}, "
            f"landmarks {lmks.shape}; expected (B, N), (B, N, 4), (B, N, {2 * num_landmarks})"
        )
    return scores, boxes, lmks
