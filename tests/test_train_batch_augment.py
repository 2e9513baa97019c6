"""Batch augmentation in torch: labels follow the pixels through crop and flip, the same faces and
boxes as the CPU crop, photometric jitter keeps grey grey."""

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelite.annotations import Sample  # noqa: E402
from facelite.train.augment import AugmentConfig, Labels, mosaic, random_square_crop  # noqa: E402
from facelite.train.batch_augment import BatchAugmenter, crop_tile, mosaic_tiles  # noqa: E402
from facelite.train.store import open_store  # noqa: E402

BOX = np.array([100, 60, 200, 180], np.float32)
EYES = np.array([[125, 95], [175, 95]], np.float32)  # left eye red, right eye green (as seen)
POINTS = np.array([[[125, 95], [175, 95], [150, 125], [130, 155], [170, 155]]], np.float32)


@pytest.fixture
def face_store(tmp_path):
    img = np.full((240, 320, 3), 20, np.uint8)
    x0, y0, x1, y1 = BOX.astype(int)
    img[y0:y1, x0:x1] = 200
    for (x, y), bgr in zip(EYES.astype(int), [(0, 0, 255), (0, 255, 0)]):
        img[y - 6:y + 6, x - 6:x + 6] = bgr
    cv2.imwrite(str(tmp_path / "face.png"), img)
    s = Sample(tmp_path / "face.png", BOX[None], POINTS, np.array([True]))
    return open_store([s], 1000, tmp_path / "store")[0]


@pytest.mark.parametrize("mosaic_prob", [0.0, 1.0])
def test_box_and_landmarks_follow_the_pixels_through_crop_and_flip(face_store, mosaic_prob):
    cfg = AugmentConfig(size=128, crop_scales=(0.7, 1.0, 1.4), photometric=False, mosaic_prob=mosaic_prob)
    aug = BatchAugmenter(face_store, cfg, seed=1)
    imgs, labels = aug([0] * 24, epoch=0)
    assert imgs.shape == (24, 128, 128, 3) and imgs.dtype == torch.uint8
    flips = checked = 0
    for img, lab in zip(imgs.numpy(), labels):
        grey = img.astype(int).sum(-1)
        for j in range(len(lab)):
            x0, y0, x1, y1 = lab.boxes[j]
            inner = grey[int(y0) + 3:int(y1) - 2, int(x0) + 3:int(x1) - 2]
            assert inner.size == 0 or np.median(inner) > 3 * 150  # the bright square is inside the box
            if x0 > 3 and not mosaic_prob:
                assert grey[int((y0 + y1) / 2), int(x0) - 3] < 3 * 40  # ... and just left of it is dark
            pts = lab.landmarks[j]
            if not lab.has_landmarks[j] and mosaic_prob:
                continue  # a point left its mosaic window
            assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]  # left before right, as seen
            if not (pts[0] >= 2).all() or not (pts[0] < 126).all():
                continue  # the eye was cropped away
            b, g, r = img[int(round(pts[0, 1])), int(round(pts[0, 0]))].astype(int)
            flipped = g > r  # the left eye (as seen) is the originally right (green) one after a flip
            assert (r > 150 and g < 80) or flipped and (g > 150 and r < 80)
            flips += flipped
            checked += 1
    assert checked >= 16 and 0 < flips < checked


