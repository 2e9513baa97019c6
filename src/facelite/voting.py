"""Voting: a face's landmarks (and box) averaged over the candidates NMS merged into it.

Around a face, several anchors of one or two pyramid levels score above the threshold; NMS keeps
the highest-scoring box and drops the others, and with them their estimates. Their errors are
partly independent (different anchors, different levels), so the score-weighted mean over the
merged candidates is closer to the truth than the kept candidate's alone. On the held-out
landmark crops (``facelite eval landmarks``) landmark voting lowers the NME of both shipped
models by 0.3-0.5 point at input 320; box voting raises their WIDER FACE dev AP by up to 0.8
point (docs/TRAINING.md). Scores are never changed.
"""

from __future__ import annotations

import numpy as np

from .nms import box_iou, overlapping_pairs

__all__ = ["vote"]

DENSE_PAIRS = 4096
"""Up to this many (candidate, kept face) pairs, all of them get an IoU (no pairing step)."""

CHUNK = 2048
"""Candidates per block when every pair gets an IoU: bounds the (candidates x kept) matrix."""


def _dense_pairs(boxes: np.ndarray, kept: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (candidate, kept face, IoU) with IoU > ``iou_threshold``, from the full IoU matrix (in
    blocks of :data:`CHUNK` candidates): for few candidates, and where NMS's pairing does not apply."""
    cands, faces, ious = [], [], []
    for start in range(0, len(boxes), CHUNK):
        iou = box_iou(boxes[start : start + CHUNK], kept)
        cand, face = np.nonzero(iou > iou_threshold)
        cands.append(cand + start)
        faces.append(face)
        ious.append(iou[cand, face])
    return np.concatenate(cands), np.concatenate(faces), np.concatenate(ious)


def _with_iou(boxes: np.ndarray, kept: np.ndarray, cand: np.ndarray, face: np.ndarray,
              iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (candidate, kept face) among those given with IoU > ``iou_threshold``, and their IoU."""
    a, b = boxes[cand], kept[face]
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = _area(a) + _area(b) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
    above = iou > iou_threshold
    return cand[above], face[above], iou[above]


def _pairs_above(boxes: np.ndarray, keep: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (candidate, kept face, IoU) with IoU > ``iou_threshold`` (a kept candidate with itself
    included): from the overlapping pairs NMS's pairing finds among the candidates, those with one
    kept end (tens per candidate in a crowd, not one per kept face)."""
    kept = boxes[keep]
    pairs = None if len(boxes) * len(keep) <= DENSE_PAIRS else overlapping_pairs(boxes, iou_threshold)
    if pairs is None:
        return _dense_pairs(boxes, kept, iou_threshold)
    i, j = pairs
    face_of = np.full(len(boxes), -1, np.int64)
    face_of[keep] = np.arange(len(keep))
    fi, fj = face_of[i], face_of[j]
    cand = np.concatenate([j[fi >= 0], i[fj >= 0], keep])
    face = np.concatenate([fi[fi >= 0], fj[fj >= 0], np.arange(len(keep))])
    return _with_iou(boxes, kept, cand, face, iou_threshold)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def vote(
    boxes: np.ndarray,
    scores: np.ndarray,
    values: np.ndarray,
    keep: np.ndarray,
    iou_threshold: float,
) -> np.ndarray:
    """Per kept face, the score-weighted mean of ``values`` over its voters.

    A candidate votes for the kept box it overlaps most, when that IoU is above ``iou_threshold``
    (the rule by which NMS suppresses: pass the NMS threshold); a kept candidate overlaps itself
    with IoU 1, so it always votes for its own face unless ``iou_threshold >= 1``. A face whose
    voters' scores sum to 0 keeps its own values.

    Args:
        boxes: (M, 4) xyxy boxes of all candidates that entered NMS, in any pixel frame.
        scores: (M,) their scores (>= 0): the weights.
        values: (M, ...) what is averaged: their landmarks (M, P, 2), their boxes (M, 4), ...,
            in the frame of ``boxes`` when they are coordinates.
        keep: (K,) int indices into the candidates of the faces NMS kept.
        iou_threshold: the NMS IoU threshold, in [0, 1].

    Returns:
        float32 (K, ...): the kept faces' voted values.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    values = np.asarray(values, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    m, k = len(boxes), len(keep)
    if values.ndim < 1 or len(values) != m or len(scores) != m:
        raise ValueError(f"boxes (M, 4), scores (M,) and values (M, ...) must agree: got {boxes.shape}, "
                         f"{scores.shape}, {values.shape}")
    own = values[keep]
    if k == 0 or m == k:
        return own.copy()  # nothing was merged into any face
    cand, face, iou = _pairs_above(boxes, keep, iou_threshold)
    # each candidate votes once: for the face it overlaps most (the first such face on a tie)
    order = np.lexsort((face, -iou, cand))
    cand, face = cand[order], face[order]
    first = np.ones(len(cand), bool)
    first[1:] = cand[1:] != cand[:-1]
    cand, face = cand[first], face[first]
    w = scores[cand]
    weights = np.bincount(face, weights=w, minlength=k)
    flat = values.reshape(m, -1)[cand].astype(np.float64)
    sums = np.stack([np.bincount(face, weights=w * flat[:, c], minlength=k) for c in range(flat.shape[1])], axis=1)
    voted = weights > 0
    out = own.reshape(k, -1).astype(np.float64)
    out[voted] = sums[voted] / weights[voted, None]
    return out.reshape(own.shape).astype(np.float32)
