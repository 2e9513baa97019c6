"""Augmentation of a whole batch in torch (``train.device_batches``): the random square crop and
resize, photometric jitter and horizontal flip of :mod:`facelite.train.augment`, with the pixels
on any device (CUDA when training there) and the few label rows in NumPy.

Per sample, the square is chosen exactly as :func:`facelite.train.augment.random_square_crop`
does (:func:`~facelite.train.augment.choose_square`: crop scales, tries, the centre-inside rule,
the whole-image fallback); the part of it inside the image is resized onto its place in the
output (the rest is the fill colour) and the labels take the same map ``x_out = ox0 + (x - ix0) *
sx`` (output pixels; boxes clipped to the output and kept when wider and taller than 1e-3 px, as
there). Differences from the CPU path: interpolation is one of bilinear / bicubic (antialiased),
area, nearest (no Lanczos); the placement of a zoomed-out crop is rounded to whole output pixels
(the labels follow the rounded map exactly); photometric steps run in float without the uint8
truncation between them; saturation is HSV's exact S scaling (``c' = V - k (V - c)``, S capped
at 1) but hue is a rotation about the grey axis (the same ±18° range), not an HSV hue shift;
mosaic and landmark-crop pasting follow :func:`facelite.train.augment.mosaic` and
:func:`~facelite.train.augment.paste_landmark_crops` (same draws and label rules; the blend is
kept in float, not truncated to uint8); the image degradations are not done on this path.

Images are BGR uint8; out: ``(B, S, S, 3)`` BGR uint8 on the device, the DataLoader path's layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..annotations import LandmarkCrop
from ..spec import FLIP_PERMUTATION
from .augment import (
    AugmentConfig,
    Labels,
    Paste,
    _feather_mask,
    choose_square,
    concat_labels,
    mosaic_partners,
    plan_pastes,
    window_labels,
)
from .store import ImageStore

MODES = ("bilinear", "bicubic", "area", "nearest")


@dataclass
class Tile:
    """One stored image in a sample: its window ``[ix0, ix1) x [iy0, iy1)`` (stored pixels) is
    resized onto ``[ox0, ox1) x [oy0, oy1)`` of an S x S crop (``mode`` indexes :data:`MODES`;
    the rest of the crop is the fill colour). Without ``cut`` that crop is the sample; in a
    mosaic, its rectangle ``cut = (tx, ty, qw, qh)`` goes to ``at = (qx0, qy0)`` of the sample."""

    index: int
    window: tuple[int, int, int, int]
    place: tuple[int, int, int, int]
    mode: int
    cut: tuple[int, int, int, int] | None = None
    at: tuple[int, int] = (0, 0)


@dataclass
class SamplePlan:
    """One sample: its tiles (1, or 4 for a mosaic), pasted crops, whether it is flipped, and its
    labels in output pixels (flip applied)."""

    tiles: list[Tile]
    flip: bool
    labels: Labels
    pastes: list[Paste] = field(default_factory=list)


@dataclass
class Photometric:
    """Per-sample jitter, float32 (B,) each: brightness added, contrast factor before (``c1``) and
    after (``c2``) the saturation / hue step, saturation factor, hue rotation in radians; 0 / 1
    where a step is not drawn."""

    brightness: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    saturation: np.ndarray
    hue: np.ndarray


def crop_tile(index: int, h: int, w: int, labels: Labels, cfg: AugmentConfig,
              rng: np.random.Generator) -> tuple[Tile, Labels]:
    """The random square crop of one ``h`` x ``w`` stored image (the random draws of
    :func:`facelite.train.augment.random_square_crop`), and its labels in the crop's pixels."""
    size = cfg.size
    side, x0, y0, inside = choose_square(h, w, labels, cfg, rng)
    mode = int(rng.integers(len(MODES)))
    s = size / side
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    ox0, oy0 = int(round((ix0 - x0) * s)), int(round((iy0 - y0) * s))
    ox1, oy1 = max(int(round((ix1 - x0) * s)), ox0 + 1), max(int(round((iy1 - y0) * s)), oy0 + 1)
    ox1, oy1 = min(ox1, size), min(oy1, size)
    ox0, oy0 = min(ox0, ox1 - 1), min(oy0, oy1 - 1)
    sx, sy = (ox1 - ox0) / (ix1 - ix0), (oy1 - oy0) / (iy1 - iy0)
    kept = labels.select(inside)
    scale = np.array([sx, sy], np.float32)
    shift = np.array([ox0 - ix0 * sx, oy0 - iy0 * sy], np.float32)
    boxes = np.clip(kept.boxes * np.tile(scale, 2) + np.tile(shift, 2), 0, size).astype(np.float32)
    lmks = (kept.landmarks * scale + shift).astype(np.float32)
    valid = (boxes[:, 2] - boxes[:, 0] > 1e-3) & (boxes[:, 3] - boxes[:, 1] > 1e-3)
    lab = Labels(boxes, lmks, kept.has_landmarks, kept.ignore).select(valid)
    return Tile(index, (ix0, iy0, ix1, iy1), (ox0, oy0, ox1, oy1), mode), lab


