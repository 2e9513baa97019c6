import numpy as np
import pytest

from facelite.nms import box_iou, nms, top_k


def _iou_py(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms_py(boxes, scores, thr, keep_top_k=None):
    """Brute-force reference: plain Python, greedy in score order."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if keep_top_k is not None and len(keep) >= keep_top_k:
            break
        if all(_iou_py(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _random_boxes(rng, n):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32), rng.random(n).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.9])
def test_matches_brute_force(seed, thr):
    rng = np.random.default_rng(seed)
    boxes, scores = _random_boxes(rng, 150)
    got = nms(boxes, scores, thr)
    want = _nms_py(boxes.tolist(), scores.tolist(), thr)
    assert got.tolist() == want
    assert got.dtype == np.int64
    assert np.all(np.diff(scores[got]) <= 0)  # sorted by score


def test_keep_top_k_and_pre_top_k():
    rng = np.random.default_rng(7)
    boxes, scores = _random_boxes(rng, 300)
    full = _nms_py(boxes.tolist(), scores.tolist(), 0.4)
    assert nms(boxes, scores, 0.4, keep_top_k=5).tolist() == full[:5]
    assert nms(boxes, scores, 0.4, keep_top_k=0).tolist() == []
    pre = top_k(scores, 50)
    sub = _nms_py(boxes[pre].tolist(), scores[pre].tolist(), 0.4)
    assert nms(boxes, scores, 0.4, pre_top_k=50).tolist() == pre[sub].tolist()


def test_identical_and_degenerate_boxes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 9], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.95, 0.1], np.float32)
    # the zero-area box overlaps nothing; the duplicate is suppressed
    assert nms(boxes, scores, 0.5).tolist() == [2, 0, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError):
        nms(boxes, scores[:2], 0.5)


def test_top_k_order_and_ties():
    s = np.array([0.1, 0.5, 0.5, 0.9, 0.3], np.float32)
    assert top_k(s, 3).tolist() == [3, 1, 2]
    assert top_k(s, None).tolist() == [3, 1, 2, 4, 0]
    assert top_k(s, 10).tolist() == [3, 1, 2, 4, 0]
    assert top_k(s, 0).tolist() == []


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_is_score_then_index_for_every_k(dtype):
    rng = np.random.default_rng(3)
    s = (np.round(rng.random(500) * 20) / 20).astype(dtype)  # many ties
    s[:3] = [0.0, -0.0, 0.0]
    want = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    for k in (None, 0, 1, 7, 250, 499, 500, 600):
        got = top_k(s, k)
        assert got.dtype == np.int64
        assert got.tolist() == want[: len(s) if k is None else k]
    neg = np.array([-1.0, 0.5, -3.0, 0.5], np.float32)  # negative scores: the general path
    assert top_k(neg, 3).tolist() == [1, 3, 0]


def test_nms_ranked_takes_ranked_boxes_or_a_function():
    from facelite.nms import nms_ranked

    rng = np.random.default_rng(12)
    boxes, scores = _random_boxes(rng, 400)
    order = top_k(scores, None)
    want = _nms_py(boxes.tolist(), scores.tolist(), 0.45)
    assert order[nms_ranked(boxes[order], 0.45)].tolist() == want
    assert order[nms_ranked(lambda a, b: boxes[order[a:b]], 0.45, keep_top_k=20, count=400)].tolist() == want[:20]
    assert nms_ranked(boxes[order], 0.45, keep_top_k=0).tolist() == []


def test_opencv_nmsboxes_is_not_the_same_rule():
    """Why nms.py is not cv2.dnn.NMSBoxes (module doc): where they agree and where they do not. If a
    newer OpenCV removes a difference, the module doc and DEVELOPERS.md need revisiting."""
    cv2 = pytest.importorskip("cv2")

    def opencv(boxes, scores, thr, top_k=0):
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).astype(np.float64)
        return np.asarray(cv2.dnn.NMSBoxes(xywh, scores, 0.0, thr, 1.0, top_k), np.int64).reshape(-1)

    # ordinary boxes with positive scores: the same kept boxes in the same order (ties: lower index
    # first, as top_k)
    rng = np.random.default_rng(2)
    boxes, scores = _random_boxes(rng, 300)
    scores = np.round(scores, 1).astype(np.float32)
    positive = np.flatnonzero(scores > 0)
    for thr in (0.3, 0.4, 0.5):
        want = nms(boxes, scores, thr)
        assert opencv(boxes, scores, thr).tolist() == want[scores[want] > 0].tolist()
    # a score of 0 is never kept: it keeps scores above score_threshold, which must be >= 0
    assert len(positive) < len(scores) and np.isin(nms(boxes, scores, 0.4), positive).sum() < len(nms(boxes, scores, 0.4))
    # its top_k caps the candidates going in, not the boxes kept (a duplicate ranks second here)
    four = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], np.float32)
    ranked = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(four, ranked, 0.4, keep_top_k=2).tolist() == [0, 2]
    assert opencv(four, ranked, 0.4, top_k=2).tolist() == nms(four, ranked, 0.4, pre_top_k=2).tolist() == [0]
    # an IoU exactly at the threshold in float32 (kept: not above it) is above it in OpenCV's float64
    pair = np.array([[57.152985, 32.18694, 88.89648, 52.392944], [69.58434, 32.18694, 101.32784, 52.392944]], np.float32)
    top2 = np.array([0.9, 0.8], np.float32)
    thr = float(box_iou(pair[:1], pair[1:])[0, 0])
    assert nms(pair, top2, thr).tolist() == [0, 1] and opencv(pair, top2, thr).tolist() == [0]
    # two empty boxes: IoU 0 here, 1 in OpenCV
    empty = np.array([[5, 5, 5, 9], [5, 5, 5, 9]], np.float32)
    assert nms(empty, top2, 0.5).tolist() == [0, 1] and opencv(empty, top2, 0.5).tolist() == [0]
