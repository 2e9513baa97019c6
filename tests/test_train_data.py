"""Readers for WIDER text and RetinaFace label.txt, and the augmentation's label bookkeeping."""

import cv2
import numpy as np
import pytest

from facelite.annotations import Sample, read_retinaface_labels, read_wider_txt, write_retinaface_labels
from facelite.spec import FLIP_PERMUTATION
from facelite.train.augment import AugmentConfig, Labels, augment, degrade, hflip, mosaic, random_square_crop

WIDER = """a/one.jpg
3
10 20 30 40 0 0 0 0 0 0
5 5 0 10 0 0 0 0 0 0
1 1 8 8 0 0 0 1 0 0
b/empty.jpg
0
0 0 0 0 0 0 0 0 0 0
c/two.jpg
1
100 50 20 25 1 0 0 0 0 0
"""


def test_read_wider_drops_invalid_and_degenerate(tmp_path, caplog):
    gt = tmp_path / "gt.txt"
    gt.write_text(WIDER)
    with caplog.at_level("INFO"):
        samples = read_wider_txt(gt, tmp_path / "images")
    assert [s.path.name for s in samples] == ["one.jpg", "empty.jpg", "two.jpg"]
    np.testing.assert_array_equal(samples[0].boxes, [[10, 20, 40, 60]])
    assert samples[1].boxes.shape == (0, 4)
    np.testing.assert_array_equal(samples[2].boxes, [[100, 50, 120, 75]])
    assert not samples[0].has_landmarks.any()
    assert "dropped 1 marked invalid and 1 degenerate" in caplog.text


def test_retinaface_labels_round_trip(tmp_path):
    root = tmp_path / "images"
    pts = np.arange(10, dtype=np.float32).reshape(5, 2) + 20
    s = [Sample(root / "x/a.jpg", np.array([[10, 20, 40, 60], [0, 0, 5, 5]], np.float32),
                np.stack([pts, np.zeros((5, 2), np.float32)]), np.array([True, False]))]
    label = tmp_path / "label.txt"
    write_retinaface_labels(s, label, root)
    text = label.read_text()
    assert text.startswith("# x/a.jpg\n10.00 20.00 30.00 40.00 20.00 21.00 0.00")
    assert "-1.00 -1.00 -1.00" in text
    back = read_retinaface_labels(label, root)
    assert len(back) == 1 and back[0].path == root / "x/a.jpg"
    np.testing.assert_allclose(back[0].boxes, s[0].boxes)
    np.testing.assert_allclose(back[0].landmarks[0], pts)
    assert back[0].has_landmarks.tolist() == [True, False]


def test_retinaface_labels_reject_face_before_path(tmp_path):
    label = tmp_path / "label.txt"
    label.write_text("1 2 3 4\n")
    with pytest.raises(ValueError, match="before any '# path'"):
        read_retinaface_labels(label)


def test_flip_swaps_left_and_right_landmarks():
    img = np.zeros((10, 100, 3), np.uint8)
    img[:, :10] = 255
    pts = np.array([[[30, 5], [40, 5], [35, 6], [31, 8], [39, 8]]], np.float32)
    lab = Labels(np.array([[25, 0, 45, 10]], np.float32), pts, np.array([True]))
    out, f = hflip(img, lab)
    assert out[:, -10:].min() == 255 and out[:, :10].max() == 0
    np.testing.assert_array_equal(f.boxes, [[55, 0, 75, 10]])
    expected = pts.copy()
    expected[..., 0] = 100 - expected[..., 0]
    np.testing.assert_array_equal(f.landmarks, expected[:, list(FLIP_PERMUTATION)])
    assert f.landmarks[0, 0, 0] < f.landmarks[0, 1, 0]  # the image-left eye is still called left eye


