"""Precomputed teacher detections, and the ignore regions made from them.

Labels that are not exhaustive (the masked-face set; tiny WIDER faces) leave faces unlabelled,
and training would teach them as background. Where a strong teacher (SCRFD-2.5GF) is sure of a
face that no label covers, the face becomes an *ignore region*: the anchors it would match get
label -1 (:func:`facelite.train.match.encode_targets`) and the classification loss skips them.

The teacher runs once per image, at the image's own resolution (padded to a multiple of 32), and
its detections (score >= :data:`CACHE_MIN_SCORE`, after NMS 0.4) are kept under
``<cache>/teacher/<teacher>-<sha256 of its ONNX file, 12 hex>/<sha256 of the image file>.npz``
(boxes (K, 4) xyxy and landmarks (K, 5, 2) float32 in pixels of the stored image, scores (K,)),
so a threshold can change without a rerun and a changed image or teacher file is never confused
with the old one. Pure NumPy + ONNX Runtime.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..annotations import Sample
from ..fileio import write_atomic
from ..models import file_sha256
from ..nms import box_iou
from ..paths import cache_dir
from ..progress import Progress

log = logging.getLogger(__name__)

CACHE_MIN_SCORE = 0.2


def teacher_cache_dir(teacher: str) -> Path:
    from .teachers import teacher_checksum

    return cache_dir() / "teacher" / f"{teacher}-{teacher_checksum(teacher)[:12]}"


@dataclass
class TeacherRun:
    """Per sample: the teacher's detections (boxes (K, 4), scores (K,), landmarks (K, 5, 2)) and
    how many were computed now (the rest came from the cache) in how many seconds."""

    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    computed: int
    seconds: float


def teacher_detections(samples: list[Sample], teacher: str = "scrfd", threads: int = 1,
                       show_progress: bool = True) -> TeacherRun:
    """The teacher's detections on every sample's image, from the cache or computed (and cached)."""
    from ..imageio import load_image
    from .teachers import make_teacher

    folder = teacher_cache_dir(teacher)
    folder.mkdir(parents=True, exist_ok=True)
    model = None
    out, computed, seconds = [], 0, 0.0
    with Progress(total=len(samples), desc=f"{teacher} boxes", unit="img", enabled=show_progress) as bar:
        for s in samples:
            file = folder / f"{file_sha256(s.path)}.npz"
            if file.is_file():
                with np.load(file, allow_pickle=False) as z:
                    out.append((z["boxes"], z["scores"], z["landmarks"]))
            else:
                if model is None:
                    model = make_teacher(teacher, threads)
                t = time.perf_counter()
                boxes, scores, lmks = model(load_image(s.path), score_threshold=CACHE_MIN_SCORE)
                seconds += time.perf_counter() - t
                computed += 1
                buf = io.BytesIO()
                np.savez(buf, boxes=boxes.astype(np.float32), scores=scores.astype(np.float32),
                         landmarks=lmks.astype(np.float32))
                write_atomic(file, buf.getvalue())
                out.append((boxes, scores, lmks))
            bar.update(1)
    return TeacherRun(out, computed, seconds)


def unlabelled_faces(labelled: np.ndarray, boxes: np.ndarray, scores: np.ndarray, min_score: float = 0.5,
                     max_iou: float = 0.3) -> np.ndarray:
    """Indices of the teacher's boxes (K, 4) with score >= ``min_score`` whose IoU with every
    labelled box (M, 4) is below ``max_iou`` (all xyxy, the same image's pixels)."""
    sure = np.flatnonzero(scores >= min_score)
    if len(sure) == 0 or len(labelled) == 0:
        return sure
    iou = box_iou(boxes[sure].astype(np.float32), labelled.astype(np.float32))  # (K', M)
    return sure[iou.max(axis=1) < max_iou]


def with_ignore_regions(sample: Sample, regions: np.ndarray) -> Sample:
    """``sample`` plus ``regions`` (R, 4) xyxy as ignore rows (no landmarks)."""
    if len(regions) == 0:
        return sample
    n = len(regions)
    return Sample(sample.path, np.concatenate([sample.boxes, regions.astype(np.float32)]),
                  np.concatenate([sample.landmarks, np.zeros((n, 5, 2), np.float32)]),
                  np.concatenate([sample.has_landmarks, np.zeros(n, bool)]),
                  np.concatenate([sample.ignore, np.ones(n, bool)]))


def add_teacher_ignore(samples: list[Sample], detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       min_score: float = 0.5, max_iou: float = 0.3) -> tuple[list[Sample], dict[str, int]]:
    """Samples with the teacher's sure, unlabelled faces added as ignore regions, and counts
    (images, labelled faces, teacher faces >= ``min_score``, ignore regions, images with any)."""
    out = []
    stats = {"images": len(samples), "faces": 0, "teacher_sure": 0, "ignore_regions": 0, "images_with_ignore": 0}
    for s, (boxes, scores, _) in zip(samples, detections, strict=True):
        faces = s.boxes[~s.ignore]
        idx = unlabelled_faces(faces, boxes, scores, min_score, max_iou)
        out.append(with_ignore_regions(s, boxes[idx]))
        stats["faces"] += len(faces)
        stats["teacher_sure"] += int((scores >= min_score).sum())
        stats["ignore_regions"] += len(idx)
        stats["images_with_ignore"] += int(len(idx) > 0)
    return out, stats


class LiveIgnoreTeacher:
    """The teacher run on each augmented training crop (the alternative to precomputed boxes):
    ``(crop BGR uint8 (S, S, 3), labelled boxes (M, 4) xyxy in crop pixels) -> ignore regions (R, 4)``.
    The ONNX session opens on first use, so the object can go to data-loader workers."""

    def __init__(self, teacher: str = "scrfd", min_score: float = 0.5, max_iou: float = 0.3) -> None:
        self.teacher, self.min_score, self.max_iou = teacher, min_score, max_iou
        self._model = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def __call__(self, image: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        if self._model is None:
            from .teachers import make_teacher

            self._model = make_teacher(self.teacher, 1)
        boxes, scores, _ = self._model(image, score_threshold=self.min_score)
        return boxes[unlabelled_faces(labelled, boxes, scores, self.min_score, self.max_iou)]
