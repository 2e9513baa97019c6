"""``facelite augment-preview``: write augmented training samples with their labels drawn, to check by eye."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("augment-preview", help="write a few augmented training samples with labels drawn",
                       description="Apply the training augmentation of a recipe to a few training images and "
                                   "write them with boxes (green: WIDER, red: with landmarks) and landmark points "
                                   "drawn, as one grid PNG.")
    p.add_argument("--config", required=True, help="TOML recipe")
    p.add_argument("--out", default="augment_preview.png", help="output PNG")
    p.add_argument("-n", type=int, default=12, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, as for `facelite train` (e.g. the paths of a data pack)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..imageio import load_image
    from ..spec import default_spec
    from ..train.augment import Labels, augment, mosaic_partners
    from ..train.config import apply_overrides, load_config
    from ..train.trainer import augment_config, load_paste_crops, load_samples

    cfg = load_config(args.config)
    apply_overrides(cfg, args.set)
    spec = default_spec(cfg.model.alpha, cfg.model.fpn_channels)
    samples = load_samples(cfg)
    crops = load_paste_crops(cfg)
    crop_images = [load_image(c.path) for c in crops]
    aug = augment_config(cfg, spec)
    rng = np.random.default_rng(args.seed)
    tiles = []
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0)]
    for idx in rng.choice(len(samples), size=min(args.n, len(samples)), replace=False):
        s = samples[int(idx)]
        others = [(load_image(samples[j].path), Labels.of(samples[j])) for j in mosaic_partners(len(samples), aug, rng)]
        img, lab = augment(load_image(s.path), Labels.of(s), aug, rng, crops, crop_images, others)
        for b, pts, has in zip(lab.boxes, lab.landmarks, lab.has_landmarks):
            x1, y1, x2, y2 = (int(round(v)) for v in b)
            cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255) if has else (0, 255, 0), 1)
            if has:
                for k, (x, y) in enumerate(pts):
                    cv2.circle(img, (int(round(x)), int(round(y))), 1, colours[k], -1)
        tiles.append(img)
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ..fileio import write_image

    write_image(out, grid)
    print(f"wrote {out} ({len(tiles)} samples)")
    return 0
