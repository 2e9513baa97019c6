"""Pseudo-labels from teachers: agreement checks and where the label comes from (stub teachers)."""

import cv2
import numpy as np
import pytest

from facelite.annotations import Sample
from facelite.train.pseudolabel import label_training_images, pseudolabel_nme

FACE = np.array([[20, 20, 60, 70]], np.float32)
POINTS = np.array([[30, 35], [50, 35], [40, 48], [32, 58], [48, 58]], np.float32)


class Stub:
    """A teacher that finds FACE (shifted by ``box_shift``) with POINTS + ``offset``, score ``score``."""

    def __init__(self, offset=0.0, score=0.9, box_shift=0.0):
        self.offset, self.score, self.box_shift = offset, score, box_shift

    def __call__(self, image, score_threshold=0.5):
        if self.score < score_threshold:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        return FACE + self.box_shift, np.array([self.score], np.float32), (POINTS + self.offset)[None]


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.zeros((100, 100, 3), np.uint8))
    return Sample(path, FACE.copy())


def test_label_is_the_mean_or_the_first_teachers_points(sample):
    (mean,), _ = label_training_images([sample], [Stub(0.0), Stub(2.0)])
    (first,), _ = label_training_images([sample], [Stub(0.0), Stub(2.0)], landmarks_from="first")
    assert mean.has_landmarks[0] and first.has_landmarks[0]
    np.testing.assert_allclose(mean.landmarks[0], POINTS + 1.0)
    np.testing.assert_allclose(first.landmarks[0], POINTS)


def test_disagreeing_unsure_or_misplaced_teachers_give_no_label(sample):
    # spread 0.08 * sqrt(40 * 50) = 3.6 px allowed: teachers 10 px apart disagree
    (s,), stats = label_training_images([sample], [Stub(0.0), Stub(10.0)], landmarks_from="first")
    assert not s.has_landmarks[0] and stats["with_landmarks"] == 0
    (s,), _ = label_training_images([sample], [Stub(0.0), Stub(0.0, score=0.6)])  # below min_score 0.8
    assert not s.has_landmarks[0]
    (s,), _ = label_training_images([sample], [Stub(0.0, box_shift=15.0)])  # IoU with the box < 0.7
    assert not s.has_landmarks[0]
    (s,), _ = label_training_images([sample], [Stub(0.0)], min_size=45.0)  # sqrt(40 * 50) = 44.7 px
    assert not s.has_landmarks[0]
    (s,), _ = label_training_images([sample], [Stub(0.0)], min_size=44.0)
    assert s.has_landmarks[0]


@pytest.mark.shared
def test_pseudolabel_nme_of_a_perfect_teacher_is_zero():
    """A teacher that returns the labelled points of each crop: NME 0, every crop labelled."""
    from facelite.evaluation.landmarks import default_data_dir, read_landmarks_file, reference_boxes
    from facelite.imageio import load_image
    from facelite.train.pseudolabel import CROP_PAD

    names, points = read_landmarks_file(default_data_dir() / "landmarks.txt")
    table = {load_image(default_data_dir() / n).tobytes(): p for n, p in zip(names[:2000], points[:2000])}

    def oracle(image, score_threshold=0.5):
        p = table.get(np.ascontiguousarray(image[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD]).tobytes())
        if p is None:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        p = p + CROP_PAD
        return reference_boxes(p[None]).astype(np.float32), np.ones(1, np.float32), p[None]

    r = pseudolabel_nme([oracle], limit=40)
    assert r["crops"] == 40 and r["labelled"] >= 1 and r["nme"] == pytest.approx(0.0, abs=1e-6)
    r2 = pseudolabel_nme([oracle, Stub(0.0)], limit=40)  # a second teacher far off: nothing agrees
    assert r2["labelled"] == 0
