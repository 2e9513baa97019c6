"""Pictures for checking the adapters by eye: each model's detections on a few dev images.

    python -m benchmarks.peers.draw --out docs/peers                # every model, 640 where it can
    python -m benchmarks.peers.draw --models yunet-n scrfd-0.5g --size 320

Writes ``<out>/check-<model>.jpg``: the images side by side, boxes with scores and the five
landmarks (blue left eye, red right eye, green nose, magenta / yellow mouth corners) of the
detections with score >= 0.5, the model and input size in the corner.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

IMAGES: tuple[str, ...] = (
    "1--Handshaking/1_Handshaking_Handshaking_1_762.jpg",  # two large faces: landmarks visible
    "12--Group/12_Group_Group_12_Group_Group_12_84.jpg",  # eleven medium faces
    "0--Parade/0_Parade_Parade_0_814.jpg",  # a crowd of small faces
)
"""Dev-split images (names as in ``images.txt``)."""
PANEL_HEIGHT = 330
MAX_BYTES = 150_000


def picture(detector, images: list[np.ndarray], title: str, score_threshold: float = 0.5) -> np.ndarray:
    """The images with ``detector``'s detections (score >= ``score_threshold``) drawn, side by side,
    each scaled to :data:`PANEL_HEIGHT` pixels high (BGR uint8)."""
    from facelite.draw import draw_faces, draw_text
    from facelite.face import Face

    panels = []
    for img in images:
        boxes, scores, pts = detector(img)
        f = PANEL_HEIGHT / img.shape[0]  # draw on the scaled image, so that lines and dots stay visible
        keep = np.flatnonzero(scores >= score_threshold)
        faces = [Face(box=tuple(float(v) * f for v in boxes[i]), score=float(scores[i]),
                      landmarks=np.zeros((0, 2), np.float32) if pts is None else pts[i] * f)
                 for i in keep]
        small = cv2.resize(img, (round(img.shape[1] * f), PANEL_HEIGHT), interpolation=cv2.INTER_AREA)
        panels.append(draw_faces(small, faces, thickness=1))
    out = np.concatenate(panels, axis=1)
    draw_text(out, title, (4, 4), scale=0.5)
    return out


def write_jpeg(image: np.ndarray, path: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Write a JPEG, lowering the quality until it is under ``max_bytes``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for q in (75, 65, 55, 45):
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok and len(buf) <= max_bytes:
            break
    path.write_bytes(buf.tobytes())
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.draw", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="names or groups (default: all)")
    p.add_argument("--size", type=int, default=640, help="input size (fixed-input models use their own)")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--out", type=Path, default=Path("out/peers"))
    args = p.parse_args(argv)
    from facelite.evaluation.widerface import default_split_dir, read_bgr

    from ..common import MissingDependencyError
    from ..registry import select

    split = default_split_dir()
    images = [read_bgr(split / "images" / n) for n in IMAGES]
    for e in select(args.models):
        size = args.size if args.size in e.sizes else e.sizes[0]
        try:
            det = e.build(size, score_threshold=args.score_threshold)
        except (FileNotFoundError, MissingDependencyError) as exc:
            print(f"skip {e.name}: {exc}", file=sys.stderr)
            continue
        pic = picture(det, images, f"{e.label} @{size}, score >= {args.score_threshold:g}", args.score_threshold)
        path = write_jpeg(pic, args.out / f"check-{e.name}.jpg")
        print(f"{path} ({path.stat().st_size // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
