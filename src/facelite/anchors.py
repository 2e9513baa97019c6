"""Anchor priors for a network input of a given size (NumPy, cached)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .spec import ModelSpec


def feature_map_sizes(spec: ModelSpec, height: int, width: int) -> list[tuple[int, int]]:
    """(rows, cols) of each pyramid level for a network input of ``height`` x ``width``."""
    return [(math.ceil(height / s), math.ceil(width / s)) for s in spec.strides]


def make_anchors(spec: ModelSpec, height: int, width: int) -> np.ndarray:
    """Anchors for a ``height`` x ``width`` network input.

    Returns:
        float32 array (N, 4) of ``(cx, cy, w, h)`` in input pixels. Order: level,
        then row, then column, then anchor size: the order in which the network's
        heads emit their predictions.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"input size must be positive, got {height}x{width}")
    per_level = []
    for stride, sizes, (rows, cols) in zip(spec.strides, spec.min_sizes, feature_map_sizes(spec, height, width)):
        cy, cx = np.meshgrid(
            (np.arange(rows, dtype=np.float32) + 0.5) * stride,
            (np.arange(cols, dtype=np.float32) + 0.5) * stride,
            indexing="ij",
        )
        k = len(sizes)
        a = np.empty((rows, cols, k, 4), dtype=np.float32)
        a[..., 0] = cx[..., None]
        a[..., 1] = cy[..., None]
        a[..., 2] = np.asarray(sizes, dtype=np.float32)
        a[..., 3] = np.asarray(sizes, dtype=np.float32)
        per_level.append(a.reshape(-1, 4))
    return np.concatenate(per_level, axis=0)


@lru_cache(maxsize=32)
def _cached(spec: ModelSpec, height: int, width: int) -> np.ndarray:
    a = make_anchors(spec, height, width)
    a.setflags(write=False)
    return a


def anchors_for(spec: ModelSpec, height: int, width: int) -> np.ndarray:
    """Like :func:`make_anchors`, cached per (spec, shape); the array is read-only."""
    return _cached(spec, int(height), int(width))


def num_anchors(spec: ModelSpec, height: int, width: int) -> int:
    return sum(r * c for r, c in feature_map_sizes(spec, height, width)) * spec.anchors_per_location
