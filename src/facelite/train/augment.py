"""Training augmentation (RetinaFace recipe): random square crop, photometric distortion,
landmark-crop pasting, horizontal flip with landmark swap, resize to the training size; optional
image degradations (blur or resampling, JPEG artefacts, grey) that leave the labels unchanged;
optional mosaic of four images (each square-cropped, one per quadrant around a random centre).

All functions take and return BGR uint8 images and labels in that image's pixels:
boxes float32 (N, 4) xyxy, landmarks float32 (N, 5, 2), has_landmarks bool (N,), ignore bool (N,)
(regions that are neither face nor background: a teacher's confident faces that the labels miss).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..annotations import LandmarkCrop, Sample
from ..spec import FLIP_PERMUTATION

_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)


@dataclass
class Labels:
    boxes: np.ndarray
    landmarks: np.ndarray
    has_landmarks: np.ndarray
    ignore: np.ndarray | None = None  # bool (N,): ignore regions, not faces (default: none)

    def __post_init__(self) -> None:
        if self.ignore is None:
            self.ignore = np.zeros(len(self.boxes), bool)

    @classmethod
    def of(cls, sample: Sample) -> Labels:
        """The labels of a training sample; its ``ignore`` rows are ignore regions."""
        return cls(sample.boxes, sample.landmarks, sample.has_landmarks, sample.ignore)

    def select(self, keep: np.ndarray) -> Labels:
        return Labels(self.boxes[keep], self.landmarks[keep], self.has_landmarks[keep], self.ignore[keep])

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class AugmentConfig:
    size: int = 320
    crop_scales: tuple[float, ...] = (0.3, 0.45, 0.6, 0.8, 1.0)
    crop_tries: int = 50
    fill_bgr: tuple[int, int, int] = (104, 117, 123)
    photometric: bool = True
    flip_prob: float = 0.5
    paste_prob: float = 0.0
    paste_max: int = 3
    paste_min_size: float = 12.0
    paste_max_size: float = 0.45  # fraction of ``size``
    blur_prob: float = 0.0  # Gaussian blur (sigma 0.5-1.6) or down-and-up resampling (x0.35-0.8)
    jpeg_prob: float = 0.0  # re-encode as JPEG at quality 30-90
    gray_prob: float = 0.0  # grey, kept as 3 channels
    mosaic_prob: float = 0.0  # four images in one sample (the dataset draws the other three)


def random_square_crop(image: np.ndarray, labels: Labels, cfg: AugmentConfig,
                       rng: np.random.Generator) -> tuple[np.ndarray, Labels]:
    """Crop a random square of side ``scale * shorter side`` (scale from ``cfg.crop_scales``;
    > 1 zooms out, filling outside the image with ``cfg.fill_bgr``) and resize it to
    ``cfg.size`` x ``cfg.size`` in one warp. Faces whose centre lies outside the square are
    dropped; a square keeping at least one face is retried for ``cfg.crop_tries`` tries (images
    without faces take the first square). Returns the new image and labels in its pixels."""
    h, w = image.shape[:2]
    side, x0, y0, inside = choose_square(h, w, labels, cfg, rng)
    s = cfg.size / side
    interp = _INTERPOLATIONS[rng.integers(len(_INTERPOLATIONS))]
    out = cv2.resize(_square(image, x0, y0, side, cfg.fill_bgr), (cfg.size, cfg.size), interpolation=interp)
    kept = labels.select(inside)
    boxes = (kept.boxes - [x0, y0, x0, y0]) * s
    boxes = np.clip(boxes, 0, cfg.size).astype(np.float32)
    lmks = ((kept.landmarks - [x0, y0]) * s).astype(np.float32)
    valid = (boxes[:, 2] - boxes[:, 0] > 1e-3) & (boxes[:, 3] - boxes[:, 1] > 1e-3)
    return out, Labels(boxes, lmks, kept.has_landmarks, kept.ignore).select(valid)


def choose_square(h: int, w: int, labels: Labels, cfg: AugmentConfig,
                  rng: np.random.Generator) -> tuple[int, int, int, np.ndarray]:
    """The square of :func:`random_square_crop` for an ``h`` x ``w`` image: ``(side, x0, y0,
    inside)`` in its pixels (``x0``, ``y0`` may be negative: zoomed out), ``inside`` bool (N,) the
    faces whose centre lies strictly inside it."""
    short = min(h, w)
    chosen = None
    for _ in range(max(cfg.crop_tries, 1)):
        side = max(int(cfg.crop_scales[rng.integers(len(cfg.crop_scales))] * short), 1)
        x0 = int(rng.integers(min(0, w - side), max(0, w - side) + 1))
        y0 = int(rng.integers(min(0, h - side), max(0, h - side) + 1))
        inside = _centres_inside(labels.boxes, x0, y0, side, side)
        if chosen is None or inside.any():
            chosen = (side, x0, y0, inside)
        if inside.any() or len(labels) == 0:
            break
    side, x0, y0, inside = chosen  # type: ignore[misc]
    if len(labels) and not inside.any():  # no square kept a face: use the whole image, padded square
        side, x0, y0 = max(h, w), 0, 0
        inside = np.ones(len(labels), bool)
    return side, x0, y0, inside


def mosaic(tiles: list[tuple[np.ndarray, Labels]], cfg: AugmentConfig,
           rng: np.random.Generator) -> tuple[np.ndarray, Labels]:
    """Four images in one ``cfg.size`` x ``cfg.size`` sample: a centre ``(cx, cy)`` is drawn in the
    middle half of the square, and quadrant k (top-left, top-right, bottom-left, bottom-right)
    gets the same-sized window of image k after :func:`random_square_crop` (so each image keeps
    the crop-scale distribution of single samples). Window k is taken at a random place of its
    square. Faces whose centre lies outside their window are dropped, the others are clipped to
    it. A face with a landmark outside its window keeps its box but loses its landmarks
    (``has_landmarks`` False): that point would lie on another image's pixels. Labels are in the
    output's pixels."""
    if len(tiles) != 4:
        raise ValueError(f"mosaic needs 4 images, got {len(tiles)}")
    size = cfg.size
    cx, cy = (int(v) for v in rng.integers(size // 4, size - size // 4 + 1, 2))
    out = np.empty((size, size, 3), np.uint8)
    parts: list[Labels] = []
    quadrants = ((0, 0, cx, cy), (cx, 0, size, cy), (0, cy, cx, size), (cx, cy, size, size))
    for (image, labels), (qx0, qy0, qx1, qy1) in zip(tiles, quadrants):
        tile, lab = random_square_crop(image, labels, cfg, rng)
        qw, qh = qx1 - qx0, qy1 - qy0  # > 0: the centre is in the middle half
        tx, ty = int(rng.integers(0, size - qw + 1)), int(rng.integers(0, size - qh + 1))
        out[qy0:qy1, qx0:qx1] = tile[ty:ty + qh, tx:tx + qw]
        parts.append(window_labels(lab, tx, ty, (qx0, qy0, qx1, qy1)))
    return out, concat_labels(parts)


def window_labels(lab: Labels, tx: int, ty: int, quadrant: tuple[int, int, int, int]) -> Labels:
    """The labels of a mosaic tile's window: the window of ``quadrant``'s size at ``(tx, ty)`` of
    the tile goes to ``quadrant`` = ``(x0, y0, x1, y1)`` of the output. Faces whose centre lies
    outside the window are dropped, the others shifted and clipped to the quadrant (and dropped
    when 1 pixel or less remains); a face with a landmark outside the quadrant loses its landmarks."""
    qx0, qy0, qx1, qy1 = quadrant
    lab = lab.select(_centres_inside(lab.boxes, tx, ty, qx1 - qx0, qy1 - qy0))
    shift = np.array([qx0 - tx, qy0 - ty], np.float32)
    b = np.clip(lab.boxes + np.tile(shift, 2), [qx0, qy0, qx0, qy0], [qx1, qy1, qx1, qy1]).astype(np.float32)
    valid = (b[:, 2] - b[:, 0] > 1) & (b[:, 3] - b[:, 1] > 1)
    pts = lab.landmarks + shift
    inside = np.all((pts > [qx0, qy0]) & (pts < [qx1, qy1]), axis=(1, 2))
    return Labels(b[valid], pts[valid].astype(np.float32), (lab.has_landmarks & inside)[valid], lab.ignore[valid])


def concat_labels(parts: list[Labels]) -> Labels:
    """The faces of several :class:`Labels` in one."""
    return Labels(np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
                  np.concatenate([p.landmarks for p in parts]).reshape(-1, 5, 2),
                  np.concatenate([p.has_landmarks for p in parts]).astype(bool),
                  np.concatenate([p.ignore for p in parts]).astype(bool))


def mosaic_partners(count: int, cfg: AugmentConfig, rng: np.random.Generator) -> list[int]:
    """Indices (of ``count`` images) of the three others for a :func:`mosaic`, drawn with
    probability ``cfg.mosaic_prob``; empty otherwise. Draws nothing when mosaic is off, so recipes
    without it keep their random stream."""
    if cfg.mosaic_prob <= 0 or rng.random() >= cfg.mosaic_prob:
        return []
    return [int(j) for j in rng.integers(count, size=3)]


def _centres_inside(boxes: np.ndarray, x0: float, y0: float, w: float, h: float) -> np.ndarray:
    """bool (N,): which xyxy boxes have their centre strictly inside the window ``(x0, y0, w, h)``."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    return (c[:, 0] > x0) & (c[:, 0] < x0 + w) & (c[:, 1] > y0) & (c[:, 1] < y0 + h)


def _square(image: np.ndarray, x0: int, y0: int, side: int, fill: tuple[int, int, int]) -> np.ndarray:
    """The ``side`` x ``side`` window of ``image`` at ``(x0, y0)``; parts outside the image are ``fill``."""
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    part = image[cy0:cy1, cx0:cx1]
    if part.shape[:2] == (side, side):
        return part
    return cv2.copyMakeBorder(part, cy0 - y0, y0 + side - cy1, cx0 - x0, x0 + side - cx1,
                              cv2.BORDER_CONSTANT, value=fill)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness (±32), contrast (×0.5–1.5), saturation (×0.5–1.5) and hue (±18°),
    each applied with probability 0.5, in RetinaFace's order. Every step is a per-value map, done
    with lookup tables on uint8 (same result as the float arithmetic, truncated where it is)."""
    values = np.arange(256, dtype=np.float32)
    lut = values.copy()
    contrast_first = rng.random() < 0.5
    if rng.random() < 0.5:
        lut += rng.uniform(-32, 32)
    if contrast_first and rng.random() < 0.5:
        lut *= rng.uniform(0.5, 1.5)
    np.clip(lut, 0, 255, out=lut)
    sat = rng.random() < 0.5
    hue = rng.random() < 0.5
    if sat or hue:
        img = cv2.LUT(image, lut.astype(np.uint8))
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
        if sat:
            k = rng.uniform(0.5, 1.5)
            hsv[..., 1] = cv2.LUT(hsv[..., 1], np.clip(values * k, 0, 255).astype(np.uint8))
        if hue:
            d = rng.integers(-9, 10)  # OpenCV hue is degrees / 2, in 0..179
            hsv[..., 0] = cv2.LUT(hsv[..., 0], ((values + d) % 180).astype(np.uint8))
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        lut = values.copy()
    if not contrast_first and rng.random() < 0.5:
        lut *= rng.uniform(0.5, 1.5)
    return cv2.LUT(image, np.clip(lut, 0, 255).astype(np.uint8))


def hflip(image: np.ndarray, labels: Labels) -> tuple[np.ndarray, Labels]:
    """Mirror left-right; left/right eye and mouth landmarks swap names."""
    w = image.shape[1]
    boxes = labels.boxes.copy()
    boxes[:, [0, 2]] = w - labels.boxes[:, [2, 0]]
    lmks = labels.landmarks.copy()
    lmks[..., 0] = w - lmks[..., 0]
    lmks = lmks[:, list(FLIP_PERMUTATION)]
    return np.ascontiguousarray(image[:, ::-1]), Labels(boxes, lmks, labels.has_landmarks, labels.ignore)


def _feather_mask(h: int, w: int) -> np.ndarray:
    """(h, w, 1) float32 alpha, 1 inside and ramping to 0 over the outer ~20 % of each side."""
    ry = np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / max(0.2 * h, 1)
    rx = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / max(0.2 * w, 1)
    return np.clip(np.minimum(ry[:, None], rx[None, :]), 0, 1)[..., None].astype(np.float32)


@dataclass
class Paste:
    """A landmark crop pasted into a sample: crop ``crop`` resized to ``w`` x ``h`` (area
    interpolation when shrunk, else bilinear) and feather-blended at ``(x0, y0)`` (output pixels,
    before the flip)."""

    crop: int
    x0: int
    y0: int
    w: int
    h: int
    shrink: bool


def plan_pastes(labels: Labels, crops: list[LandmarkCrop], crop_shapes: np.ndarray, cfg: AugmentConfig,
                rng: np.random.Generator) -> tuple[list[Paste], Labels]:
    """Where landmark crops go (:func:`paste_landmark_crops` and the device batches both follow
    this plan): up to ``cfg.paste_max`` crops with a face box, at random scales and positions that
    cover no labelled face by more than 10 % of its area; ``crop_shapes`` int (K, 2): the crops'
    (h, w). Returns the pastes and ``labels`` with the pasted faces added (output pixels)."""
    if not crops or rng.random() >= cfg.paste_prob:
        return [], labels
    size = cfg.size
    boxes, lmks, has, ign = [labels.boxes], [labels.landmarks], [labels.has_landmarks], [labels.ignore]
    occupied = labels.boxes.copy()
    pastes = []
    for _ in range(int(rng.integers(1, cfg.paste_max + 1))):
        k = int(rng.integers(len(crops)))
        crop, (ph, pw) = crops[k], (int(v) for v in crop_shapes[k])
        if crop.box is None:
            continue
        face_w = crop.box[2] - crop.box[0]
        target = np.exp(rng.uniform(np.log(cfg.paste_min_size), np.log(cfg.paste_max_size * size)))
        s = target / max(face_w, 1e-3)
        ch, cw = max(int(round(ph * s)), 2), max(int(round(pw * s)), 2)
        if ch >= size or cw >= size:
            continue
        area = (occupied[:, 2] - occupied[:, 0]) * (occupied[:, 3] - occupied[:, 1])
        for _try in range(8):  # a free spot: covers no labelled face by more than 10 % of its area
            x0, y0 = int(rng.integers(0, size - cw + 1)), int(rng.integers(0, size - ch + 1))
            sq = np.array([x0, y0, x0 + cw, y0 + ch], np.float32)
            ix = np.clip(np.minimum(occupied[:, 2], sq[2]) - np.maximum(occupied[:, 0], sq[0]), 0, None)
            iy = np.clip(np.minimum(occupied[:, 3], sq[3]) - np.maximum(occupied[:, 1], sq[1]), 0, None)
            if not np.any(ix * iy > 0.1 * np.maximum(area, 1e-3)):
                break
        else:
            continue
        pastes.append(Paste(k, x0, y0, cw, ch, bool(s < 1)))
        sx, sy = cw / pw, ch / ph
        b = crop.box * np.array([sx, sy, sx, sy], np.float32) + np.array([x0, y0, x0, y0], np.float32)
        boxes.append(b[None].astype(np.float32))
        lmks.append((crop.landmarks * [sx, sy] + [x0, y0])[None].astype(np.float32))
        has.append(np.ones(1, bool))
        ign.append(np.zeros(1, bool))
        occupied = np.concatenate([occupied, sq[None]])
    return pastes, Labels(np.concatenate(boxes), np.concatenate(lmks), np.concatenate(has), np.concatenate(ign))


def paste_landmark_crops(image: np.ndarray, labels: Labels, crops: list[LandmarkCrop], crop_images: list[np.ndarray],
                         cfg: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, Labels]:
    """Paste up to ``cfg.paste_max`` landmark crops (each with a face box) at random positions and
    scales, feather-blended, where they do not cover labelled faces (:func:`plan_pastes`). Adds
    their boxes and landmarks."""
    shapes = np.array([pix.shape[:2] for pix in crop_images], np.int64).reshape(-1, 2)
    pastes, out_labels = plan_pastes(labels, crops, shapes, cfg, rng)
    if not pastes:
        return image, out_labels
    out = image.copy()
    for p in pastes:
        patch = cv2.resize(crop_images[p.crop], (p.w, p.h), interpolation=cv2.INTER_AREA if p.shrink else cv2.INTER_LINEAR)
        alpha = _feather_mask(p.h, p.w)
        roi = out[p.y0 : p.y0 + p.h, p.x0 : p.x0 + p.w].astype(np.float32)
        out[p.y0 : p.y0 + p.h, p.x0 : p.x0 + p.w] = (alpha * patch + (1 - alpha) * roi).astype(np.uint8)
    return out, out_labels


def degrade(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur or resample, JPEG artefacts and grey, each with its probability from ``cfg``: the
    blur, low resolution and compression of real photos (WIDER FACE's blurry faces, the dev
    split's JPEGs against the training split's WebP). Pixels move nowhere, so labels hold.
    Same shape and dtype out; always draws the same number of random values (reproducible)."""
    u = rng.random(4)
    sigma, factor, quality = rng.uniform(0.5, 1.6), rng.uniform(0.35, 0.8), int(rng.integers(30, 91))
    out = image
    if u[0] < cfg.blur_prob:
        if u[1] < 0.5:
            out = cv2.GaussianBlur(out, (0, 0), sigma)
        else:
            h, w = out.shape[:2]
            small = cv2.resize(out, (max(int(w * factor), 1), max(int(h * factor), 1)), interpolation=cv2.INTER_AREA)
            out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if u[2] < cfg.jpeg_prob:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if u[3] < cfg.gray_prob:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def augment(image: np.ndarray, labels: Labels, cfg: AugmentConfig, rng: np.random.Generator,
            crops: list[LandmarkCrop] | None = None,
            crop_images: list[np.ndarray] | None = None,
            others: list[tuple[np.ndarray, Labels]] | None = None) -> tuple[np.ndarray, Labels]:
    """The full training transform; output image is ``cfg.size`` x ``cfg.size`` BGR uint8. With
    three ``others`` the geometry is a :func:`mosaic` of this image and them."""
    if others:
        out, lab = mosaic([(image, labels), *others], cfg, rng)
    else:
        out, lab = random_square_crop(image, labels, cfg, rng)
    if crops:  # before the colour changes, so pasted faces share the image's colour statistics
        out, lab = paste_landmark_crops(out, lab, crops, crop_images or [], cfg, rng)
    if cfg.photometric:
        out = photometric_distort(out, rng)
    if cfg.blur_prob or cfg.jpeg_prob or cfg.gray_prob:
        out = degrade(out, cfg, rng)
    if rng.random() < cfg.flip_prob:
        out, lab = hflip(out, lab)
    return out, lab