def mosaic_tiles(indices: list[int], store: ImageStore, cfg: AugmentConfig,
                 rng: np.random.Generator) -> tuple[list[Tile], Labels]:
    """Four stored images in one sample, with the draws and label rules of
    :func:`facelite.train.augment.mosaic` (quadrants around a random centre, a random window of
    each tile's crop, faces kept when their centre is in it, clipped to it, kept when wider and
    taller than 1 px, landmarks dropped when one lies outside it)."""
    size = cfg.size
    cx, cy = (int(v) for v in rng.integers(size // 4, size - size // 4 + 1, 2))
    quadrants = ((0, 0, cx, cy), (cx, 0, size, cy), (0, cy, cx, size), (cx, cy, size, size))
    tiles, parts = [], []
    for i, (qx0, qy0, qx1, qy1) in zip(indices, quadrants):
        tile, lab = crop_tile(i, int(store.shapes[i][0]), int(store.shapes[i][1]), store.labels(i), cfg, rng)
        qw, qh = qx1 - qx0, qy1 - qy0
        tx, ty = int(rng.integers(0, size - qw + 1)), int(rng.integers(0, size - qh + 1))
        tile.cut, tile.at = (tx, ty, qw, qh), (qx0, qy0)
        tiles.append(tile)
        parts.append(window_labels(lab, tx, ty, (qx0, qy0, qx1, qy1)))
    return tiles, concat_labels(parts)


def plan_sample(index: int, store: ImageStore, cfg: AugmentConfig, rng: np.random.Generator,
                crops: list[LandmarkCrop] | None = None, crop_shapes: np.ndarray | None = None) -> SamplePlan:
    """One sample of stored image ``index``: a mosaic with three other stored images (drawn as
    :func:`facelite.train.augment.mosaic_partners` does) or its own crop, landmark crops pasted
    (with ``crops``), then the flip."""
    partners = mosaic_partners(len(store), cfg, rng)
    if partners:
        tiles, lab = mosaic_tiles([index, *partners], store, cfg, rng)
    else:
        tile, lab = crop_tile(index, int(store.shapes[index][0]), int(store.shapes[index][1]),
                              store.labels(index), cfg, rng)
        tiles = [tile]
    pastes: list[Paste] = []
    if crops:
        pastes, lab = plan_pastes(lab, crops, crop_shapes, cfg, rng)
    flip = bool(rng.random() < cfg.flip_prob)
    return SamplePlan(tiles, flip, flip_labels(lab, cfg.size) if flip else lab, pastes)


def flip_labels(labels: Labels, width: int) -> Labels:
    """:func:`facelite.train.augment.hflip`'s label half: x -> width - x, box corners swapped,
    left/right eye and mouth corner renamed."""
    boxes = labels.boxes.copy()
    boxes[:, [0, 2]] = width - labels.boxes[:, [2, 0]]
    lmks = labels.landmarks.copy()
    lmks[..., 0] = width - lmks[..., 0]
    return Labels(boxes, lmks[:, list(FLIP_PERMUTATION)], labels.has_landmarks, labels.ignore)


def draw_photometric(rngs: list[np.random.Generator], enabled: bool = True) -> Photometric:
    """Each sample's jitter with :func:`facelite.train.augment.photometric_distort`'s ranges and
    probabilities (brightness ±32, contrast and saturation x0.5-1.5, hue ±18°, each p 0.5;
    contrast before or after the colour step)."""
    n = len(rngs)
    out = Photometric(np.zeros(n, np.float32), np.ones(n, np.float32), np.ones(n, np.float32),
                      np.ones(n, np.float32), np.zeros(n, np.float32))
    if not enabled:
        return out
    for i, rng in enumerate(rngs):
        u = rng.random(6)
        first = u[0] < 0.5
        if u[1] < 0.5:
            out.brightness[i] = rng.uniform(-32, 32)
        c = rng.uniform(0.5, 1.5) if u[2] < 0.5 else 1.0
        out.c1[i], out.c2[i] = (c, 1.0) if first else (1.0, c)
        if u[3] < 0.5:
            out.saturation[i] = rng.uniform(0.5, 1.5)
        if u[4] < 0.5:
            out.hue[i] = math.radians(2 * int(rng.integers(-9, 10)))
    return out


def _hue_matrices(theta: torch.Tensor) -> torch.Tensor:
    """(B,) angles -> (B, 3, 3) rotations of colour vectors about the grey axis (1, 1, 1)."""
    c, s = torch.cos(theta), torch.sin(theta)
    k = 1.0 / 3.0
    r = math.sqrt(k)
    a, b, d = c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s
    return torch.stack([torch.stack([a, b, d], -1), torch.stack([d, a, b], -1), torch.stack([b, d, a], -1)], -2)


def apply_photometric(x: torch.Tensor, p: Photometric) -> torch.Tensor:
    """``x`` float (B, 3, H, W) in 0..255 (any channel order) -> jittered, clipped to 0..255."""
    dev = x.device

    def col(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(dev).view(-1, 1, 1, 1)

    x = ((x + col(p.brightness)) * col(p.c1)).clamp_(0, 255)
    k = col(p.saturation)
    v = x.amax(dim=1, keepdim=True)
    lo = x.amin(dim=1, keepdim=True)
    k_eff = torch.minimum(k, v / (v - lo).clamp(min=1e-6))  # S' = min(k S, 1)
    x = v - k_eff * (v - x)
    if bool((torch.from_numpy(p.hue) != 0).any()):
        m = _hue_matrices(torch.from_numpy(p.hue).to(dev))
        x = torch.einsum("bij,bjhw->bihw", m, x)
    return (x.clamp_(0, 255) * col(p.c2)).clamp_(0, 255)


class BatchAugmenter:
    """Draws augmented batches from an :class:`ImageStore`. ``device``: where the pixels are
    resized and jittered; on CUDA the whole store is copied to the device once (its uint8 size)."""

    def __init__(self, store: ImageStore, cfg: AugmentConfig, device: torch.device | str = "cpu",
                 seed: int = 0, crops: list[LandmarkCrop] | None = None,
                 crop_images: list[np.ndarray] | None = None) -> None:
        self.store, self.cfg, self.seed = store, cfg, seed
        self.device = torch.device(device)
        # landmark crops with a face box, and their images (BGR uint8) as (3, h, w) tensors on the device
        self.crops = crops or []
        self.crop_pixels = [torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).to(self.device)
                            for c in (crop_images or [])]
        self.crop_shapes = np.array([c.shape[:2] for c in (crop_images or [])], np.int64).reshape(-1, 2)
        self.pixels: torch.Tensor | None = None
        if self.device.type != "cpu":
            self.pixels = torch.from_numpy(np.asarray(store.pixels)).to(self.device)
        self.fill = torch.tensor(cfg.fill_bgr, dtype=torch.float32, device=self.device).view(3, 1, 1)

    def _window(self, i: int, win: tuple[int, int, int, int]) -> torch.Tensor:
        """(1, 3, h, w) float32 window of stored image ``i`` on the device."""
        ix0, iy0, ix1, iy1 = win
        h, w = (int(v) for v in self.store.shapes[i])
        if self.pixels is not None:
            a, b = int(self.store.offsets[i]), int(self.store.offsets[i + 1])
            part = self.pixels[a:b].view(h, w, 3)[iy0:iy1, ix0:ix1]
        else:
            part = torch.from_numpy(np.array(self.store.image(i)[iy0:iy1, ix0:ix1]))  # a writable copy
        return part.permute(2, 0, 1)[None].float()

    def _render(self, t: Tile, out: torch.Tensor) -> None:
        """Draw tile ``t`` into ``out`` (1, 3, S, S) float32."""
        ox0, oy0, ox1, oy1 = t.place
        mode = MODES[t.mode]
        kw = {"antialias": True, "align_corners": False} if mode in ("bilinear", "bicubic") else {}
        resized = F.interpolate(self._window(t.index, t.window), size=(oy1 - oy0, ox1 - ox0), mode=mode, **kw)
        if t.cut is None:
            out[:, :, oy0:oy1, ox0:ox1] = resized
            return
        size = out.shape[-1]
        crop = self.fill.expand(1, 3, size, size).clone()
        crop[:, :, oy0:oy1, ox0:ox1] = resized
        tx, ty, qw, qh = t.cut
        qx0, qy0 = t.at
        out[:, :, qy0:qy0 + qh, qx0:qx0 + qw] = crop[:, :, ty:ty + qh, tx:tx + qw]

    def _paste(self, p: Paste, out: torch.Tensor) -> None:
        """Blend pasted crop ``p`` into ``out`` (1, 3, S, S) float32 (the feather mask of augment.py)."""
        src = self.crop_pixels[p.crop][None].float()
        if p.shrink:
            patch = F.interpolate(src, size=(p.h, p.w), mode="area")
        else:
            patch = F.interpolate(src, size=(p.h, p.w), mode="bilinear", align_corners=False)
        alpha = torch.from_numpy(_feather_mask(p.h, p.w)[..., 0]).to(self.device)
        roi = out[:, :, p.y0:p.y0 + p.h, p.x0:p.x0 + p.w]
        out[:, :, p.y0:p.y0 + p.h, p.x0:p.x0 + p.w] = alpha * patch + (1 - alpha) * roi

    def __call__(self, indices: list[int], epoch: int, draws: list[int] | None = None) -> tuple[torch.Tensor, list[Labels]]:
        """Augment the stored images ``indices``; randomness is a pure function of ``(seed, epoch,
        draw)`` per sample, ``draws`` the samples' positions in the epoch (default 0..B-1), so an
        image drawn twice in an epoch gets two different views. Returns ``(images uint8 (B, S, S,
        3) BGR on the device, labels in output pixels)``."""
        size, cfg = self.cfg.size, self.cfg
        draws = list(range(len(indices))) if draws is None else draws
        rngs = [np.random.default_rng((self.seed, epoch, int(d), 31337)) for d in draws]
        plans = [plan_sample(int(i), self.store, cfg, rng, self.crops, self.crop_shapes)
                 for i, rng in zip(indices, rngs)]
        photo = draw_photometric(rngs, cfg.photometric)
        out = self.fill.expand(len(plans), 3, size, size).clone()
        for k, pl in enumerate(plans):
            for t in pl.tiles:
                self._render(t, out[k:k + 1])
            for p in pl.pastes:
                self._paste(p, out[k:k + 1])
        if cfg.photometric:
            out = apply_photometric(out, photo)
        flip = torch.tensor([pl.flip for pl in plans], device=self.device)
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
        imgs = out.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return imgs, [pl.labels for pl in plans]
