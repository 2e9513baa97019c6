"""Greedy non-maximum suppression and top-k selection (NumPy).

Boxes are ``(x1, y1, x2, y2)`` corners in continuous coordinates; the area of a box
is ``(x2 - x1) * (y2 - y1)`` (no "+1"). Boxes with zero or negative area have IoU 0
with everything.

The result is defined by the plain greedy loop (:func:`_greedy_dense`): take the boxes in score
order, keep a box unless a box kept before it overlaps it with an IoU above the threshold, the
IoU computed in float32 as that loop computes it. The loop is slow when many boxes are kept (at
the WIDER FACE evaluation's score threshold 0.02 a crowded image gives thousands of candidates),
so :func:`nms_ranked` gets the same result another way:

1. *Head steps*: a few steps of the loop while each kept box suppresses many others (the hundreds
   of boxes around a large face go at the cost of one step); a crowd of small faces stops it at once.
2. *Candidate pairs* (:func:`_banded_edges`). IoU > t implies, for any two boxes a, b (in exact
   arithmetic; a margin covers the float32 rounding): their areas differ by less than a factor 1/t,
   ``|cx_a - cx_b| < c (w_a + w_b)`` and ``|cy_a - cy_b| < c (h_a + h_b)``, with
   ``c = (1 - t) / (2 (1 + t))`` (from ``iw > t / (1 + t) (w_a + w_b)``). So each box becomes a
   *shrunk box* (its centre ± ``c w``, ``c h``): the shrunk boxes of two partners overlap, and their
   area *levels* (log area in steps of log 1/t) differ by at most one. Shrunk boxes are bucketed by
   level and horizontal row (rows grow with the level); a sweep over the sorted left edges in each
   bucket, and a look-up of each box in the next level's buckets, list the candidate pairs: about
   two to four times the pairs that really overlap above the threshold, instead of the tens of
   times more that merely intersect.
3. *Exact test*: the IoU of every candidate pair, with the loop's float32 operations.
4. *Settling* (:func:`_settle`): round after round, a box none of whose possible suppressors is
   undecided or kept is kept, and the boxes it suppresses are dropped; each round settles at least
   the highest undecided box, and the work shrinks with the undecided boxes.
5. ``keep_top_k``: boxes ranked after the last kept one cannot change what is kept before them, so
   only a prefix of the ranking is processed (and, in the detector, decoded), extended until it
   holds ``keep_top_k`` kept boxes.

Inputs the pairing cannot handle exactly (thresholds outside [1/64, 0.99], non-finite or huge
coordinates, too many candidate pairs) go through the older intersection sweep
(:func:`_overlap_candidates`) or the loop itself. Tests compare every path with the loop and a
brute-force reference, and the WIDER FACE dev AP and prediction count are unchanged.

Why not OpenCV's ``cv2.dnn.NMSBoxes`` (C++; OpenCV 5.1.0, measured 2026-12-04 with ``python -m
benchmarks.nms_opencv``, one thread, shared 2-core machine). Given the detector's candidates as
``(x, y, w, h)`` float64 boxes (``Rect2d``: no "+1"), their scores and ``top_k=0``, it keeps the same
boxes as this module on every dev image at the evaluation's settings (score 0.02, NMS 0.4, 750 kept:
502 of 502 images at 640, 501 of 501 at 320; the dev AP and prediction count with it in the detector
are identical). It is not used because:

- it is slower on crowds, the case this module was written for: it tests each candidate against
  every box kept so far, so on the 10 most crowded dev images at 640 (786-2,927 candidates,
  396-750 kept) a call takes 0.9-9.9 ms against 0.3-1.9 ms here (39 ms against 7.7 ms for the ten;
  141 against 134 ms over the whole split). It is faster on small sets (at 320: 40 against 88 ms
  over the 501 images, 0.1 ms an image);
- its ``top_k`` caps the candidates going in, not the boxes kept: ``keep_top_k`` means running it
  to the end and cutting its result, and every candidate must be decoded first;
- its rule differs at the edges (``tests/test_nms.py`` checks each): the IoU is computed in float64
  (``1 - float(1 - iou)``), so a pair whose float32 IoU equals the threshold is suppressed there and
  kept here; two empty boxes have IoU 1 there, 0 here; a score of 0 is never kept there (only scores
  above ``score_threshold``, which must be >= 0, count).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["box_iou", "nms", "nms_ranked", "overlapping_pairs", "top_k"]


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
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if scores.dtype == np.float32 and n < 2**31 and bool(np.all(scores >= 0)) and bool(np.all(scores < np.inf)):
        # detector scores: one int64 key per score, (score desc, index asc); for non-negative finite
        # float32 the bit pattern orders like the value (+ 0 turns -0.0 into +0.0)
        bits = (scores + np.float32(0)).view(np.int32).astype(np.int64)
        key = ((0x7FFFFFFF - bits) << 32) | np.arange(n, dtype=np.int64)
        if k is None or k >= n:
            return np.argsort(key)
        part = np.argpartition(key, k - 1)[:k]
        return part[np.argsort(key[part])]
    # anything else (other dtypes, negative or non-finite scores): a stable sort of all of them
    return np.argsort(-scores, kind="stable")[:k].astype(np.int64, copy=False)


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
    if len(order) == 0:
        return order
    return order[nms_ranked(boxes[order], iou_threshold, keep_top_k)]


def nms_ranked(
    boxes: np.ndarray | Callable[[int, int], np.ndarray],
    iou_threshold: float,
    keep_top_k: int | None = None,
    count: int | None = None,
) -> np.ndarray:
    """Greedy NMS of boxes that are already in rank order (the first is the best).

    Same rule as :func:`nms`. With ``keep_top_k``, only as much of the ranking is looked at as the
    first ``keep_top_k`` kept boxes depend on.

    Args:
        boxes: (N, 4) xyxy boxes, or a function ``boxes(start, stop)`` returning those of ranks
            ``start..stop-1`` as an array (then ``count`` gives N): boxes that are never needed are
            then never made (e.g. decoded).
        iou_threshold: as for :func:`nms`.
        keep_top_k: at most this many kept boxes (``None``: no cap).
        count: N, when ``boxes`` is a function.

    Returns:
        int64 indices (ranks) of the kept boxes, ascending.
    """
    if callable(boxes):
        if count is None:
            raise ValueError("count is required when boxes is a function")
        n, fetch = int(count), boxes
    else:
        arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n, fetch = len(arr), lambda a, b: arr[a:b]
    limit = n if keep_top_k is None else min(int(keep_top_k), n)
    if limit <= 0:
        return np.empty(0, dtype=np.int64)
    thr = float(iou_threshold)
    # Boxes ranked after the limit-th kept one cannot change the first `limit` kept ones, so with a
    # cap the ranking is processed in growing prefixes. A prefix is extended with the boxes kept so
    # far plus the next ones: a suppressed box suppresses nothing, and kept boxes do not suppress
    # each other, so this gives exactly the greedy result of the longer prefix.
    m = n if limit == n else max(math.ceil(_FIRST_PREFIX * limit), _MIN_CHUNK)
    if _ALL_AT_ONCE * m >= n:
        m = n
    kept = np.empty(0, dtype=np.int64)
    cols = np.empty((0, 4), dtype=np.float32)
    done = 0
    while True:
        new = np.asarray(fetch(done, m), dtype=np.float32).reshape(-1, 4)
        if len(new) != m - done:
            raise ValueError(f"boxes({done}, {m}) returned {len(new)} boxes")
        cols = np.concatenate([cols, new]) if len(kept) else np.ascontiguousarray(new)
        res = _greedy(cols, thr, limit, fixed=len(kept))
        kept = (np.concatenate([kept, np.arange(done, m)]) if len(kept) else np.arange(done, m))[res]
        done = m
        if len(kept) >= limit or done == n:
            return kept[:limit]
        cols = cols[res]
        # the next chunk: enough for the missing kept boxes at the rate seen so far, with a margin
        rate = max(len(kept) / done, 0.05)
        m = done + max(math.ceil(1.25 * (limit - len(kept)) / rate), _MIN_CHUNK)
        if _ALL_AT_ONCE * m >= n:
            m = n


def overlapping_pairs(boxes: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """All pairs ``(i, j)``, ``i < j``, of the (N, 4) xyxy boxes with float32 IoU > ``iou_threshold``
    (a pair may be listed twice), found by the candidate pairing NMS uses (module doc, step 2):
    tens of pairs per box in a crowd instead of N^2. ``None`` where that pairing does not apply
    (a threshold outside [1/64, 0.99], non-finite or huge coordinates, too many pairs)."""
    boxes = np.ascontiguousarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if not (np.isfinite(boxes).all() and float(np.abs(boxes).max()) <= _MAX_COORD):
        return None
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return _banded_edges(boxes, areas, float(iou_threshold))


_FIRST_PREFIX = 1.5
"""With ``keep_top_k``, :func:`nms_ranked` first looks at this many times ``keep_top_k`` boxes."""

_ALL_AT_ONCE = 1.25
""":func:`nms_ranked` processes all boxes at once when a prefix would hold more than 1 / this of them."""

_MIN_CHUNK = 256
"""Fewest boxes :func:`nms_ranked` adds to the processed prefix at a time."""

_MAX_PAIRS = 1 << 22
"""Above this many candidate pairs, :func:`nms_ranked` falls back to the loop (bounded memory)."""


def _greedy(boxes: np.ndarray, thr: float, limit: int, fixed: int = 0) -> np.ndarray:
    """Greedy NMS of ranked (N, 4) float32 boxes: kept indices, ascending (all of them, or at
    least the first ``limit`` when it comes from the loop). The first ``fixed`` boxes are known to
    be kept (the result of a shorter prefix): no pair of them needs testing."""
    n = len(boxes)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    lo = min(float(x1.min()), float(y1.min()))
    hi = max(float(x2.max()), float(y2.max()))
    if not (thr >= 0.0 and -_MAX_COORD <= lo and hi <= _MAX_COORD):  # NaN, infinities, huge values
        return _greedy_dense(x1, y1, x2, y2, areas, thr, limit)
    if n <= _SMALL:
        return _greedy_small(x1, y1, x2, y2, areas, thr)[:limit]
    # A few steps of the loop first, while each kept box suppresses many others: the big clusters
    # around large faces (hundreds of boxes, all overlapping each other) go away at the cost of one
    # step each, instead of one edge per pair of their boxes. Crowds of small faces stop it at once.
    head, rest = _greedy_dense(x1, y1, x2, y2, areas, thr, limit, min_suppressed=_DENSE_MIN_SUPPRESSED)
    if len(rest) == 0 or len(head) >= limit:
        return head
    if len(rest) < n:
        boxes, areas = boxes[rest], areas[rest]
        fixed = int(np.searchsorted(rest, fixed))  # the known kept boxes among the rest come first
    edges = _banded_edges(boxes, areas, thr, fixed)
    if edges is None:
        x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
        pairs = _overlap_candidates(x1, y1, x2, y2)
        if pairs is None:
            keep = _greedy_dense(x1, y1, x2, y2, areas, thr, limit - len(head))
            return np.concatenate([head, rest[keep]])
        i, j = pairs
        lo2, hi2 = _packed(boxes)
        hit = np.flatnonzero(_iou_above(lo2, hi2, areas, i, j, thr))
        edges = i[hit], j[hit]
    return np.concatenate([head, rest[_settle(len(rest), *edges)]])


_SMALL = 40
"""Up to this many boxes, :func:`_greedy` tests all pairs at once (:func:`_greedy_small`)."""


def _greedy_small(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, areas: np.ndarray, thr: float) -> np.ndarray:
    """Greedy NMS of a few ranked boxes from their matrix of ``IoU > thr`` (the loop's float32
    operations, on all pairs at once): kept indices, ascending."""
    iw = np.minimum(x2[:, None], x2[None, :])
    iw -= np.maximum(x1[:, None], x1[None, :])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(y2[:, None], y2[None, :])
    ih -= np.maximum(y1[:, None], y1[None, :])
    np.maximum(ih, 0, out=ih)
    iw *= ih
    union = areas[:, None] + areas[None, :]
    union -= iw
    np.maximum(union, 1e-12, out=union)
    iw /= union
    over = (~(iw <= thr)).tolist()
    alive = [True] * len(x1)
    keep = []
    for i, row in enumerate(over):
        if alive[i]:
            keep.append(i)
            for j in range(i + 1, len(row)):
                if row[j]:
                    alive[j] = False
    return np.asarray(keep, dtype=np.int64)


_DENSE_MIN_SUPPRESSED = 8
""":func:`_greedy` takes steps of the loop while each suppresses at least this many boxes."""

_MAX_COORD = 1e18
"""Coordinates up to this size keep every float32 product finite (the pairing's assumption)."""


def _packed(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x1, y1)`` and the ``(x2, y2)`` of each box packed in one int64 (for gathers)."""
    return (np.ascontiguousarray(boxes[:, :2]).view(np.int64).reshape(-1),
            np.ascontiguousarray(boxes[:, 2:]).view(np.int64).reshape(-1))


def _iou_above(lo2: np.ndarray, hi2: np.ndarray, areas: np.ndarray, a: np.ndarray, b: np.ndarray, thr: float) -> np.ndarray:
    """``IoU > thr`` for the pairs ``(a[k], b[k])`` of boxes given by :func:`_packed` and their
    areas, with exactly the float32 operations of :func:`_greedy_dense` (min, max, + and * are
    commutative, so which box of a pair is which does not matter)."""
    lo = np.maximum(lo2[a].view(np.float32), lo2[b].view(np.float32))  # max x1, max y1, interleaved
    iwh = np.minimum(hi2[a].view(np.float32), hi2[b].view(np.float32))
    iwh -= lo
    np.maximum(iwh, 0, out=iwh)
    inter = iwh[0::2] * iwh[1::2]
    union = areas[b] + areas[a]
    union -= inter
    np.maximum(union, 1e-12, out=union)
    inter /= union
    return ~(inter <= thr)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length expansion: ``owner`` repeats ``k`` ``counts[k]`` times, ``offset`` counts 0.. within each run."""
    owner = np.repeat(np.arange(len(counts)), counts)
    offset = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, offset


_ROW_FACTOR = 2.0
"""Row height of a level's buckets, in shrunk-box heights of the level's largest (square) box."""


def _banded_edges(boxes: np.ndarray, areas: np.ndarray, thr: float, fixed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """All pairs ``(i, j)``, ``i < j``, of the ranked (N, 4) float32 boxes with float32 IoU > ``thr``
    (as two index arrays; a pair may be listed twice), except pairs of two of the first ``fixed``
    boxes. ``None`` when the pairing does not apply (see the module doc): the caller then uses
    another path."""
    # a margin far above the float32 rounding of the IoU (~1e-6 relative): every pair the loop
    # suppresses has an exact IoU above t, hence satisfies the bounds derived from t
    t = thr * (1.0 - 1e-4)
    if not 1.0 / 64 <= t <= 0.99:
        return None
    w = np.subtract(boxes[:, 2], boxes[:, 0], dtype=np.float64)  # exact
    h = np.subtract(boxes[:, 3], boxes[:, 1], dtype=np.float64)
    box = None
    valid = (w > 0) & (h > 0)  # the others have IoU 0 with everything
    if not valid.all():
        box = np.flatnonzero(valid)
        boxes, areas, w, h = boxes[box], areas[box], w[box], h[box]
    m = len(w)
    if m < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)

    c = (1.0 - t) / (2.0 * (1.0 + t))
    step = math.log2(1.0 / t)
    level = np.floor(np.log2(w * h) * (1.0 / step)).astype(np.int64)
    lmin = int(level.min())
    level -= lmin
    nlev = int(level.max()) + 1
    hw = c * w
    hh = c * h
    sx1 = boxes[:, 0] + (0.5 * w - hw)  # shrunk box: centre +- c w, c h (float64)
    sx2 = sx1 + 2.0 * hw
    sy1 = boxes[:, 1] + (0.5 * h - hh)
    sy2 = sy1 + 2.0 * hh
    xlo, ylo = float(sx1.min()), float(sy1.min())
    span = float(sx2.max()) - xlo
    # rows of level l: height _ROW_FACTOR * (shrunk side of the largest square box of the level)
    row_h = _ROW_FACTOR * 2.0 * c * np.exp2((np.arange(nlev + 1) + 1 + lmin) * (0.5 * step))
    nrows = int((float(sy2.max()) - ylo) / row_h[0]) + 2
    big = 2.0 * span + 1.0  # key = bucket * big + (x - xlo): buckets never mix
    top_key = (nlev * nrows) * big
    if not top_key < 2.0**46 or not span > 0:
        return None
    # slack for the float64 rounding of the keys (a few ulps of the largest key)
    eps = 8.0 * math.ulp(top_key)

    # entries: every box in each row its shrunk box touches, at its own level
    hb = row_h[level]
    r1 = ((sy1 - ylo) / hb).astype(np.int64)
    nr = ((sy2 - ylo) / hb).astype(np.int64) - r1 + 1
    if int(nr.max()) > 1:
        eb, off = _expand(nr)
        row = r1[eb] + off
        first = off == 0  # the row where the shrunk box starts
    else:
        eb, row, first = np.arange(m), r1, np.ones(m, dtype=bool)
    bucket = level[eb] * nrows + row
    key = bucket * big + (sx1[eb] - xlo)
    o = np.argsort(key)
    key, eb, bucket, first = key[o], eb[o], bucket[o], first[o]
    esx2 = sx2[eb]
    ne = len(key)

    # same level: each entry against the following entries of its bucket that start before it ends
    end = np.searchsorted(key, bucket * big + (esx2 - xlo + eps), side="left")
    # the widest shrunk box of each level (for the look-ups below)
    lev_e = bucket // nrows
    starts = np.searchsorted(lev_e, np.arange(nlev))
    nonempty = starts < ne
    wmax = np.zeros(nlev + 1)
    wmax[:nlev][nonempty] = np.maximum.reduceat(esx2 - (key - bucket * big + xlo), starts[nonempty])

    # next level up: each box (its first entry) looks up the rows its shrunk box touches there
    qb = eb[np.flatnonzero(first & (lev_e < nlev - 1))]
    qlev = level[qb] + 1
    hq = row_h[qlev]
    u1 = ((sy1[qb] - ylo) / hq).astype(np.int64)
    nu = ((sy2[qb] - ylo) / hq).astype(np.int64) - u1 + 1
    if len(nu) and int(nu.max()) > 1:
        k, off = _expand(nu)
        qb, qlev, qrow = qb[k], qlev[k], u1[k] + off
    else:
        qrow = u1
    qbucket = (qlev * nrows + qrow) * big
    lo = np.searchsorted(key, qbucket + (sx1[qb] - xlo - wmax[qlev] - eps), side="left")
    hi = np.searchsorted(key, qbucket + (sx2[qb] - xlo + eps), side="left")

    # candidates: (owner box, entry position) runs; then the exact float32 IoU of each
    first_pos = np.concatenate([np.arange(1, ne + 1), lo])
    counts = np.concatenate([end, hi]) - first_pos
    np.maximum(counts, 0, out=counts)
    if int(counts.sum()) > _MAX_PAIRS:
        return None
    own, off = _expand(counts)
    a = np.concatenate([eb, qb])[own]
    b = eb[first_pos[own] + off]
    if fixed:
        rank = np.arange(m) if box is None else box
        new = np.flatnonzero((rank[a] >= fixed) | (rank[b] >= fixed))
        a, b = a[new], b[new]
    lo2, hi2 = _packed(boxes)
    hit = np.flatnonzero(_iou_above(lo2, hi2, areas, a, b, thr))
    a, b = a[hit], b[hit]
    if box is not None:
        a, b = box[a], box[b]
    return np.minimum(a, b), np.maximum(a, b)


def _settle(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Greedy NMS from its suppression edges ``src -> dst`` (``src`` outranks ``dst``, IoU above the
    threshold): the kept indices, ascending.

    Round after round: an undecided box with no edge left from an undecided or kept box is kept
    (all its possible suppressors are suppressed); the boxes it reaches are suppressed; edges from
    suppressed boxes and to decided boxes are dropped. The highest undecided box is settled in
    every round, so this ends; in practice after a few rounds, each cheaper than the last."""
    state = np.zeros(n, dtype=np.int8)  # 0 undecided, 1 kept, 2 suppressed
    while len(src):
        reached = np.zeros(n, dtype=bool)
        reached[dst] = True
        state[~reached & (state == 0)] = 1
        state[dst[state[src] == 1]] = 2
        live = np.flatnonzero((state[src] == 0) & (state[dst] == 0))
        src, dst = src[live], dst[live]
    return np.flatnonzero(state != 2)


def _overlap_candidates(
    x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """All pairs ``(i, j)``, ``i < j`` (score rank), of boxes that overlap in x and in y: exactly the
    pairs with a positive intersection, hence all those that NMS can suppress (for a threshold >= 0).
    A sweep over the sorted lower edges along one axis (the one with fewer overlapping pairs) finds
    the candidates. ``None`` when that axis has more than :data:`_MAX_PAIRS` of them."""
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
    first, offsets = _expand(counts)
    a, b = perm[first], perm[first + 1 + offsets]
    # keep the pairs that overlap along the other axis too (both tests are needed for IoU > 0)
    lo2, hi2 = (y1, y2) if axis == 0 else (x1, x2)
    both = np.maximum(lo2[a], lo2[b]) < np.minimum(hi2[a], hi2[b])
    a, b = a[both], b[both]
    return np.minimum(a, b), np.maximum(a, b)


def _greedy_dense(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    areas: np.ndarray,
    iou_threshold: float,
    limit: int,
    min_suppressed: int | None = None,
):
    """Greedy NMS by one vectorised step per kept box: the reference definition (and the path for
    inputs the faster ones do not handle). Returns the kept indices, ascending.

    With ``min_suppressed``, stops after the first step that suppresses fewer boxes than that and
    returns ``(kept, rest)``: the boxes kept so far and, ascending, the undecided ones (all ranked
    after them, none suppressed by them)."""
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
        if min_suppressed is None:
            alive[j:] &= inter <= iou_threshold
        else:
            before = np.count_nonzero(alive[j:])
            alive[j:] &= inter <= iou_threshold
            if before - np.count_nonzero(alive[j:]) < min_suppressed:
                rest = j + np.flatnonzero(alive[j:])
                return np.asarray(keep, dtype=np.int64), rest
        nxt = j + int(np.argmax(alive[j:]))
        if not alive[nxt]:
            break
        i = nxt
    kept = np.asarray(keep, dtype=np.int64)
    return kept if min_suppressed is None else (kept, np.empty(0, dtype=np.int64))
