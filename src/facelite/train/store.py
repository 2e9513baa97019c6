"""Precomputed decode: every training image decoded once into one memory-mapped uint8 file, with
its labels as flat arrays, for batches drawn without per-item decoding (``train.device_batches``).

Layout of a store folder (default ``~/.cache/facelite/stores/<key>/``): ``pixels.u8`` (raw uint8,
the images' BGR ``(h, w, 3)`` rows back to back), ``index.npz`` (pixel offsets, shapes, scales and
the labels: boxes float32 (F, 4) xyxy, landmarks float32 (F, 5, 2) ``(x, y)`` in the order left eye,
right eye, nose, left mouth corner, right mouth corner, has_landmarks bool (F,), ignore bool (F,),
all in pixels of the *stored* image) and ``manifest.json`` (the digest of every source file's path,
size and mtime, the labels and the size limit). A store whose digest differs from the samples'
is stale and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..annotations import Sample
from ..imageio import load_image
from ..paths import cache_dir
from .augment import Labels

log = logging.getLogger(__name__)

STORE_VERSION = 1


def needed_short_side(image_size: int, crop_scales: list[float] | tuple[float, ...]) -> int:
    """The shorter side a source image needs so that even the smallest crop (``min(crop_scales)``
    x the shorter side) is not upsampled to ``image_size``: ``ceil(image_size / min scale)``."""
    return int(math.ceil(image_size / min(crop_scales)))


def store_digest(samples: list[Sample], max_short_side: int) -> str:
    """sha256 over the version, the size limit, each source file's path, size and mtime (ns) and
    its labels: any change to an image or a label gives another digest."""
    h = hashlib.sha256(f"facelite-store {STORE_VERSION} {max_short_side}\n".encode())
    for s in samples:
        st = os.stat(s.path)
        h.update(f"{s.path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        for a in (s.boxes, s.landmarks, s.has_landmarks, s.ignore):
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def default_store_dir(samples: list[Sample], max_short_side: int) -> Path:
    """``<cache>/stores/<key>``: the key names the set of files (not their contents), so a changed
    file rebuilds the same folder instead of adding one."""
    key = hashlib.sha1("\n".join([str(max_short_side), *(str(s.path) for s in samples)]).encode()).hexdigest()[:16]
    return cache_dir() / "stores" / key


@dataclass
class ImageStore:
    """A read-only store (see the module doc). ``image(i)`` is a view (h, w, 3) BGR uint8 of the
    memory map; ``labels(i)`` the labels in its pixels; ``scales[i]`` = stored / source size."""

    root: Path
    pixels: np.ndarray  # uint8 (total,), memory-mapped
    offsets: np.ndarray  # int64 (I + 1,)
    shapes: np.ndarray  # int32 (I, 2): (h, w)
    scales: np.ndarray  # float32 (I,)
    face_offsets: np.ndarray  # int64 (I + 1,)
    boxes: np.ndarray
    landmarks: np.ndarray
    has_landmarks: np.ndarray
    ignore: np.ndarray

    def __len__(self) -> int:
        return len(self.shapes)

    def image(self, i: int) -> np.ndarray:
        h, w = (int(v) for v in self.shapes[i])
        return self.pixels[self.offsets[i]:self.offsets[i + 1]].reshape(h, w, 3)

    def labels(self, i: int) -> Labels:
        a, b = self.face_offsets[i], self.face_offsets[i + 1]
        return Labels(self.boxes[a:b], self.landmarks[a:b], self.has_landmarks[a:b], self.ignore[a:b])

    @classmethod
    def load(cls, root: Path) -> ImageStore:
        idx = np.load(root / "index.npz")
        pixels = np.memmap(root / "pixels.u8", dtype=np.uint8, mode="r")
        return cls(root, pixels, *(idx[k] for k in ("offsets", "shapes", "scales", "face_offsets", "boxes",
                                                    "landmarks", "has_landmarks", "ignore")))


def _decode(sample: Sample, max_short_side: int) -> tuple[np.ndarray, float, float]:
    img = load_image(sample.path)
    h, w = img.shape[:2]
    s = min(1.0, max_short_side / min(h, w))
    if s < 1.0:
        nw, nh = max(int(round(w * s)), 1), max(int(round(h * s)), 1)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img), nw / w, nh / h
    return np.ascontiguousarray(img), 1.0, 1.0


def _cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(shape, dtype)


def build_store(samples: list[Sample], root: Path, max_short_side: int, threads: int = 1) -> ImageStore:
    """Decode ``samples`` (``threads`` at a time), shrink those whose shorter side exceeds
    ``max_short_side`` (INTER_AREA, labels scaled with them) and write the store to ``root``
    (replaced atomically: written beside it, then renamed)."""
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    offsets, shapes, scales = [0], [], []
    boxes, lmks = [], []
    with open(tmp / "pixels.u8", "wb") as f, ThreadPoolExecutor(max(threads, 1)) as pool:
        for s, (img, sx, sy) in zip(samples, pool.map(lambda x: _decode(x, max_short_side), samples)):
            f.write(img.tobytes())
            offsets.append(offsets[-1] + img.size)
            shapes.append(img.shape[:2])
            scales.append(sx)
            boxes.append(s.boxes * np.array([sx, sy, sx, sy], np.float32))
            lmks.append(s.landmarks * np.array([sx, sy], np.float32))
    face_offsets = np.concatenate([[0], np.cumsum([len(s.boxes) for s in samples])]).astype(np.int64)
    np.savez(tmp / "index.npz", offsets=np.asarray(offsets, np.int64), shapes=np.asarray(shapes, np.int32).reshape(-1, 2),
             scales=np.asarray(scales, np.float32), face_offsets=face_offsets,
             boxes=_cat(boxes, (0, 4), np.float32), landmarks=_cat(lmks, (0, 5, 2), np.float32),
             has_landmarks=_cat([s.has_landmarks for s in samples], (0,), bool),
             ignore=_cat([s.ignore for s in samples], (0,), bool))
    (tmp / "manifest.json").write_text(json.dumps({
        "version": STORE_VERSION, "digest": store_digest(samples, max_short_side), "images": len(samples),
        "max_short_side": max_short_side, "bytes": int(offsets[-1])}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return ImageStore.load(root)


def open_store(samples: list[Sample], max_short_side: int, root: Path | None = None,
               threads: int = 1) -> tuple[ImageStore, bool]:
    """The store of ``samples`` under ``root`` (default :func:`default_store_dir`), built when
    missing or stale (its manifest's digest differs from :func:`store_digest`). Returns
    ``(store, built)``."""
    root = root or default_store_dir(samples, max_short_side)
    manifest = root / "manifest.json"
    digest = store_digest(samples, max_short_side)
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text()).get("digest") == digest:
                return ImageStore.load(root), False
        except (ValueError, OSError):
            pass
        log.info("image store %s is stale: rebuilding", root)
    log.info("building the image store of %d images in %s (shorter side <= %d)", len(samples), root, max_short_side)
    return build_store(samples, root, max_short_side, threads), True
