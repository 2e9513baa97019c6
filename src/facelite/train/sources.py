"""Training sources beyond the WIDER train split, and the fixed validation part of the masked-face set.

The masked-face set (``<shared>/data/facemask``: WIDER-format boxes, one mask class per face in
``mask_labels.tsv``) is split ONCE, here, by a hash of the file name: about
:data:`FACEMASK_VAL_FRACTION` of its images are a validation part that training never reads
(:func:`holdout_names`), stratified by the image's rarest mask class (``mask_incorrect`` before
``without_mask`` before ``with_mask``; images without faces form their own stratum). Within a
stratum the images are ordered by the SHA-256 of ``"facelite-val:" + file name`` and the first
``round(fraction * n)`` are validation. Nothing of the data is copied into git: the label files
of the two parts are written on demand (:func:`write_facemask_split`)::

    python -m facelite.train.sources facemask-split --out ~/.cache/facelite/facemask
    facelite eval labels ~/.cache/facelite/facemask/val.txt --images $FACELITE_SHARED/data/facemask/images

Pure Python + NumPy (no torch): the evaluation side uses it too.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations import Sample, read_labels, read_wider_txt

log = logging.getLogger(__name__)

FACEMASK_DIR = "data/facemask"
FACEMASK_GT = "data/facemask/facemask_bbx_gt.txt"
FACEMASK_IMAGES = "data/facemask/images"
FACEMASK_CLASSES = "mask_labels.tsv"
FACEMASK_VAL_FRACTION = 0.2
MASK_CLASSES = ("mask_incorrect", "without_mask", "with_mask")  # rarest first: an image's stratum
MASKED = ("with_mask", "mask_incorrect")
SPLIT_SALT = "facelite-val:"


def split_key(name: str) -> str:
    """The hex SHA-256 that orders ``name`` (a file name, no folders) within its stratum."""
    return hashlib.sha256((SPLIT_SALT + Path(name).name).encode("utf-8")).hexdigest()


def holdout_names(strata: Mapping[str, str], fraction: float = FACEMASK_VAL_FRACTION) -> set[str]:
    """The validation part of the images ``strata`` (file name -> stratum): in each stratum the
    ``round(fraction * n)`` names with the smallest :func:`split_key`. Depends only on the names
    and their strata (not on their order)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    by_stratum: dict[str, list[str]] = {}
    for name, stratum in strata.items():
        by_stratum.setdefault(stratum, []).append(name)
    out: set[str] = set()
    for names in by_stratum.values():
        names.sort(key=split_key)
        out.update(names[: int(math.floor(fraction * len(names) + 0.5))])
    return out


def read_mask_classes(path: str | Path) -> dict[str, list[str]]:
    """``mask_labels.tsv`` (header ``name face class``) -> file name -> class per face, in the
    order of the faces in the gt file."""
    table: dict[str, dict[int, str]] = {}
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[2] not in MASK_CLASSES:
            raise ValueError(f"{path}:{lineno}: expected 'name<TAB>face<TAB>class', got {line!r}")
        table.setdefault(parts[0], {})[int(parts[1])] = parts[2]
    return {name: [faces[i] for i in sorted(faces)] for name, faces in table.items()}


def image_strata(names: Iterable[str], classes: Mapping[str, list[str]]) -> dict[str, str]:
    """File name -> stratum: the rarest mask class among the image's faces (``"none"`` without faces)."""
    out = {}
    for name in names:
        present = set(classes.get(Path(name).name, []))
        out[Path(name).name] = next((c for c in MASK_CLASSES if c in present), "none")
    return out


def facemask_holdout(gt_file: str | Path, fraction: float = FACEMASK_VAL_FRACTION) -> set[str]:
    """File names of the masked-face validation part, for the gt file ``gt_file`` (its
    ``mask_labels.tsv`` beside it gives the strata; without one, a single stratum)."""
    gt_file = Path(gt_file)
    names = [s.path.name for s in read_wider_txt(gt_file, gt_file.parent / "images")]
    tsv = gt_file.parent / FACEMASK_CLASSES
    classes = read_mask_classes(tsv) if tsv.is_file() else {}
    return holdout_names(image_strata(names, classes), fraction)


