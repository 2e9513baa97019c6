import numpy as np
import pytest

from facelite import Face, draw_faces
from facelite.draw import LANDMARK_COLORS


def test_draws_boxes_scores_and_landmarks_on_a_copy():
    image = np.zeros((200, 300, 3), np.uint8)
    lm = np.array([[120, 80], [160, 80], [140, 100], [125, 120], [155, 120]], np.float32)
    face = Face(box=(100.0, 50.0, 180.0, 150.0), score=0.97, landmarks=lm)
    out = draw_faces(image, [face])
    assert out is not image and not image.any()  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    edge = out[100, 99:102].astype(int)  # left edge of the box (anti-aliased), default green
    assert edge[:, 1].max() >= 200 and edge[:, 0].max() == 0 and edge[:, 2].max() == 0
    for (x, y), colour in zip(lm.astype(int), LANDMARK_COLORS):
        assert tuple(out[y, x]) == colour
    assert out[30:50, 100:140].any()  # the score label above the box
    assert not draw_faces(image, [face], show_scores=False)[30:48, 100:140].any()
    np.testing.assert_array_equal(draw_faces(image, []), image)


def test_rejects_non_bgr():
    with pytest.raises(ValueError, match="to_bgr"):
        draw_faces(np.zeros((10, 10), np.uint8), [])