def test_crop_keeps_labels_aligned_with_pixels():
    """A bright square face: after crop + resize its box still covers the bright pixels."""
    rng = np.random.default_rng(3)
    img = np.zeros((200, 300, 3), np.uint8)
    img[80:120, 140:180] = 255
    lab = Labels(np.array([[140, 80, 180, 120]], np.float32), np.zeros((1, 5, 2), np.float32), np.array([False]))
    cfg = AugmentConfig(size=128, crop_scales=(0.5, 1.0, 1.5))
    for _ in range(10):
        out, got = random_square_crop(img, lab, cfg, rng)
        assert out.shape == (128, 128, 3) and len(got) == 1
        x1, y1, x2, y2 = got.boxes[0]
        inner = out[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
        assert inner.size and inner.min() > 200


def test_augment_output_shape_and_finite_labels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 60, 70], [200, 100, 260, 180]], np.float32)
    lab = Labels(boxes, np.zeros((2, 5, 2), np.float32), np.zeros(2, bool))
    for _ in range(5):
        out, got = augment(img, lab, AugmentConfig(size=96), rng)
        assert out.shape == (96, 96, 3) and out.dtype == np.uint8
        assert np.all(got.boxes >= 0) and np.all(got.boxes <= 96)
        assert np.all(got.boxes[:, 2:] > got.boxes[:, :2])


def test_landmark_crops_keep_their_name_and_point_order(tmp_path):
    from facelite.annotations import read_landmark_crops

    f = tmp_path / "landmarks.txt"
    f.write_text("set/a.jpg 1 2 3 4 5 11 12 13 14 15\n\nset/b.jpg 0 0 0 0 0 0 0 0 0 0\n")
    crops = read_landmark_crops(f)
    assert [c.name for c in crops] == ["set/a.jpg", "set/b.jpg"]
    assert crops[0].path == tmp_path / "set/a.jpg"
    np.testing.assert_array_equal(crops[0].landmarks, [[1, 11], [2, 12], [3, 13], [4, 14], [5, 15]])
    assert crops[0].box is None


def _textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_NEAREST)


