"""Post-processing cost: the sparse NMS path (the one crowds take) gives exactly the dense loop's result."""

from __future__ import annotations

import numpy as np
import pytest

import facelite.nms as nms_module
from facelite.nms import nms


def _dense(boxes: np.ndarray, scores: np.ndarray, thr: float, keep_top_k: int | None = None) -> np.ndarray:
    order = nms_module.top_k(scores, None)
    b = boxes[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    limit = len(order) if keep_top_k is None else keep_top_k
    return order[nms_module._greedy_dense(x1, y1, x2, y2, areas, thr, limit)]


def _crowd(rng: np.random.Generator, faces: int, per_face: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of candidate boxes around ``faces`` faces, as a detector produces on a crowd."""
    centres = np.repeat(rng.uniform(0, 640, (faces, 2)), per_face, 0)
    sizes = np.repeat(rng.uniform(6, 40, (faces, 1)), per_face, 0) * rng.uniform(0.85, 1.15, (faces * per_face, 1))
    centres += rng.normal(0, 2, centres.shape)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
    return boxes, rng.random(len(boxes)).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("thr", [0.0, 0.4, 0.7, 1.0])
def test_sparse_equals_dense_on_crowds(seed: int, thr: float) -> None:
    boxes, scores = _crowd(np.random.default_rng(seed), 200)
    want = _dense(boxes, scores, thr)
    np.testing.assert_array_equal(nms(boxes, scores, thr), want)
    np.testing.assert_array_equal(nms(boxes, scores, thr, keep_top_k=17), want[:17])


def test_sparse_equals_dense_with_degenerate_boxes_and_ties() -> None:
    rng = np.random.default_rng(5)
    xy = np.round(rng.uniform(0, 30, (300, 2)))
    wh = np.round(rng.uniform(-3, 12, (300, 2)))  # zero and negative widths/heights too
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = np.round(rng.random(300), 1).astype(np.float32)  # many ties
    for thr in (0.0, 0.3, 0.5):
        np.testing.assert_array_equal(nms(boxes, scores, thr), _dense(boxes, scores, thr))


def test_long_suppression_chain() -> None:
    # each box overlaps the next one by IoU 0.82 > 0.5, in decreasing score order: greedy keeps every
    # other box, and the fixed-point rounds give up after 32 and settle the chain one by one
    n = 120
    x = np.arange(n, dtype=np.float32)
    boxes = np.stack([x, np.zeros(n), x + 10, np.full(n, 10)], 1).astype(np.float32)
    scores = np.linspace(1, 0.1, n).astype(np.float32)
    got = nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(got, _dense(boxes, scores, 0.5))
    assert len(got) < n


def test_dense_fallback_when_too_many_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores = _crowd(np.random.default_rng(9), 50)
    want = nms(boxes, scores, 0.4)
    monkeypatch.setattr(nms_module, "_MAX_PAIRS", 0)
    assert nms_module._overlap_candidates(*(np.ascontiguousarray(boxes[:, k]) for k in range(4))) is None
    np.testing.assert_array_equal(nms(boxes, scores, 0.4), want)


def test_overlap_candidates_are_exactly_the_intersecting_pairs() -> None:
    boxes, _ = _crowd(np.random.default_rng(3), 60)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    i, j = nms_module._overlap_candidates(x1, y1, x2, y2)
    got = set(zip(i.tolist(), j.tolist()))
    iw = np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None])
    ih = np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None])
    want = {(a, b) for a, b in zip(*np.nonzero((iw > 0) & (ih > 0))) if a < b}
    assert got == want
