"""Landmark voting: hand-made candidates with known means, and the shipped models on real faces."""

import numpy as np
import pytest

from facelite import FaceDetector, load_image
from facelite.models import shipped_path
from facelite.nms import box_iou, nms
from facelite.paths import data_path, shared_dir
from facelite.voting import vote


def _points(x: float, y: float) -> np.ndarray:
    """5 landmarks offset from (x, y): (5, 2) float32."""
    return (np.array([[0, 0], [10, 0], [5, 5], [1, 10], [9, 10]], np.float32) + [x, y]).astype(np.float32)


def test_weighted_mean_over_the_merged_candidates():
    boxes = np.array([[0, 0, 100, 100], [4, 2, 104, 102], [300, 300, 340, 340], [2, 0, 100, 98]], np.float32)
    scores = np.array([0.9, 0.6, 0.8, 0.3], np.float32)
    points = np.stack([_points(20, 30), _points(26, 33), _points(310, 310), _points(14, 24)])
    keep = nms(boxes, scores, 0.4)
    assert keep.tolist() == [0, 2]
    out = vote(boxes, scores, points, keep, 0.4)
    want0 = (0.9 * points[0] + 0.6 * points[1] + 0.3 * points[3]) / 1.8
    np.testing.assert_allclose(out[0], want0, atol=1e-4)
    np.testing.assert_array_equal(out[1], points[2])  # alone in its cluster: its own points
    assert out.dtype == np.float32 and out.shape == (2, 5, 2)


def test_a_candidate_votes_only_for_the_face_it_overlaps_most():
    # two kept faces overlapping each other a little; the middle candidate is closer to the right one
    boxes = np.array([[0, 0, 100, 100], [60, 0, 160, 100], [50, 0, 150, 100]], np.float32)
    scores = np.array([0.9, 0.8, 0.5], np.float32)
    points = np.stack([_points(10, 10), _points(70, 10), _points(64, 12)])
    keep = np.array([0, 1])
    out = vote(boxes, scores, points, keep, 0.4)
    np.testing.assert_array_equal(out[0], points[0])
    np.testing.assert_allclose(out[1], (0.8 * points[1] + 0.5 * points[2]) / 1.3, atol=1e-4)


def test_no_votes_keep_the_own_landmarks():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.5]], np.float32)
    points = np.stack([_points(1, 1), _points(3, 3)])
    # threshold 1: nothing overlaps "above" it, not even a face itself
    np.testing.assert_array_equal(vote(boxes, np.array([0.9, 0.8]), points, [0], 1.0), points[:1])
    # scores 0 (score threshold 0): no weight anywhere
    np.testing.assert_array_equal(vote(boxes, np.zeros(2), points, [0], 0.4), points[:1])
    # nothing kept
    assert vote(boxes, np.array([0.9, 0.8]), points, np.zeros(0, np.int64), 0.4).shape == (0, 5, 2)


def _brute_force(boxes, scores, points, keep, thr):
    """The definition, with the full (candidates x kept) IoU matrix."""
    iou = box_iou(boxes, boxes[keep])
    face = iou.argmax(axis=1)
    votes = iou[np.arange(len(boxes)), face] > thr
    out = points[keep].astype(np.float64)
    for k in range(len(keep)):
        mine = votes & (face == k)
        w = scores[mine].astype(np.float64)
        if w.sum() > 0:
            out[k] = (w[:, None, None] * points[mine]).sum(0) / w.sum()
    return out


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.4, 0.7])
def test_pairing_equals_the_full_iou_matrix_on_a_crowd(thr):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (3000, 2)).astype(np.float32)
    wh = rng.uniform(5, 120, (3000, 1)).astype(np.float32)  # small and large faces mixed
    boxes = np.concatenate([xy, xy + wh * [1.0, 1.2]], axis=1).astype(np.float32)
    scores = rng.uniform(0.02, 1, 3000).astype(np.float32)
    points = (boxes[:, None, :2] + rng.uniform(0, 20, (3000, 5, 2))).astype(np.float32)
    keep = nms(boxes, scores, max(thr, 0.3))
    assert 0 < len(keep) < 3000
    np.testing.assert_allclose(vote(boxes, scores, points, keep, thr),
                               _brute_force(boxes, scores, points, keep, thr), atol=1e-3)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must agree"):
        vote(np.zeros((3, 4)), np.zeros(3), np.zeros((2, 5, 2)), [0], 0.4)


def test_detector_option_changes_landmarks_only():
    if not shipped_path("mobilenetv2-0.35").is_file():
        pytest.skip("mobilenetv2-0.35 is not shipped in this installation")
    image = load_image(data_path("astronaut.jpg"))
    voted = FaceDetector(threads=1, score_threshold=0.02)
    plain = FaceDetector(threads=1, score_threshold=0.02, landmark_voting=False)
    assert "landmark_voting=False" in repr(plain) and "landmark_voting" not in repr(voted)
    b1, s1, p1 = voted.detect_arrays(image)
    b0, s0, p0 = plain.detect_arrays(image)
    np.testing.assert_array_equal(b1, b0)
    np.testing.assert_array_equal(s1, s0)
    # the astronaut's face has merged neighbours: its points move, by well under the eye distance (~42 px)
    shift = np.linalg.norm(p1[0] - p0[0], axis=1)
    assert 0 < shift.max() < 5
    with pytest.raises(ValueError, match="landmark_voting"):
        FaceDetector(landmark_voting="yes")
    with pytest.raises(ValueError, match="box_voting"):
        FaceDetector(box_voting=1)


def test_box_voting_moves_boxes_not_scores_nor_landmarks():
    if not shipped_path("mobilenetv2-0.35").is_file():
        pytest.skip("mobilenetv2-0.35 is not shipped in this installation")
    image = load_image(data_path("astronaut.jpg"))
    off = FaceDetector(threads=1, box_voting=False)
    assert "box_voting=False" in repr(off)
    b0, s0, p0 = off.detect_arrays(image)
    det = FaceDetector(threads=1)
    assert det.box_voting and "box_voting" not in repr(det)  # on by default
    b1, s1, p1 = det.detect_arrays(image)
    np.testing.assert_array_equal(s1, s0)
    np.testing.assert_allclose(p1, p0, atol=1e-3)  # the landmarks are voted the same way either way
    shift = np.abs(b1 - b0).max()
    assert 0 < shift < 5, shift
    # the voted box is still the astronaut's face (box checked by eye, tests/test_detector.py)
    assert box_iou(b1[:1], np.array([[178.0, 59.0, 273.0, 178.0]]))[0, 0] > 0.7


@pytest.mark.shared
def test_voting_lowers_the_landmark_error_on_held_out_crops():
    from facelite.evaluation.landmarks import evaluate_landmarks

    if not (shared_dir() / "data" / "landmarks5" / "landmarks.txt").is_file():
        pytest.skip("no landmark crops in the shared folder")
    nme = {}
    for voting in (True, False):
        det = FaceDetector(input_size=320, threads=1, landmark_voting=voting)
        result = evaluate_landmarks(det.detect_arrays, limit=300, show_progress=False)
        nme[voting] = result.summary()["nme_io_mean"]
    # measured on all 827 held-out crops: 10.51 % against 10.98 %
    assert nme[True] < nme[False] - 0.002, nme
