"""A compact, self-contained copy of a recipe's training data (for a machine that receives a
size-limited working tree, e.g. a lent GPU machine).

The pack mirrors the shared folder's layout, so a recipe runs on it unchanged with
``FACELITE_SHARED=<pack>``: training images re-encoded as WebP (same pixel size, or with
``--max-side`` shrunk and their labels scaled with them), the labels file, the training part of the landmark crops that have a face box, the
crop boxes, the ImageNet backbone weights (``features.*`` only, float16) and the ONNX file of a
peer teacher a recipe names (``model.teacher = "retinaface"``). The sets of ``data.extra_sets`` go
to ``data/extra<k>/`` (images, and a COCO file whose crowd faces are the teacher's ignore regions,
computed here, so the pack needs no ``data.teacher_ignore`` teacher)::

    python -m facelite.train.pack --config configs/mobilenetv2-1.0.toml --config configs/mobilenetv2-0.35.toml \
        --out .devdata --quality 40 --max-crops 3400

Run a recipe on it with the overrides it prints (``--set data.train_labels=... ...``).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from ..annotations import write_retinaface_labels
from ..imageio import load_image
from ..progress import Progress
from .config import Config, load_config, resolve
from .teachers import ANCHOR_TEACHERS, teacher_files

log = logging.getLogger(__name__)

LABELS = "data/widerface/train/label.txt"
IMAGES = "data/widerface/train/images"
CROPS = "data/landmarks5/landmarks.txt"
CROP_BOXES = "data/landmarks5/crop_boxes.npz"


def landmark_line(name: str, points: np.ndarray) -> str:
    """A ``landmarks.txt`` line: the name, then x1..x5 and y1..y5 of ``points`` (5, 2)."""
    return name + " " + " ".join(f"{v:.3f}" for v in np.asarray(points).T.reshape(-1))


def pack_images(samples, image_root: Path, out_root: Path, quality: int, max_side: int | None = None) -> int:
    """Re-encode each sample's image as WebP at ``quality`` under ``out_root`` (same relative path,
    ``.webp`` suffix). The pixel size is unchanged, or with ``max_side`` images whose longer side
    exceeds it are shrunk to it (INTER_AREA) and their sample's boxes and landmarks scaled to match
    (the samples are changed in place). Returns the bytes written."""
    total = 0
    bar = Progress(total=len(samples), desc="images", unit="img")
    for s in samples:
        rel = Path(s.path).relative_to(image_root).with_suffix(".webp")
        dst = out_root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        img = load_image(s.path)
        if max_side and max(img.shape[:2]) > max_side:
            f = max_side / max(img.shape[:2])
            size = (max(round(img.shape[1] * f), 1), max(round(img.shape[0] * f), 1))
            fx, fy = size[0] / img.shape[1], size[1] / img.shape[0]
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            s.boxes = (s.boxes * np.array([fx, fy, fx, fy], np.float32)).astype(np.float32)
            s.landmarks = (s.landmarks * np.array([fx, fy], np.float32)).astype(np.float32)
        ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"could not encode {s.path}")
        dst.write_bytes(buf.tobytes())
        s.path = dst
        total += len(buf)
        bar.update(1)
    bar.close()
    return total


def pack_imagenet(src: Path, dst: Path) -> None:
    """Keep the ``features.*`` tensors of an ImageNet state dict, floating ones as float16
    (``load_state_dict`` converts them back to the model's float32)."""
    import torch

    state = torch.load(src, map_location="cpu", weights_only=True)
    small = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items() if k.startswith("features.")}
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(small, dst)


def write_coco_regions(samples, path: Path, image_root: Path) -> None:
    """Samples as a COCO file (paths relative to ``image_root``): faces with their 5 landmarks when
    they have them, ignore rows as ``iscrowd`` faces (read back as ignore faces)."""
    import json

    images, annotations = [], []
    for i, s in enumerate(samples):
        images.append({"id": i, "file_name": Path(s.path).relative_to(image_root).as_posix()})
        for b, pts, has, ign in zip(s.boxes, s.landmarks, s.has_landmarks, s.ignore):
            a = {"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": int(ign),
                 "bbox": [round(float(v), 2) for v in (b[0], b[1], b[2] - b[0], b[3] - b[1])]}
            if has:
                a["keypoints"] = [round(float(v), 2) for p in pts for v in (*p, 2)]
            annotations.append(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "face"}]}, separators=(",", ":")))


