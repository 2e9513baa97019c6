"""Landmark error: NME on hand-made points, the held-out split, the protocol on synthetic crops."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facelite.evaluation import landmarks as lm
from facelite.paths import shared_dir

ROOT = Path(__file__).resolve().parents[1]

GT = np.array([[[30, 40], [50, 40], [40, 50], [32, 60], [48, 60]]], dtype=np.float64)  # inter-ocular 20


def test_nme_on_hand_made_points():
    pred = GT.copy()
    pred[0, :, 0] += 2.0  # every point 2 px off: NME = 2 / 20
    assert lm.nme(pred, GT)[0] == pytest.approx(0.1)
    pred = GT.copy()
    pred[0, 2] += [3.0, 4.0]  # one point 5 px off: mean 1 px
    assert lm.nme(pred, GT)[0] == pytest.approx(1.0 / 20)
    assert lm.nme(pred, GT, norm=80.0)[0] == pytest.approx(1.0 / 80)
    assert lm.nme(GT, GT)[0] == 0.0


def test_ced_counts_misses_as_failures():
    errors = np.array([0.0, 0.05, 0.2, np.nan])
    x, y = lm.ced_curve(errors, max_error=0.2, steps=5)  # x = 0, .05, .1, .15, .2
    np.testing.assert_allclose(y, [0.25, 0.5, 0.5, 0.5, 0.75])
    assert lm.ced_auc(np.zeros(4)) == pytest.approx(1.0)


def test_split_is_deterministic_and_about_ten_percent():
    names = [f"lfw_5590/Person_{i:05d}_0001.jpg" for i in range(5000)]
    train, held = lm.landmark_split(names)
    assert len(train) + len(held) == len(names) and not set(train) & set(held)
    assert 0.08 < len(held) / len(names) < 0.12
    assert lm.landmark_split(list(reversed(names)))[1] == list(reversed(held))  # depends on names only
    assert all(lm.is_heldout(n) for n in held)
    assert lm.is_heldout(held[0].replace("/", "\\")) and lm.is_heldout("./" + held[0])


def test_reference_box_encloses_the_points():
    box = lm.reference_boxes(GT)[0]  # scale = max(20, 20) = 20: 42 x 54, centred at (40, 46.6)
    np.testing.assert_allclose(box, [19, 46.6 - 27, 61, 46.6 + 27], atol=1e-9)
    assert lm.box_iou_xyxy(box[None], box)[0] == pytest.approx(1.0)


def _fake_data(root: Path, n: int = 4) -> list[str]:
    """Crops with a grey 'face' and known points; names chosen to be held out."""
    import cv2

    names, k = [], 0
    while len(names) < n:
        name = f"lfw_5590/Fake_{k:04d}.jpg"
        k += 1
        if lm.is_heldout(name):
            names.append(name)
    (root / "lfw_5590").mkdir(parents=True)
    lines = []
    for name in names:
        cv2.imwrite(str(root / name), np.full((80, 80, 3), 90, np.uint8))
        p = GT[0]
        lines.append(name + " " + " ".join(f"{v:g}" for v in [*p[:, 0], *p[:, 1]]))
    (root / "net_7876").mkdir()
    cv2.imwrite(str(root / "net_7876" / "_0_1_0.jpg"), np.full((80, 80, 3), 90, np.uint8))
    lines.append("net_7876/_0_1_0.jpg " + " ".join(["10"] * 10))  # a known-bad name: excluded
    (root / "landmarks.txt").write_text("\n".join(lines) + "\n")
    return names


def test_protocol_on_synthetic_crops(tmp_path):
    _fake_data(tmp_path)
    pad = lm.PAD
    seen = []

    def detect(img):
        seen.append(img.shape)
        assert img.shape == (240, 240, 3) and img[0, 0, 0] == lm.PAD_VALUE
        i = len(seen) - 1
        face = lm.reference_boxes(GT + pad)[0]
        pts = GT[0] + pad
        if i == 0:  # perfect, plus a distractor with a higher score far away
            return (np.array([[0, 0, 30, 30], face]), np.array([0.99, 0.9]), np.stack([pts + 150, pts]))
        if i == 1:  # every point 4 px off: NME 0.2, a failure
            return np.array([face]), np.array([0.9]), (pts + [4.0, 0.0])[None]
        if i == 2:  # only a box that does not overlap the face: a miss
            return np.array([[0, 0, 40, 40]]), np.array([0.9]), (pts * 0)[None]
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))  # nothing: a miss

    res = lm.evaluate_landmarks(detect, tmp_path, show_progress=False)
    assert res.count == 4 and res.settings["excluded_known_bad"] == 0  # the bad one is not held out anyway
    np.testing.assert_array_equal(res.detected, [True, True, False, False])
    s = res.summary()
    assert s["miss_rate"] == pytest.approx(0.5)
    assert s["nme_io_mean"] == pytest.approx(0.1)  # (0 + 0.2) / 2
    assert s["failure_rate"] == pytest.approx(0.5) and s["failure_or_miss_rate"] == pytest.approx(0.75)
    d = res.to_dict()
    assert d["crops"] == 4 and d["settings"]["reference"] == "landmarks"
    assert "4 (2)" in res.table() and "50.00 %" in res.table()


def test_known_bad_labels_are_excluded(tmp_path):
    _fake_data(tmp_path, n=1)
    assert lm.has_known_bad_labels("net_7876/_0_1_0.jpg") and not lm.has_known_bad_labels("net_7876/0_1_0.jpg")

    def detect(img):
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))

    res = lm.evaluate_landmarks(detect, tmp_path, names="all", show_progress=False)
    assert res.count == 1 and res.settings["excluded_known_bad"] == 1
    res = lm.evaluate_landmarks(detect, tmp_path, names="all", exclude_known_bad=False, show_progress=False)
    assert res.count == 2


LANDMARKS = shared_dir() / "data" / "landmarks5"


@pytest.mark.shared
def test_landmark_file_and_split_of_the_shared_crops():
    names, pts = lm.read_landmarks_file(LANDMARKS)
    assert len(names) == 10000 and pts.shape == (10000, 5, 2)
    train, held = lm.landmark_split(names)
    assert len(held) == 1038 and len(train) == 8962  # pinned: the held-out set must never move
    assert np.all(pts[:, 0, 0] < pts[:, 1, 0])  # left eye (as seen) is left of the right eye


@pytest.mark.shared
def test_end_to_end_with_the_retinaface_peer():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.adapters.retinaface_mnet025 import RetinaFaceMnet025, default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"peer model not found at {default_model_path()}")
    det = RetinaFaceMnet025(input_size=320, score_threshold=0.5)
    res = lm.evaluate_landmarks(det, LANDMARKS, limit=5, show_progress=False)
    s = res.summary()
    assert res.count == 5 and s["miss_rate"] == 0.0 and s["nme_io_mean"] < 0.2
