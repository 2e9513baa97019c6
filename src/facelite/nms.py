"""Greedy non-maximum suppression and top-k selection (NumPy).

Boxes are ``(x1, y1, x2, y2)`` corners in continuous coordinates; the area of a box
is ``(x2 - x1) * (y2 - y1)`` (no "+1"). Boxes with zero or negative area have IoU 0
with everything.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "nms", "top_k"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``a`` (N, 4) and ``b`` (M, 4) xyxy boxes -> float32 (N, M)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def top_k(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first (ties: lower index first).

    ``k=None`` or ``k >= len(scores)`` sorts all of them. Returns int64 (k,).
    """
    scores = np.asarray(scores)
    n = len(scores)
    if k is not None and k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k is None or k >= n:
        return np.argsort(-scores, kind="stable").astype(np.int64, copy=False)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    # sort the selected by (score desc, index asc) for a deterministic order
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64, copy=False)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    pre_top_k: int | None = None,
    keep_top_k: int | None = None,
) -> np.ndarray:
    """Greedy NMS: repeatedly keep the highest-scoring box and drop those overlapping it.

    A box is dropped when its IoU with a kept box is **greater than** ``iou_threshold``.

    Args:
        boxes: (N, 4) xyxy boxes.
        scores: (N,) scores.
        iou_threshold: in [0, 1].
        pre_top_k: consider only the ``pre_top_k`` highest scores (``None``: all).
        keep_top_k: stop after keeping this many boxes (``None``: no cap).

    Returns:
        int64 indices into ``boxes`` of the kept boxes, sorted by score (highest first).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if keep_top_k is not None and keep_top_k <= 0:
        return np.empty(0, dtype=np.int64)
    order = top_k(scores, pre_top_k)
    n = len(order)
    if n == 0:
        return order
    b = boxes[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    limit = n if keep_top_k is None else keep_top_k
    pairs = _overlap_candidates(x1, y1, x2, y2)
    if pairs is None:
        keep = _greedy_dense(x1, y1, x2, y2, areas, iou_threshold, limit)
    else:
        keep = _greedy_sparse(x1, y1, x2, y2, areas, iou_threshold, pairs)[:limit]
    return order[keep]


_MAX_PAIRS = 1 << 20
"""Above this many box pairs that overlap along the sweep axis, :func:`nms` uses the dense loop."""


def _overlap_candidates(
    x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """All pairs ``(i, j)``, ``i < j`` (score rank), of boxes that overlap in x and in y: exactly the
    pairs with a positive intersection, hence all those that NMS can suppress. A sweep over the
    sorted lower edges along one axis (the one with fewer overlapping pairs) finds the candidates.
    ``None`` when that axis has more than :data:`_MAX_PAIRS` of them."""
    n = len(x1)
    best = None
    for axis, (lo, hi) in enumerate(((x1, x2), (y1, y2))):
        perm = np.argsort(lo, kind="stable")
        lo_sorted = lo[perm]
        # boxes after position p in sorted order start before box p ends: p+1 .. end[p]-1
        end = np.searchsorted(lo_sorted, hi[perm], side="left")
        counts = np.maximum(end - np.arange(1, n + 1), 0)
        total = int(counts.sum())
        if best is None or total < best[0]:
            best = (total, perm, counts, axis)
    total, perm, counts, axis = best
    if total > _MAX_PAIRS:
        return None
    first = np.repeat(np.arange(n), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    a, b = perm[first], perm[first + 1 + offsets]
    # keep the pairs that overlap along the other axis too (both tests are needed for IoU > 0)
    lo2, hi2 = (y1, y2) if axis == 0 else (x1, x2)
    both = np.maximum(lo2[a], lo2[b]) < np.minimum(hi2[a], hi2[b])
    a, b = a[both], b[both]
    return np.minimum(a, b), np.maximum(a, b)


def _greedy_sparse(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    areas: np.ndarray,
    iou_threshold: float,
    pairs: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Greedy NMS over boxes in score-rank order, from the candidate pairs of
    :func:`_overlap_candidates`. The IoU of every pair is computed exactly as the dense loop
    computes it (same float32 operations), so both give the same result."""
    n = len(x1)
    i, j = pairs
    iw = np.minimum(x2[j], x2[i])
    iw -= np.maximum(x1[j], x1[i])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(y2[j], y2[i])
    ih -= np.maximum(y1[j], y1[i])
    np.maximum(ih, 0, out=ih)
    inter = iw
    inter *= ih
    union = areas[j] + areas[i]
    union -= inter
    np.maximum(union, 1e-12, out=union)
    inter /= union
    hit = ~(inter <= iou_threshold)
    src, dst = i[hit], j[hit]  # src outranks dst and suppresses it if src is kept
    # Greedy NMS keeps box r iff no kept box of higher rank suppresses it. Iterate that rule from
    # "all kept": after t rounds the first t boxes are settled, and the fixed point is the greedy
    # result; on real detections (clusters of a few boxes per face) it takes a handful of rounds.
    kept = np.ones(n, dtype=bool)
    for _ in range(32):
        suppressed = np.zeros(n, dtype=bool)
        suppressed[dst[kept[src]]] = True
        if np.array_equal(~suppressed, kept):
            return np.flatnonzero(kept)
        kept = ~suppressed
    # long suppression chains: settle the boxes one by one in rank order
    by_src = np.argsort(src, kind="stable")
    src, dst = src[by_src], dst[by_src]
    starts = np.searchsorted(src, np.arange(n + 1))
    alive = np.ones(n, dtype=bool)
    for r in np.flatnonzero(starts[1:] > starts[:-1]).tolist():
        if alive[r]:
            alive[dst[starts[r] : starts[r + 1]]] = False
    return np.flatnonzero(alive)


def _greedy_dense(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    areas: np.ndarray,
    iou_threshold: float,
    limit: int,
) -> np.ndarray:
    """Greedy NMS by one vectorised step per kept box (for inputs with too many overlapping pairs)."""
    n = len(x1)
    alive = np.ones(n, dtype=bool)
    keep: list[int] = []
    i = 0
    # Each step compares the current box with *all* later boxes through slices (views, no
    # gathers); suppressed ones are only masked. Iterations = number of kept boxes.
    while len(keep) < limit:
        keep.append(i)
        j = i + 1
        if j >= n:
            break
        iw = np.minimum(x2[j:], x2[i])
        iw -= np.maximum(x1[j:], x1[i])
        np.maximum(iw, 0, out=iw)
        ih = np.minimum(y2[j:], y2[i])
        ih -= np.maximum(y1[j:], y1[i])
        np.maximum(ih, 0, out=ih)
        inter = iw
        inter *= ih
        union = areas[j:] + areas[i]
        union -= inter
        np.maximum(union, 1e-12, out=union)  # zero-area boxes: inter is 0, so IoU 0
        inter /= union
        alive[j:] &= inter <= iou_threshold
        nxt = j + int(np.argmax(alive[j:]))
        if not alive[nxt]:
            break
        i = nxt
    return np.asarray(keep, dtype=np.int64)
