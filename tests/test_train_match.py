"""Anchor matching and target encoding on hand-made cases."""

import numpy as np
import pytest

from facelite.codec import decode_boxes, decode_landmarks
from facelite.train.match import encode_targets, match_anchors

VAR = (0.1, 0.2)


def anchors(*rows):
    return np.asarray(rows, np.float32)


def test_positive_threshold_and_background():
    a = anchors([10, 10, 20, 20], [50, 50, 20, 20], [90, 90, 20, 20])
    face = np.array([[0, 0, 20, 20]], np.float32)  # IoU with anchor 0 = 1.0, others 0
    m = match_anchors(a, face)
    assert m.matched.tolist() == [0, -1, -1]


def test_iou_between_thresholds_is_negative_unless_forced():
    # anchor 0 overlaps the face at IoU 1/3 (below 0.35), anchor 1 at 0.6, anchor 2 not at all
    a = anchors([10, 10, 20, 20], [15, 10, 20, 20], [100, 100, 20, 20])
    face = np.array([[10, 0, 30, 20]], np.float32)
    m = match_anchors(a, face, positive_iou=0.35)
    assert m.matched.tolist() == [-1, 0, -1]


def test_every_face_gets_its_best_anchor():
    # face 1 overlaps anchor 0 less than face 0 does, but anchor 0 is face 1's only option
    a = anchors([10, 10, 20, 20], [60, 60, 20, 20])
    faces = np.array([[0, 0, 20, 20], [4, 4, 22, 22]], np.float32)
    m = match_anchors(a, faces)
    assert m.matched[0] == 1  # the later face wins the shared best anchor (forced)


def test_tiny_face_is_not_forced():
    a = anchors([8, 8, 16, 16])
    m = match_anchors(a, np.array([[0, 0, 2, 2]], np.float32), min_forced_iou=0.2)  # IoU 4/256
    assert m.matched.tolist() == [-1]


def test_tiny_face_is_forced_when_the_rule_is_off():
    # min_forced_iou=0: every face takes its best anchor, however small; the box still decodes to it
    a = anchors([8, 8, 16, 16], [40, 8, 16, 16])
    face = np.array([[5, 5, 11, 10]], np.float32)  # IoU 30/256 with anchor 0, below the default 0.2
    assert match_anchors(a, face).matched.tolist() == [-1, -1]
    assert match_anchors(a, face, min_forced_iou=0.0).matched.tolist() == [0, -1]
    t = encode_targets(a, face, np.zeros((1, 5, 2), np.float32), np.array([False]), VAR, min_forced_iou=0.0)
    assert t.labels.tolist() == [1, 0]
    np.testing.assert_allclose(decode_boxes(t.boxes[:1], a[:1], VAR), face, atol=1e-4)


def test_no_faces():
    m = match_anchors(anchors([8, 8, 16, 16]), np.zeros((0, 4), np.float32))
    assert m.matched.tolist() == [-1]


def test_targets_decode_back_to_the_face():
    a = anchors([10, 10, 20, 20], [50, 50, 20, 20])
    face = np.array([[2, 3, 19, 21]], np.float32)
    pts = np.array([[[6, 8], [14, 8], [10, 12], [7, 16], [13, 16]]], np.float32)
    t = encode_targets(a, face, pts, np.array([True]), VAR)
    assert t.labels.tolist() == [1, 0]
    assert t.landmark_mask.tolist() == [True, False]
    np.testing.assert_allclose(decode_boxes(t.boxes[:1], a[:1], VAR), face, atol=1e-4)
    np.testing.assert_allclose(decode_landmarks(t.landmarks[:1], a[:1], VAR), pts, atol=1e-4)
    assert not t.boxes[1].any() and not t.landmarks[1].any()


def test_landmark_mask_follows_has_landmarks():
    a = anchors([10, 10, 20, 20])
    t = encode_targets(a, np.array([[0, 0, 20, 20]], np.float32), np.zeros((1, 5, 2), np.float32),
                       np.array([False]), VAR)
    assert t.labels.tolist() == [1] and t.landmark_mask.tolist() == [False]


@pytest.mark.parametrize("n_faces", [1, 7])
def test_real_anchor_grid_positives(n_faces):
    from facelite.anchors import make_anchors
    from facelite.spec import default_spec

    rng = np.random.default_rng(0)
    a = make_anchors(default_spec(0.35), 320, 320)
    xy = rng.uniform(0, 200, (n_faces, 2))
    faces = np.concatenate([xy, xy + rng.uniform(20, 100, (n_faces, 2))], 1).astype(np.float32)
    m = match_anchors(a, faces)
    assert set(m.matched[m.matched >= 0]) == set(range(n_faces))  # every face has a positive


def test_anchor_on_an_unlabelled_teacher_face_is_ignored_not_background():
    # anchor 0 on a labelled face, anchor 1 on a face only the teacher found, anchor 2 on nothing
    a = anchors([10, 10, 20, 20], [60, 10, 20, 20], [110, 10, 20, 20])
    boxes = np.array([[0, 0, 20, 20], [50, 0, 70, 20]], np.float32)
    lmk = np.zeros((2, 5, 2), np.float32)
    t = encode_targets(a, boxes, lmk, np.zeros(2, bool), VAR, ignore=np.array([False, True]))
    assert t.labels.tolist() == [1, -1, 0]
    assert not t.boxes[1].any() and not t.landmark_mask.any()  # no box / landmark target on it
    without = encode_targets(a, boxes[:1], lmk[:1], np.zeros(1, bool), VAR)
    assert without.labels.tolist() == [1, 0, 0]  # the same face unlabelled and unknown: background


def test_labelled_face_wins_over_an_overlapping_ignore_region():
    a = anchors([10, 10, 20, 20], [14, 10, 20, 20])
    boxes = np.array([[0, 0, 20, 20], [3, 0, 23, 20]], np.float32)  # the teacher box sits on the face
    t = encode_targets(a, boxes, np.zeros((2, 5, 2), np.float32), np.zeros(2, bool), VAR,
                       ignore=np.array([False, True]))
    assert t.labels[0] == 1 and t.labels[1] in (1, -1)
    np.testing.assert_array_equal(t.boxes[0], encode_targets(a, boxes[:1], np.zeros((1, 5, 2), np.float32),
                                                             np.zeros(1, bool), VAR).boxes[0])