def test_crop_keeps_the_cpu_crops_faces_and_boxes():
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(size=160, crop_scales=(0.3, 0.6, 1.0, 1.6), flip_prob=0.0)
    k = 30
    xy = rng.uniform(0, 380, (k, 2))
    wh = rng.uniform(3, 80, (k, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    lab = Labels(boxes, rng.uniform(0, 400, (k, 5, 2)).astype(np.float32), rng.random(k) < 0.5, rng.random(k) < 0.2)
    image = np.zeros((300, 450, 3), np.uint8)
    for seed in range(40):
        _, ref = random_square_crop(image, lab, cfg, np.random.default_rng(seed))
        _, got = crop_tile(0, 300, 450, lab, cfg, np.random.default_rng(seed))
        assert len(got) == len(ref)
        np.testing.assert_array_equal(got.ignore, ref.ignore)
        np.testing.assert_array_equal(got.has_landmarks, ref.has_landmarks)
        np.testing.assert_allclose(got.boxes, ref.boxes, atol=0.6)  # zoomed-out placement is rounded
        np.testing.assert_allclose(got.landmarks, ref.landmarks, atol=0.6)


def test_photometric_keeps_grey_grey_and_changes_something(tmp_path):
    cv2.imwrite(str(tmp_path / "g.png"), np.tile(np.arange(0, 256, 2, dtype=np.uint8)[None, :, None], (64, 1, 3)))
    store = open_store([Sample(tmp_path / "g.png", np.zeros((0, 4), np.float32))], 1000, tmp_path / "s")[0]
    cfg = AugmentConfig(size=64, crop_scales=(1.0,), flip_prob=0.0)
    imgs, _ = BatchAugmenter(store, cfg, seed=0)([0] * 16, epoch=0)
    x = imgs.numpy().astype(int)
    assert np.abs(x - x[..., :1]).max() <= 1  # saturation and hue leave grey alone
    plain, _ = BatchAugmenter(store, AugmentConfig(size=64, crop_scales=(1.0,), flip_prob=0.0, photometric=False))(
        [0] * 16, epoch=0)
    changed = [np.abs(x[i] - plain.numpy()[i].astype(int)).mean() > 2 for i in range(16)]
    assert 4 <= sum(changed) < 16  # each step is drawn with probability 0.5


def _random_labels(rng, k: int, w: int, h: int) -> Labels:
    xy = rng.uniform(0, [w - 10, h - 10], (k, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(3, 60, (k, 2))], 1).astype(np.float32)
    lmks = (boxes[:, None, :2] + rng.uniform(0, 1, (k, 5, 2)) * (boxes[:, None, 2:] - boxes[:, None, :2]))
    return Labels(boxes, lmks.astype(np.float32), rng.random(k) < 0.7, rng.random(k) < 0.2)


def test_mosaic_keeps_the_cpu_mosaics_faces_and_boxes(tmp_path):
    rng = np.random.default_rng(2)
    sizes = [(200, 300), (240, 180), (150, 150), (320, 260)]
    samples, tiles = [], []
    for k, (h, w) in enumerate(sizes):
        lab = _random_labels(rng, 12, w, h)
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.zeros((h, w, 3), np.uint8))
        samples.append(Sample(tmp_path / f"{k}.png", lab.boxes, lab.landmarks, lab.has_landmarks, lab.ignore))
        tiles.append((np.zeros((h, w, 3), np.uint8), lab))
    store = open_store(samples, 10_000, tmp_path / "store")[0]
    cfg = AugmentConfig(size=128, crop_scales=(0.3, 0.6, 1.0))  # no zoom-out: no rounded placement
    kept = 0
    for seed in range(30):
        _, ref = mosaic(tiles, cfg, np.random.default_rng(seed))
        _, got = mosaic_tiles([0, 1, 2, 3], store, cfg, np.random.default_rng(seed))
        assert len(got) == len(ref)
        np.testing.assert_array_equal(got.has_landmarks, ref.has_landmarks)
        np.testing.assert_array_equal(got.ignore, ref.ignore)
        np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-3)
        np.testing.assert_allclose(got.landmarks, ref.landmarks, atol=1e-3)
        kept += len(got)
    assert kept > 30


def _crops(tmp_path):
    from facelite.annotations import LandmarkCrop

    crops, images = [], []
    for k, (h, w) in enumerate([(80, 80), (60, 70), (90, 64)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 60 * k)], -1).astype(np.uint8)  # smooth
        box = np.array([0.2 * w, 0.25 * h, 0.8 * w, 0.9 * h], np.float32)
        pts = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.38, 0.75], [0.62, 0.75]], np.float32) * [w, h]
        crops.append(LandmarkCrop(tmp_path / f"c{k}.png", pts.astype(np.float32), box, f"c{k}"))
        images.append(img)
    return crops, images


def test_paste_labels_and_pixels_match_the_cpu_paste(face_store, tmp_path):
    from facelite.train.augment import paste_landmark_crops
    from facelite.train.batch_augment import plan_pastes

    crops, images = _crops(tmp_path)
    cfg = AugmentConfig(size=128, paste_prob=1.0, paste_max=3, paste_max_size=0.6)
    aug = BatchAugmenter(face_store, cfg, crops=crops, crop_images=images)
    base = Labels(np.array([[10, 10, 40, 50]], np.float32), np.zeros((1, 5, 2), np.float32), np.array([False]))
    pasted = 0
    for seed in range(12):
        grey = np.full((128, 128, 3), 90, np.uint8)
        ref_img, ref = paste_landmark_crops(grey, base, crops, images, cfg, np.random.default_rng(seed))
        pastes, got = plan_pastes(base, crops, aug.crop_shapes, cfg, np.random.default_rng(seed))
        assert len(got) == len(ref) == 1 + len(pastes)
        np.testing.assert_allclose(got.boxes, ref.boxes, atol=1e-4)
        np.testing.assert_allclose(got.landmarks, ref.landmarks, atol=1e-4)
        assert got.has_landmarks.tolist() == ref.has_landmarks.tolist()
        out = torch.full((1, 3, 128, 128), 90.0)
        for p in pastes:
            aug._paste(p, out)
        img = out[0].permute(1, 2, 0).numpy()
        assert np.abs(img - ref_img).mean() < 1.5
        for b in got.boxes[1:]:  # the crop's face is there, not the grey
            x0, y0, x1, y1 = b.astype(int)
            assert np.abs(img[y0:y1, x0:x1] - 90).mean() > 15
        pasted += len(pastes)
    assert pasted >= 12