def split_samples(samples: list[Sample], holdout: set[str], part: str) -> list[Sample]:
    """``part="train"``: the samples whose file name is not in ``holdout``; ``"val"``: those that are."""
    if part not in ("train", "val"):
        raise ValueError(f"part must be 'train' or 'val', got {part!r}")
    return [s for s in samples if (Path(s.path).name in holdout) == (part == "val")]


def _wider_record(name: str, boxes, ignore=None) -> list[str]:
    rows = []
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        flag = int(bool(ignore[k])) if ignore is not None else 0
        rows.append(f"{x1:g} {y1:g} {x2 - x1:g} {y2 - y1:g} 0 0 0 {flag} 0 0")
    return [name, str(len(rows)), *(rows or ["0 0 0 0 0 0 0 0 0 0"])]


def write_facemask_split(out_dir: str | Path, gt_file: str | Path | None = None,
                         fraction: float = FACEMASK_VAL_FRACTION) -> dict[str, int]:
    """Write the masked-face split as WIDER-format files under ``out_dir`` (image paths relative
    to the set's ``images/``, boxes as in the source, pixels of the stored images):

    - ``train.txt`` / ``val.txt``: every face of each part;
    - ``val-masked.txt``: the validation images with the faces without a mask marked ``invalid``
      (``facelite eval labels`` ignores them: AP on masked faces only);
    - ``val-unmasked.txt``: the converse.

    Returns counts (images and faces per part)."""
    from ..paths import shared_dir

    gt_file = Path(gt_file) if gt_file else shared_dir() / FACEMASK_GT
    samples = read_wider_txt(gt_file, gt_file.parent / "images")
    classes = read_mask_classes(gt_file.parent / FACEMASK_CLASSES)
    holdout = holdout_names(image_strata([s.path.name for s in samples], classes), fraction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    files: dict[str, list[str]] = {"train": [], "val": [], "val-masked": [], "val-unmasked": []}
    for s in samples:
        name = s.path.name
        cls = classes.get(name, [])
        if len(cls) != len(s.boxes):
            raise ValueError(f"{name}: {len(s.boxes)} boxes but {len(cls)} mask classes")
        part = "val" if name in holdout else "train"
        files[part] += _wider_record(name, s.boxes)
        counts[f"{part}_images"] = counts.get(f"{part}_images", 0) + 1
        counts[f"{part}_faces"] = counts.get(f"{part}_faces", 0) + len(s.boxes)
        if part == "val":
            masked = [c in MASKED for c in cls]
            files["val-masked"] += _wider_record(name, s.boxes, [not m for m in masked])
            files["val-unmasked"] += _wider_record(name, s.boxes, masked)
            counts["val_masked_faces"] = counts.get("val_masked_faces", 0) + sum(masked)
    for stem, lines in files.items():
        (out_dir / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return counts


EXTRA_SET_KEYS = {"labels", "images", "weight", "exhaustive", "holdout", "ignore_regions", "name"}
HOLDOUTS = ("facemask",)


@dataclass
class Source:
    """One training set: its samples (faces only; ignore rows are added later, see
    :func:`facelite.train.teacher_cache.add_teacher_ignore`), its sampling weight (draws per
    image per epoch) and whether its labels are exhaustive."""

    name: str
    samples: list[Sample]
    weight: float = 1.0
    exhaustive: bool = True


def read_source(labels: Path, images: Path, *, name: str = "", weight: float = 1.0, exhaustive: bool = True,
                holdout: str = "", ignore_regions: bool = False) -> Source:
    """A training set from a label file (any :func:`facelite.annotations.read_labels` format; faces
    marked invalid / crowd dropped, or with ``ignore_regions`` kept as ignore regions -- how a data
    pack carries the teacher's regions) and its image folder. ``holdout="facemask"`` leaves out the
    masked-face validation part (:func:`facemask_holdout` of the shared gt file); reading the
    shared masked-face images without it is an error (it would train on the validation images)."""
    from ..paths import shared_dir

    if weight < 0:
        raise ValueError(f"{labels}: weight must be >= 0, got {weight}")
    if holdout not in ("", *HOLDOUTS):
        raise ValueError(f"{labels}: holdout must be one of {HOLDOUTS} or empty, got {holdout!r}")
    samples = read_labels(labels, images)
    if not ignore_regions:
        samples = [s.without_ignored() for s in samples]
    facemask_images = (shared_dir() / FACEMASK_IMAGES).resolve()
    if holdout == "facemask":
        held = facemask_holdout(shared_dir() / FACEMASK_GT)
        before = len(samples)
        samples = split_samples(samples, held, "train")
        log.info("%s: left out %d of %d images (the masked-face validation part)", labels, before - len(samples),
                 before)
    elif any(Path(s.path).resolve().parent == facemask_images for s in samples):
        raise ValueError(f"{labels} reads the masked-face images: set holdout = \"facemask\" "
                         "(their validation part must not be trained on)")
    return Source(name or Path(labels).stem, samples, float(weight), bool(exhaustive))


def extra_source(entry: Mapping[str, Any], resolve) -> Source:
    """One ``data.extra_sets`` table (keys :data:`EXTRA_SET_KEYS`); ``resolve`` maps config paths."""
    unknown = set(entry) - EXTRA_SET_KEYS
    if unknown or "labels" not in entry or "images" not in entry:
        raise ValueError(f"data.extra_sets entry {dict(entry)}: needs labels and images; known keys "
                         f"{sorted(EXTRA_SET_KEYS)}{f', unknown {sorted(unknown)}' if unknown else ''}")
    return read_source(resolve(str(entry["labels"])), resolve(str(entry["images"])),
                       weight=float(entry.get("weight", 1.0)), exhaustive=bool(entry.get("exhaustive", True)),
                       holdout=str(entry.get("holdout", "")), ignore_regions=bool(entry.get("ignore_regions", False)),
                       name=str(entry.get("name", "")))


class SourceSampler:
    """Yields ``(epoch, index)`` into the concatenation of sets of sizes ``sizes``: per epoch each
    set contributes ``weight`` draws per image -- ``floor(weight)`` passes over all its images plus
    ``round(frac(weight) * n)`` of them without repetition --, shuffled together. The order
    depends only on ``(seed, epoch)``; the length is the same every epoch."""

    def __init__(self, sizes: list[int], weights: list[float], seed: int) -> None:
        if len(sizes) != len(weights) or any(w < 0 for w in weights):
            raise ValueError(f"sizes {sizes} and weights {weights}: one weight >= 0 per set")
        self.sizes, self.weights, self.seed, self.epoch = list(sizes), list(weights), seed, 0
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def counts(self) -> list[int]:
        """Draws per set per epoch."""
        return [int(math.floor(w)) * n + int(math.floor((w - math.floor(w)) * n + 0.5))
                for n, w in zip(self.sizes, self.weights)]

    def __len__(self) -> int:
        return sum(self.counts())

    def indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, epoch, 7919))
        parts = []
        for k, (n, w) in enumerate(zip(self.sizes, self.weights)):
            whole = int(math.floor(w))
            rest = self.counts()[k] - whole * n
            idx = [np.arange(n)] * whole + [rng.permutation(n)[:rest]]
            parts.append(np.concatenate(idx).astype(np.int64) + self.offsets[k])
        out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return out[rng.permutation(len(out))]

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        """``(epoch, index)`` for an image's first draw in the epoch, ``(epoch, index, k)`` for its
        k-th repeat (a set of weight > 1), so that each repeat is augmented differently."""
        epoch = self.epoch
        seen: dict[int, int] = {}
        for i in self.indices(epoch).tolist():
            k = seen.get(i, 0)
            seen[i] = k + 1
            yield (epoch, i) if k == 0 else (epoch, i, k)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facelite.train.sources", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["facemask-split"])
    p.add_argument("--out", type=Path, default=None, help="folder (default: ~/.cache/facelite/facemask)")
    p.add_argument("--gt", type=Path, default=None, help="facemask_bbx_gt.txt (default: the shared folder's)")
    args = p.parse_args(argv)
    from ..paths import cache_dir, shared_dir

    out = args.out or cache_dir() / "facemask"
    counts = write_facemask_split(out, args.gt)
    images = (args.gt.parent if args.gt else shared_dir() / FACEMASK_DIR) / "images"
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" -> {out} (images: {images})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
