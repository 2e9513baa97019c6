"""The torch batch matcher gives the NumPy matcher's targets (labels identical, deltas to 1e-5)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelite.anchors import make_anchors  # noqa: E402
from facelite.spec import default_spec  # noqa: E402
from facelite.train.match import cxcywh_to_xyxy, encode_targets  # noqa: E402
from facelite.train.match_torch import encode_batch, pad_labels  # noqa: E402

SPEC = default_spec(0.35)


def _random_faces(rng: np.random.Generator, size: int, k: int, ignore_frac: float = 0.2):
    """k faces of log-uniform sizes 2-0.8*size px, some overlapping, some ignore regions."""
    side = np.exp(rng.uniform(np.log(2), np.log(0.8 * size), k))
    aspect = rng.uniform(0.6, 1.6, k)
    w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
    x0, y0 = rng.uniform(-0.1 * size, size, k), rng.uniform(-0.1 * size, size, k)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], 1).clip(0, size).astype(np.float32)
    if k > 2:  # a duplicate and a near-duplicate: shared best anchors, ties
        boxes[1] = boxes[0]
        boxes[2] = boxes[0] + [1, 0, 1, 0]
    lmks = (boxes[:, None, :2] + rng.uniform(0, 1, (k, 5, 2)) * (boxes[:, None, 2:] - boxes[:, None, :2]))
    has = rng.random(k) < 0.6
    ign = rng.random(k) < ignore_frac
    return boxes, lmks.astype(np.float32), has, ign


def _compare(per_image, size: int, min_forced_iou: float = 0.2) -> None:
    anchors = make_anchors(SPEC, size, size)
    axy = cxcywh_to_xyxy(anchors)
    padded = pad_labels(per_image)
    t = encode_batch(torch.from_numpy(anchors), torch.from_numpy(axy), *padded[:3], padded[3], padded[4],
                     SPEC.variances, min_forced_iou=min_forced_iou)
    assert t.labels.shape == (len(per_image), len(anchors)) and t.landmarks.shape[-1] == 10
    for i, (b, lm, h, ig) in enumerate(per_image):
        ref = encode_targets(anchors, b, lm, h, SPEC.variances, min_forced_iou=min_forced_iou, anchors_xyxy=axy,
                             ignore=ig)
        np.testing.assert_array_equal(t.labels[i].numpy(), ref.labels)
        np.testing.assert_array_equal(t.landmark_mask[i].numpy(), ref.landmark_mask)
        np.testing.assert_allclose(t.boxes[i].numpy(), ref.boxes, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(t.landmarks[i].numpy(), ref.landmarks, rtol=1e-5, atol=1e-5)


def test_random_boxes_match_the_numpy_targets():
    rng = np.random.default_rng(3)
    per_image = [_random_faces(rng, 320, k) for k in (0, 1, 3, 7, 25, 60)]
    _compare(per_image, 320)
    labels = np.concatenate([encode_targets(make_anchors(SPEC, 320, 320), *p[:3], SPEC.variances, ignore=p[3]).labels
                             for p in per_image])
    assert (labels == 1).sum() > 20 and (labels == -1).sum() > 0  # the cases are exercised


def test_only_ignore_regions_and_forced_ties():
    rng = np.random.default_rng(5)
    b, lm, h, _ = _random_faces(rng, 160, 6, 0.0)
    only_ignore = (b, lm, h, np.ones(6, bool))
    tiny = (np.array([[10, 10, 12, 12], [40, 40, 56, 56], [41, 40, 57, 56]], np.float32),
            np.zeros((3, 5, 2), np.float32), np.array([True, False, True]), np.zeros(3, bool))
    _compare([only_ignore, tiny], 160)
    _compare([only_ignore, tiny], 160, min_forced_iou=0.0)


def test_every_face_forced_matches_the_numpy_targets():
    rng = np.random.default_rng(7)
    per_image = [_random_faces(rng, 320, k) for k in (1, 7, 40)]
    _compare(per_image, 320, min_forced_iou=0.0)
    anchors = make_anchors(SPEC, 320, 320)
    pos = [(encode_targets(anchors, *p[:3], SPEC.variances, min_forced_iou=f, ignore=p[3]).labels == 1).sum()
           for p in per_image for f in (0.2, 0.0)]
    assert sum(pos[1::2]) > sum(pos[0::2])  # the 2-px faces the default leaves out get an anchor


@pytest.mark.shared
def test_real_augmented_boxes_match_the_numpy_targets():
    from facelite.annotations import read_wider_txt
    from facelite.paths import shared_dir
    from facelite.train.augment import AugmentConfig, Labels, random_square_crop

    root = shared_dir() / "data/widerface/train"
    samples = read_wider_txt(root / "wider_face_train_bbx_gt.txt", root / "images")[:40]
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(size=320)
    per_image = []
    for s in samples:  # the crop geometry only: a blank image of the sample's size
        if not len(s.boxes):
            continue
        h, w = int(s.boxes[:, 3].max()) + 2, int(s.boxes[:, 2].max()) + 2
        _, lab = random_square_crop(np.zeros((h, w, 3), np.uint8), Labels.of(s), cfg, rng)
        ign = rng.random(len(lab)) < 0.1
        per_image.append((lab.boxes, lab.landmarks, lab.has_landmarks, ign))
    _compare(per_image, 320)