def pack_extra_sets(cfg: Config, out: Path, quality: int, max_side: int | None = None) -> str | None:
    """Pack ``cfg.data.extra_sets`` (holdouts applied, the teacher's ignore regions computed) under
    ``out/data/extra<k>/``; returns the ``data.extra_sets`` override that reads them (no spaces)."""
    from .trainer import load_sources

    if not cfg.data.extra_sets:
        return None
    sources = load_sources(cfg)[1:]
    tables = []
    for k, (entry, src) in enumerate(zip(cfg.data.extra_sets, sources), 1):
        root = resolve(str(entry["images"]))
        rel = f"data/extra{k}"
        n_bytes = pack_images(src.samples, root, out / rel / "images", quality, max_side)
        write_coco_regions(src.samples, out / rel / "labels.json", out / rel / "images")
        log.info("extra set %d (%s): %d images, %.1f MB, %d ignore regions", k, src.name, len(src.samples),
                 n_bytes / 1e6, sum(int(s.ignore.sum()) for s in src.samples))
        tables.append(f'{{name="{src.name}",labels="{rel}/labels.json",images="{rel}/images",weight={src.weight:g},'
                      f'exhaustive=true,ignore_regions=true}}')
    return "data.extra_sets=[" + ",".join(tables) + "]"


def pack(configs: list[Config], out: Path, quality: int = 45, max_crops: int | None = None,
         max_side: int | None = None) -> list[str]:
    """Write the pack for ``configs`` (same training data expected) to ``out``; returns the
    ``--set`` overrides that point a recipe at the packed files. ``max_crops`` keeps that many
    landmark crops (a fixed subset: the lowest SHA-1 of the name); ``max_side`` shrinks training
    images to that longer side (labels scaled with them)."""
    from .trainer import load_paste_crops, load_samples

    first = configs[0]
    out.mkdir(parents=True, exist_ok=True)
    if first.data.teacher_ignore and not first.data.exhaustive:
        raise ValueError("the pack carries ignore regions of data.extra_sets only: data.exhaustive must be true")
    samples = load_samples(first)
    image_root = resolve(first.data.train_images)
    n_bytes = pack_images(samples, image_root, out / IMAGES, quality, max_side)
    log.info("images: %d, %.1f MB", len(samples), n_bytes / 1e6)
    write_retinaface_labels(samples, out / LABELS, out / IMAGES)
    with open(out / LABELS, "rb") as f, gzip.open(str(out / LABELS) + ".gz", "wb", compresslevel=9) as g:
        shutil.copyfileobj(f, g)
    (out / LABELS).unlink()  # the .gz travels; unpack with `gunzip -k`

    crops = [c for c in load_paste_crops(first) if c.box is not None]
    if max_crops is not None and len(crops) > max_crops:
        import hashlib

        crops = sorted(crops, key=lambda c: hashlib.sha1(c.name.encode()).hexdigest())[:max_crops]
    sets = [f"data.train_labels={LABELS}", f"data.train_images={IMAGES}"]
    if crops:  # none when the recipe pastes no crops (data.paste_prob = 0)
        lines, names, boxes = [], [], []
        crop_root = resolve(first.data.landmark_crops).parent
        for c in crops:
            dst = out / "data/landmarks5" / c.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(crop_root / c.name, dst)
            lines.append(landmark_line(c.name, c.landmarks))
            names.append(c.name)
            boxes.append(c.box)
        (out / CROPS).write_text("\n".join(lines) + "\n")
        np.savez_compressed(out / CROP_BOXES, names=np.asarray(names),
                            boxes=np.asarray(boxes, np.float32).reshape(-1, 4))
        sets += [f"data.landmark_crops={CROPS}", f"data.landmark_crop_boxes={CROP_BOXES}"]
    log.info("landmark crops: %d", len(crops))

    extra = pack_extra_sets(first, out, quality, max_side)
    if extra:
        sets.append(extra)
    for cfg in configs:
        if cfg.model.imagenet_weights:
            pack_imagenet(resolve(cfg.model.imagenet_weights), out / cfg.model.imagenet_weights)
        if cfg.model.teacher in ANCHOR_TEACHERS:  # run from the shared folder (a facelite teacher is a path)
            for teacher in teacher_files(cfg.model.teacher):
                (out / teacher).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(resolve(teacher), out / teacher)
    return sets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facelite.train.pack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", required=True, help="recipe(s) whose data to pack")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quality", type=int, default=45, help="WebP quality of the images (1-100)")
    p.add_argument("--max-crops", type=int, default=None, help="keep at most this many landmark crops")
    p.add_argument("--max-side", type=int, default=None,
                   help="shrink training images to this longer side (labels scaled with them; default: as stored)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sets = pack([load_config(c) for c in args.config], args.out, args.quality, args.max_crops, args.max_side)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"pack: {args.out} ({size / 2**20:.1f} MiB); run a recipe on it with FACELITE_SHARED={args.out} and")
    print("  " + " ".join(f"--set {s}" for s in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