def test_degrade_each_step_does_what_it_says():
    img = _textured()
    sharp = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert degrade(img, AugmentConfig(), np.random.default_rng(0)) is img
    for seed in range(4):  # Gaussian blur or resampling, whichever the seed draws: both soften edges
        out = degrade(img, AugmentConfig(blur_prob=1.0), np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert cv2.Laplacian(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() < 0.6 * sharp
    jpeg = degrade(img, AugmentConfig(jpeg_prob=1.0), np.random.default_rng(0))
    assert jpeg.shape == img.shape and 0 < np.abs(jpeg.astype(int) - img).mean() < 40
    gray = degrade(img, AugmentConfig(gray_prob=1.0), np.random.default_rng(0))
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert not np.array_equal(img[..., 0], img[..., 1])


def test_degrade_changes_pixels_only_and_keeps_the_random_stream():
    img = _textured(1)
    boxes = np.array([[10, 10, 120, 130], [150, 60, 300, 220]], np.float32)
    lmk = np.tile(np.linspace(20, 100, 10, dtype=np.float32).reshape(1, 5, 2), (2, 1, 1))
    lab = Labels(boxes, lmk, np.ones(2, bool))
    on = AugmentConfig(size=128, blur_prob=1.0, jpeg_prob=1.0, gray_prob=1.0)
    never = AugmentConfig(size=128, blur_prob=1e-12, jpeg_prob=1e-12, gray_prob=1e-12)
    for seed in range(3):
        a_img, a = augment(img, lab, on, np.random.default_rng(seed))
        b_img, b = augment(img, lab, never, np.random.default_rng(seed))
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        assert not np.array_equal(a_img, b_img)
        again, _ = augment(img, lab, on, np.random.default_rng(seed))
        np.testing.assert_array_equal(a_img, again)


def _one_face_image(value: int) -> tuple[np.ndarray, Labels]:
    img = np.zeros((200, 300, 3), np.uint8)
    img[70:130, 120:180] = value
    lmk = np.array([[[135, 90], [165, 90], [150, 100], [138, 115], [162, 115]]], np.float32)
    return img, Labels(np.array([[120, 70, 180, 130]], np.float32), lmk, np.array([True]))


def test_mosaic_keeps_each_face_on_its_own_pixels():
    """Four one-face images of different brightness: every face box in the mosaic covers pixels of
    one brightness only, every landmark still labelled sits on that face (those of faces cut by a
    quadrant border are unlabelled), and across draws all four faces appear."""
    tiles = [_one_face_image(v) for v in (60, 120, 180, 240)]
    cfg = AugmentConfig(size=160, crop_scales=(0.6, 1.0, 1.5))
    seen, labelled, unlabelled = set(), 0, 0
    for seed in range(30):
        out, lab = mosaic(tiles, cfg, np.random.default_rng(seed))
        assert out.shape == (160, 160, 3) and out.dtype == np.uint8
        assert np.all(lab.boxes >= 0) and np.all(lab.boxes <= 160)
        assert np.all(lab.boxes[:, 2:] > lab.boxes[:, :2])
        for b in lab.boxes:
            x1, y1, x2, y2 = b
            inner = out[int(np.ceil(y1)) + 3 : int(y2) - 3, int(np.ceil(x1)) + 3 : int(x2) - 3]
            if inner.size == 0:
                continue
            level = min((60, 120, 180, 240), key=lambda v: abs(int(np.median(inner)) - v))
            assert np.abs(inner.astype(int) - level).max() <= 25  # one face's pixels (levels 60 apart; cubic ringing)
            seen.add(level)
        for b, pts, has in zip(lab.boxes, lab.landmarks, lab.has_landmarks):
            labelled += int(has)
            unlabelled += int(not has)
            if has:
                x1, y1, x2, y2 = b
                level = int(np.median(out[int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2), 0]))
                for x, y in pts:
                    assert x1 < x < x2 and y1 < y < y2
                    assert abs(int(out[int(y), int(x), 0]) - level) <= 25
    assert seen == {60, 120, 180, 240}
    assert labelled > 10 and unlabelled > 0  # both kinds occur, so both branches were tested
    with pytest.raises(ValueError, match="4 images"):
        mosaic(tiles[:3], cfg, np.random.default_rng(0))


def test_dataset_mosaic_is_reproducible_and_off_by_default(tmp_path):
    from facelite.spec import ModelSpec
    from facelite.train.dataset import FaceDataset

    samples = []
    for k, v in enumerate((60, 120, 180, 240)):
        img, lab = _one_face_image(v)
        path = tmp_path / f"{k}.png"
        cv2.imwrite(str(path), img)
        samples.append(Sample(str(path), lab.boxes, lab.landmarks, lab.has_landmarks))
    spec = ModelSpec(alpha=0.35)
    plain = FaceDataset(samples, spec, AugmentConfig(size=128), seed=0)
    mixed = FaceDataset(samples, spec, AugmentConfig(size=128, mosaic_prob=1.0), seed=0)
    a, b = plain[(0, 1)], mixed[(0, 1)]
    assert a[0].shape == b[0].shape == (128, 128, 3)
    assert len(np.unique(b[0].numpy()[..., 0])) > len(np.unique(a[0].numpy()[..., 0]))
    for x, y in zip(mixed[(0, 1)], b):
        assert np.array_equal(x.numpy(), y.numpy())
    assert (b[1].numpy() == 1).sum() >= 1


def test_dataset_gives_a_repeated_draw_its_own_augmentation(tmp_path):
    """A set of weight > 1 draws an image several times per epoch (SourceSampler yields
    ``(epoch, index, k)`` for the k-th repeat): each repeat is a different view, the first draw
    is the view it always was."""
    from facelite.spec import ModelSpec
    from facelite.train.dataset import FaceDataset
    from facelite.train.sources import SourceSampler

    img, lab = _one_face_image(120)
    path = tmp_path / "0.png"
    cv2.imwrite(str(path), img)
    ds = FaceDataset([Sample(str(path), lab.boxes, lab.landmarks, lab.has_landmarks)], ModelSpec(alpha=0.35),
                     AugmentConfig(size=128), seed=0)
    draws = list(SourceSampler([1], [3.0], seed=0))
    assert sorted(draws) == [(0, 0), (0, 0, 1), (0, 0, 2)]
    views = [ds[d][0].numpy() for d in draws]
    assert not np.array_equal(views[0], views[1]) and not np.array_equal(views[1], views[2])
    assert np.array_equal(ds[(0, 0)][0].numpy(), ds[0][0].numpy())  # the first draw: as before
