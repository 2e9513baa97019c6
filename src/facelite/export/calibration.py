"""Images for static int8 calibration (``facelite export --int8``, ``facelite bench``)."""

from __future__ import annotations

import random
from pathlib import Path

from ..paths import data_path, shared_dir


def calibration_images(count: int, seed: int = 0) -> tuple[list[Path], str]:
    """``count`` training images for static quantization, and a description of the set.

    A fixed random sample (``seed``) of ``<shared>/data/widerface/train/images``, as
    ``facelite export --int8`` draws it; without the shared folder, the package's sample image.
    """
    folder = shared_dir() / "data" / "widerface" / "train" / "images"
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    pool = sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts) if folder.is_dir() else []
    if pool:
        picked = random.Random(seed).sample(pool, min(count, len(pool)))
        return picked, f"{len(picked)} WIDER FACE training images (seed {seed})"
    return [data_path("astronaut.jpg")], "the package's sample image (no shared data folder: not representative)"
