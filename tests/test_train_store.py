"""The precomputed image store: round trip, shrinking with the labels, stale detection."""

import os

import cv2
import numpy as np

from facelite import data_path
from facelite.annotations import Sample
from facelite.imageio import load_image
from facelite.train.store import needed_short_side, open_store

ASTRONAUT_BOX = [178, 59, 273, 178]


def _samples(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    pts = np.array([[[204, 101], [247, 103], [225, 129], [203, 139], [246, 141]]], np.float32)
    return [Sample(tmp_path / "a.png", np.array([[1, 2, 20, 25], [5, 5, 9, 9]], np.float32),
                   np.zeros((2, 5, 2), np.float32), np.array([False, False]), np.array([False, True])),
            Sample(data_path("astronaut.jpg"), np.array([ASTRONAUT_BOX], np.float32), pts, np.array([True]))]


def test_round_trip_shrink_and_stale_detection(tmp_path):
    samples = _samples(tmp_path)
    store, built = open_store(samples, 256, tmp_path / "store")
    assert built and len(store) == 2
    np.testing.assert_array_equal(store.image(0), load_image(samples[0].path))  # small: stored as is
    lab = store.labels(0)
    np.testing.assert_array_equal(lab.boxes, samples[0].boxes)
    assert lab.ignore.tolist() == [False, True] and lab.has_landmarks.tolist() == [False, False]
    big = store.image(1)  # 512 x 512 shrunk to a 256 shorter side, labels with it
    assert big.shape == (256, 256, 3) and store.scales[1] == 0.5
    np.testing.assert_allclose(store.labels(1).boxes, np.array([ASTRONAUT_BOX]) / 2)
    np.testing.assert_allclose(store.labels(1).landmarks, samples[1].landmarks / 2)
    ref = cv2.resize(load_image(samples[1].path), (256, 256), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(big, ref)

    again, built = open_store(samples, 256, tmp_path / "store")
    assert not built and len(again) == 2
    img = load_image(samples[0].path)
    img[0, 0] = 255 - img[0, 0]
    cv2.imwrite(str(samples[0].path), img)
    st = os.stat(samples[0].path)
    os.utime(samples[0].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime, same size
    fresh, built = open_store(samples, 256, tmp_path / "store")
    assert built
    np.testing.assert_array_equal(fresh.image(0), img)
    samples[1].boxes[0, 0] += 1  # a label change is stale too
    assert open_store(samples, 256, tmp_path / "store")[1]


def test_needed_short_side():
    assert needed_short_side(480, [0.3, 1.0, 2.0]) == 1600
    assert needed_short_side(320, [1.0]) == 320
