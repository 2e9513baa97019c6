"""Pseudo-labels from licence-cleared teachers (RetinaFace-mnet0.25, YuNet).

1. :func:`label_training_images`: 5-point landmarks for ground-truth WIDER boxes. A face gets
   landmarks only when *every* teacher detects it confidently (score >= ``min_score``) with a box
   matching the ground truth (IoU >= ``min_iou``) and the teachers agree (mean landmark distance
   <= ``max_disagreement`` x sqrt(box area)); the landmarks are the teachers' mean, or
   (``landmarks_from="first"``) the first teacher's, the others only checking them.
   :func:`pseudolabel_nme` measures such labels on the held-out 5-point crops.
2. :func:`box_landmark_crops`: a WIDER-style face box for each landmark crop (the crops are not
   tight around the face), taken from the teacher detection whose landmarks agree with the
   crop's labelled landmarks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..annotations import LandmarkCrop, Sample
from ..imageio import load_image
from ..nms import box_iou
from ..progress import Progress

log = logging.getLogger(__name__)

CROP_PAD = 80  # the landmark-evaluation protocol's grey border; teachers see the same padded crops


def _agreed(pts: np.ndarray, has: np.ndarray, scale: np.ndarray, max_disagreement: float,
            landmarks_from: str) -> tuple[np.ndarray, np.ndarray]:
    """Teachers' points (T, N, 5, 2) for N faces, ``has`` (N,) all matched, ``scale`` (N,) sqrt(box
    area) -> (bool (N,) accepted, points (N, 5, 2): the mean or the first teacher's)."""
    if landmarks_from not in ("mean", "first"):
        raise ValueError(f"landmarks_from must be 'mean' or 'first', got {landmarks_from!r}")
    if len(pts) > 1:
        spread = np.linalg.norm(pts - pts.mean(axis=0, keepdims=True), axis=-1).mean(axis=(0, 2))
        has = has & (spread <= max_disagreement * np.maximum(scale, 1e-6))
    value = pts.mean(axis=0) if landmarks_from == "mean" else pts[0]
    return has, np.where(has[:, None, None], value, 0).astype(np.float32)


def label_training_images(samples: list[Sample], teachers: list, min_iou: float = 0.7, min_score: float = 0.8,
                          max_disagreement: float = 0.08, landmarks_from: str = "mean",
                          min_size: float = 0.0) -> tuple[list[Sample], dict[str, int]]:
    """Return copies of ``samples`` with landmarks attached where the teachers agree, and counts.
    Faces under ``min_size`` pixels (sqrt(w * h) of the box) get none."""
    out: list[Sample] = []
    stats = {"images": 0, "faces": 0, "with_landmarks": 0}
    with Progress(total=len(samples), desc="pseudo-labels", unit="img") as bar:
        for s in samples:
            img = load_image(s.path)
            n = len(s.boxes)
            per_teacher = []
            for t in teachers:
                boxes, scores, lmks = t(img, score_threshold=min_score)
                if len(boxes) == 0 or n == 0:
                    per_teacher.append((np.full(n, -1), None))
                    continue
                iou = box_iou(s.boxes, boxes)
                best = iou.argmax(axis=1)
                ok = iou[np.arange(n), best] >= min_iou
                per_teacher.append((np.where(ok, best, -1), lmks))
            has = np.ones(n, bool)
            pts = np.zeros((len(teachers), n, 5, 2), np.float32)
            for k, (idx, lmks) in enumerate(per_teacher):
                has &= idx >= 0
                if lmks is not None:
                    pts[k, idx >= 0] = lmks[idx[idx >= 0]]
            scale = np.sqrt(np.prod(s.boxes[:, 2:] - s.boxes[:, :2], axis=1))
            has, lm = _agreed(pts, has & (scale >= min_size), scale, max_disagreement, landmarks_from)
            out.append(Sample(s.path, s.boxes.copy(), lm, has))
            stats["images"] += 1
            stats["faces"] += n
            stats["with_landmarks"] += int(has.sum())
            bar.update(1)
    log.info("pseudo-labels: %d of %d faces got landmarks (%.1f %%)", stats["with_landmarks"], stats["faces"],
             100.0 * stats["with_landmarks"] / max(stats["faces"], 1))
    return out, stats


def pseudolabel_nme(teachers: list, data_dir: str | Path | None = None, min_iou: float = 0.7,
                    min_score: float = 0.8, max_disagreement: float = 0.08, landmarks_from: str = "mean",
                    limit: int | None = None) -> dict[str, float]:
    """The landmark error of pseudo-labels made as :func:`label_training_images` makes them, on the
    held-out 5-point crops (known-bad crops left out), each padded with :data:`CROP_PAD` grey
    pixels and seen by the teachers at its own resolution. The crops have no face box, so the
    first teacher's detection that overlaps the box the labelled points imply (IoU >= 0.3, as in
    :func:`facelite.evaluation.landmarks.evaluate_landmarks`) plays the ground-truth box: the
    other teachers must match it at IoU >= ``min_iou`` and agree with it.

    Returns ``crops``, ``labelled`` (crops that got pseudo-landmarks), ``coverage``, ``nme`` (mean
    point error / inter-ocular distance of the labels, over the labelled crops), ``median_nme``
    and ``failure_rate`` (share of labelled crops with NME > 10 %); ``per_crop``: name -> NME of
    each labelled crop (to compare teachers on the crops they all label)."""
    from ..evaluation.landmarks import (
        default_data_dir,
        has_known_bad_labels,
        landmark_split,
        nme,
        read_landmarks_file,
        reference_boxes,
    )

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    names, points = read_landmarks_file(root / "landmarks.txt")
    index = {n: i for i, n in enumerate(names)}
    chosen = [n for n in landmark_split(names)[1] if not has_known_bad_labels(n)][:limit]
    errors, labelled = [], []
    with Progress(total=len(chosen), desc="pseudo-label NME", unit="crop") as bar:
        for name in chosen:
            img = load_image(root / name)
            padded = np.full((img.shape[0] + 2 * CROP_PAD, img.shape[1] + 2 * CROP_PAD, 3), 127, np.uint8)
            padded[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD] = img
            gt = points[index[name]] + CROP_PAD
            ref = reference_boxes(gt[None]).astype(np.float32)
            pts = np.zeros((len(teachers), 1, 5, 2), np.float32)
            has = np.ones(1, bool)
            anchor_box = None
            for k, t in enumerate(teachers):
                boxes, _, lmks = t(padded, score_threshold=min_score)
                target = ref if anchor_box is None else anchor_box
                if len(boxes) == 0:
                    has[:] = False
                    break
                iou = box_iou(target, boxes)[0]
                j = int(iou.argmax())
                if iou[j] < (0.3 if anchor_box is None else min_iou):
                    has[:] = False
                    break
                if anchor_box is None:
                    anchor_box = boxes[j:j + 1]
                pts[k, 0] = lmks[j]
            if has[0]:
                scale = np.sqrt(np.prod(anchor_box[:, 2:] - anchor_box[:, :2], axis=1))
                has, lm = _agreed(pts, has, scale, max_disagreement, landmarks_from)
                if has[0]:
                    errors.append(float(nme(lm, gt[None])[0]))
                    labelled.append(name)
            bar.update(1)
    e = np.asarray(errors)
    return {"crops": len(chosen), "labelled": len(e), "coverage": len(e) / max(len(chosen), 1),
            "nme": float(e.mean()) if len(e) else float("nan"),
            "median_nme": float(np.median(e)) if len(e) else float("nan"),
            "failure_rate": float((e > 0.10).mean()) if len(e) else float("nan"),
            "per_crop": dict(zip(labelled, errors))}


def box_landmark_crops(crops: list[LandmarkCrop], teacher, max_nme: float = 0.25) -> np.ndarray:
    """Face boxes (xyxy, crop pixels; NaN where none agrees) for the crops, shape (len(crops), 4)."""
    boxes = np.full((len(crops), 4), np.nan, np.float32)
    with Progress(total=len(crops), desc="crop boxes", unit="crop") as bar:
        for i, c in enumerate(crops):
            img = load_image(c.path)
            padded = np.full((img.shape[0] + 2 * CROP_PAD, img.shape[1] + 2 * CROP_PAD, 3), 127, np.uint8)
            padded[CROP_PAD:-CROP_PAD, CROP_PAD:-CROP_PAD] = img
            b, _, lm = teacher(padded, score_threshold=0.3)
            if len(b):
                iod = max(float(np.linalg.norm(c.landmarks[0] - c.landmarks[1])), 1.0)
                err = np.linalg.norm(lm - CROP_PAD - c.landmarks[None], axis=-1).mean(axis=1) / iod
                j = int(err.argmin())
                if err[j] <= max_nme:
                    boxes[i] = b[j] - CROP_PAD
            bar.update(1)
    log.info("crop boxes: %d of %d crops got a teacher box", int(np.isfinite(boxes[:, 0]).sum()), len(crops))
    return boxes


def save_crop_boxes(path: str | Path, crops: list[LandmarkCrop], boxes: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = np.asarray([c.name for c in crops])
    np.savez(path, names=names, boxes=boxes)


def attach_crop_boxes(crops: list[LandmarkCrop], path: str | Path) -> int:
    """Set ``crop.box`` from a file written by :func:`save_crop_boxes`; returns how many got one."""
    data = np.load(path, allow_pickle=False)
    table = {str(n): b for n, b in zip(data["names"], data["boxes"])}
    count = 0
    for c in crops:
        b = table.get(c.name)
        if b is not None and np.all(np.isfinite(b)):
            c.box = b.astype(np.float32)
            count += 1
    return count
