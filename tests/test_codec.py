import numpy as np

from facelite.codec import decode_boxes, decode_landmarks, encode_boxes, encode_landmarks

VAR = (0.1, 0.2)


def _random_case(rng, n=200):
    anchors = np.concatenate([rng.uniform(0, 640, (n, 2)), np.repeat(rng.choice([16, 32, 64, 128, 256, 512], (n, 1)), 2, 1)], 1)
    xy = rng.uniform(0, 600, (n, 2))
    wh = rng.uniform(4, 300, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    points = rng.uniform(0, 640, (n, 5, 2))
    return anchors.astype(np.float32), boxes.astype(np.float32), points.astype(np.float32)


def test_box_round_trip():
    anchors, boxes, _ = _random_case(np.random.default_rng(0))
    back = decode_boxes(encode_boxes(boxes, anchors, VAR), anchors, VAR)
    assert back.dtype == np.float32 and back.shape == boxes.shape
    np.testing.assert_allclose(back, boxes, rtol=1e-4, atol=1e-2)


def test_landmark_round_trip():
    anchors, _, points = _random_case(np.random.default_rng(1))
    enc = encode_landmarks(points, anchors, VAR)
    assert enc.shape == (len(points), 10)
    back = decode_landmarks(enc, anchors, VAR)
    assert back.shape == points.shape
    np.testing.assert_allclose(back, points, rtol=1e-5, atol=1e-2)


def test_decode_by_hand():
    anchors = np.array([[100, 50, 20, 40]], np.float32)
    d = np.array([[1.0, -0.5, 0.0, np.log(2) / 0.2]], np.float32)
    # centre (100 + 1*0.1*20, 50 - 0.5*0.1*40) = (102, 48); size (20, 80)
    np.testing.assert_allclose(decode_boxes(d, anchors, VAR), [[92, 8, 112, 88]], atol=1e-4)
    lm = np.array([[1, 2] * 5], np.float32)
    np.testing.assert_allclose(decode_landmarks(lm, anchors, VAR)[0], [[102, 58]] * 5, atol=1e-4)


def test_empty_inputs():
    a = np.zeros((0, 4), np.float32)
    assert decode_boxes(np.zeros((0, 4), np.float32), a, VAR).shape == (0, 4)
    assert decode_landmarks(np.zeros((0, 10), np.float32), a, VAR).shape == (0, 5, 2)
    assert encode_landmarks(np.zeros((0, 5, 2), np.float32), a, VAR).shape == (0, 10)
