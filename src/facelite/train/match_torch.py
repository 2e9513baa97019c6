"""Anchor matching and target encoding in torch, batched over images (padded face rows), on any
device: the twin of :func:`facelite.train.match.encode_targets` (same labels, same deltas).

Conventions: anchors (N, 4) cxcywh and their corners (N, 4) xyxy, faces (B, M, 4) xyxy, landmarks
(B, M, 5, 2) ``(x, y)``, all float32 in network-input pixels; ``valid`` bool (B, M) marks the real
rows of the padding, ``ignore`` bool (B, M) the ignore regions among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_EPS = 1e-6  # as facelite.codec


def batch_iou(boxes: torch.Tensor, anchors_xyxy: torch.Tensor) -> torch.Tensor:
    """IoU of faces (B, M, 4) and anchors (N, 4), both xyxy -> float32 (B, M, N); the same
    float32 operations as :func:`facelite.nms.box_iou`, so the same values."""
    a = boxes[..., None, :]  # (B, M, 1, 4)
    b = anchors_xyxy[None, None]  # (1, 1, N, 4)
    iw = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    ih = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    area_a = (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    area_b = (anchors_xyxy[:, 2] - anchors_xyxy[:, 0]).clamp(min=0) * (anchors_xyxy[:, 3] - anchors_xyxy[:, 1]).clamp(min=0)
    union = area_a[..., None] + area_b[None, None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros((), dtype=inter.dtype, device=inter.device))


def match_batch(anchors_xyxy: torch.Tensor, boxes: torch.Tensor, rows: torch.Tensor, positive_iou: float = 0.35,
                min_forced_iou: float = 0.2) -> torch.Tensor:
    """The matched face index per anchor, int64 (B, N), -1 for background: faces are the rows of
    ``boxes`` (B, M, 4) where ``rows`` (B, M) is True. An anchor is positive at best IoU >=
    ``positive_iou``; every face also takes its best anchor when that IoU is >= ``min_forced_iou``,
    the later face winning an anchor two faces force (as the NumPy loop does)."""
    b, m = rows.shape
    n = anchors_xyxy.shape[0]
    iou = batch_iou(boxes, anchors_xyxy)
    iou = torch.where(rows[..., None], iou, torch.full((), -1.0, device=iou.device))
    best_face = iou.argmax(dim=1)  # (B, N), first on ties like numpy
    best_iou = iou.gather(1, best_face[:, None]).squeeze(1)
    best_anchor = iou.argmax(dim=2)  # (B, M)
    forced = rows & (iou.gather(2, best_anchor[..., None]).squeeze(2) >= min_forced_iou)
    face_idx = torch.arange(m, device=boxes.device).expand(b, m)
    winner = torch.full((b, n), -1, dtype=torch.int64, device=boxes.device)
    winner.scatter_reduce_(1, best_anchor, torch.where(forced, face_idx, -1), reduce="amax", include_self=True)
    hit = winner >= 0
    best_face = torch.where(hit, winner, best_face)
    best_iou = torch.where(hit, torch.full((), 2.0, device=iou.device), best_iou)
    return torch.where(best_iou >= positive_iou, best_face, torch.full((), -1, dtype=torch.int64, device=iou.device))


@dataclass
class BatchTargets:
    """Per image and anchor: labels int64 (B, N) 1 face / 0 background / -1 ignored; boxes float32
    (B, N, 4) and landmarks float32 (B, N, 10) encoded deltas (zeros where not positive);
    landmark_mask bool (B, N): positive with landmarks. What the DataLoader path collates."""

    labels: torch.Tensor
    boxes: torch.Tensor
    landmarks: torch.Tensor
    landmark_mask: torch.Tensor


def encode_batch(anchors: torch.Tensor, anchors_xyxy: torch.Tensor, boxes: torch.Tensor, landmarks: torch.Tensor,
                 has_landmarks: torch.Tensor, valid: torch.Tensor, ignore: torch.Tensor,
                 variances: tuple[float, float], positive_iou: float = 0.35,
                 min_forced_iou: float = 0.2) -> BatchTargets:
    """Match and encode a padded batch (see the module doc for shapes); ignore regions give label
    -1 on the anchors they would make positive unless a face claims them, exactly as
    :func:`facelite.train.match.encode_targets`. ``M`` must be >= 1 (pad with an invalid row)."""
    faces = valid & ~ignore
    matched = match_batch(anchors_xyxy, boxes, faces, positive_iou, min_forced_iou)
    pos = matched >= 0
    labels = pos.long()
    if bool((valid & ignore).any()):
        hit = match_batch(anchors_xyxy, boxes, valid & ignore, positive_iou, min_forced_iou) >= 0
        labels = torch.where(hit & ~pos, torch.full((), -1, dtype=torch.int64, device=labels.device), labels)
    idx = matched.clamp(min=0)
    bsz, n = idx.shape
    fb = boxes.gather(1, idx[..., None].expand(bsz, n, 4))  # (B, N, 4)
    fl = landmarks.reshape(bsz, -1, 10).gather(1, idx[..., None].expand(bsz, n, 10)).reshape(bsz, n, 5, 2)
    a_c, a_s = anchors[None, :, :2], anchors[None, :, 2:]
    centre = (fb[..., :2] + fb[..., 2:]) / 2
    size = (fb[..., 2:] - fb[..., :2]).clamp(min=_EPS)
    box_t = torch.cat([(centre - a_c) / (variances[0] * a_s), torch.log(size / a_s) / variances[1]], dim=-1)
    lmk_t = ((fl - a_c[:, :, None]) / (variances[0] * a_s[:, :, None])).reshape(bsz, n, 10)
    zero = torch.zeros((), dtype=box_t.dtype, device=box_t.device)
    box_t = torch.where(pos[..., None], box_t, zero)
    lmk_t = torch.where(pos[..., None], lmk_t, zero)
    mask = pos & has_landmarks.gather(1, idx)
    return BatchTargets(labels, box_t, lmk_t, mask)


def pad_labels(per_image: list[tuple], device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
    """Pad per-image labels ``(boxes (k, 4), landmarks (k, 5, 2), has_landmarks (k,), ignore (k,))``
    (NumPy float32 / bool) into ``(boxes (B, M, 4), landmarks (B, M, 5, 2), has_landmarks (B, M),
    valid (B, M), ignore (B, M))`` tensors on ``device``, M = max(k, 1); padded rows are zeros."""
    import numpy as np

    bsz, m = len(per_image), max([len(p[0]) for p in per_image] + [1])
    boxes = np.zeros((bsz, m, 4), np.float32)
    lmks = np.zeros((bsz, m, 5, 2), np.float32)
    has = np.zeros((bsz, m), bool)
    valid = np.zeros((bsz, m), bool)
    ign = np.zeros((bsz, m), bool)
    for i, (b, lm, h, ig) in enumerate(per_image):
        k = len(b)
        boxes[i, :k], lmks[i, :k], has[i, :k], valid[i, :k], ign[i, :k] = b, lm, h, True, ig
    return tuple(torch.from_numpy(a).to(device) for a in (boxes, lmks, has, valid, ign))
