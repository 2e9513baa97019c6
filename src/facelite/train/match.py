"""Anchor matching (NumPy, runs in the data-loader workers) and target encoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec import encode_boxes, encode_landmarks
from ..nms import box_iou


def cxcywh_to_xyxy(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2], axis=1)


@dataclass
class MatchResult:
    """Per anchor: index of the matched face (-1 for background) and its IoU with it."""

    matched: np.ndarray  # int64 (N,)
    iou: np.ndarray  # float32 (N,)


def match_anchors(anchors: np.ndarray, boxes: np.ndarray, positive_iou: float = 0.35,
                  min_forced_iou: float = 0.2, anchors_xyxy: np.ndarray | None = None) -> MatchResult:
    """Match anchors (N, 4) cxcywh to face boxes (M, 4) xyxy, both in input pixels.

    An anchor is positive when its best IoU with any face is ``>= positive_iou``. In addition,
    every face is given its best anchor (overriding that anchor's other matches) unless even
    that anchor overlaps it by less than ``min_forced_iou`` (faces too small for any anchor).
    ``anchors_xyxy``: the anchors as corners, if already computed.
    """
    n = len(anchors)
    if len(boxes) == 0:
        return MatchResult(np.full(n, -1, np.int64), np.zeros(n, np.float32))
    iou = box_iou(boxes, cxcywh_to_xyxy(anchors) if anchors_xyxy is None else anchors_xyxy)  # (M, N)
    best_face = iou.argmax(axis=0)
    best_iou = iou[best_face, np.arange(n)]
    best_anchor = iou.argmax(axis=1)
    forced = iou[np.arange(len(boxes)), best_anchor] >= min_forced_iou
    for face in np.flatnonzero(forced):  # few faces: a short loop, later faces win ties like RetinaFace
        best_face[best_anchor[face]] = face
        best_iou[best_anchor[face]] = 2.0
    matched = np.where(best_iou >= positive_iou, best_face, -1).astype(np.int64)
    return MatchResult(matched, np.minimum(best_iou, 1.0).astype(np.float32))


@dataclass
class Targets:
    """Training targets for one image, per anchor (N anchors).

    labels int64 (N,): 1 face, 0 background, -1 ignored (neither: on an ignore region); boxes float32 (N, 4) and landmarks float32 (N, 10):
    encoded deltas (zeros where not positive); landmark_mask bool (N,): positive with landmarks.
    """

    labels: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    landmark_mask: np.ndarray


def encode_targets(anchors: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, has_landmarks: np.ndarray,
                   variances: tuple[float, float], positive_iou: float = 0.35,
                   min_forced_iou: float = 0.2, anchors_xyxy: np.ndarray | None = None,
                   ignore: np.ndarray | None = None) -> Targets:
    """Match and encode: ``boxes`` (M, 4) xyxy, ``landmarks`` (M, 5, 2), ``has_landmarks`` (M,), all
    in input pixels. ``ignore`` bool (M,): rows that are ignore regions, not faces (a teacher's
    confident face without a label): the anchors that would be positive for such a box, by the
    same rule as for faces (IoU >= ``positive_iou``, or its best anchor), get label -1 unless a
    labelled face claims them; the classification loss skips them."""
    n = len(anchors)
    regions = np.zeros((0, 4), np.float32)
    if ignore is not None and np.any(ignore):
        ignore = np.asarray(ignore, bool)
        regions = boxes[ignore]
        boxes, landmarks, has_landmarks = boxes[~ignore], landmarks[~ignore], has_landmarks[~ignore]
    m = match_anchors(anchors, boxes, positive_iou, min_forced_iou, anchors_xyxy)
    pos = m.matched >= 0
    labels = pos.astype(np.int64)
    if len(regions):
        hit = match_anchors(anchors, regions, positive_iou, min_forced_iou, anchors_xyxy).matched >= 0
        labels[hit & ~pos] = -1
    box_t = np.zeros((n, 4), np.float32)
    lmk_t = np.zeros((n, 2 * landmarks.shape[1] if len(landmarks) else 10), np.float32)
    lmk_mask = np.zeros(n, bool)
    if pos.any():
        idx = m.matched[pos]
        box_t[pos] = encode_boxes(boxes[idx], anchors[pos], variances)
        lmk_t[pos] = encode_landmarks(landmarks[idx], anchors[pos], variances)
        lmk_mask[pos] = has_landmarks[idx]
    return Targets(labels, box_t, lmk_t, lmk_mask)
