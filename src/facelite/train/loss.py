"""The RetinaFace multi-task loss with hard negative mining."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    box: float = 2.0
    cls: float = 1.0
    landmarks: float = 1.0
    neg_pos_ratio: int = 3
    landmark_loss: str = "smooth_l1"  # or "wing" (:func:`wing_loss`)
    wing_width: float = 1.0
    wing_curvature: float = 0.5

    def __post_init__(self) -> None:
        if self.landmark_loss not in ("smooth_l1", "wing"):
            raise ValueError(f"landmark_loss must be 'smooth_l1' or 'wing', got {self.landmark_loss!r}")
        if self.landmark_loss == "wing":
            _check_wing(self.wing_width, self.wing_curvature)


def _check_wing(width: float, curvature: float) -> None:
    if not (width > 0 and curvature > 0):
        raise ValueError(f"wing loss needs width > 0 and curvature > 0, got {width}, {curvature}")


def wing_loss(pred: torch.Tensor, target: torch.Tensor, width: float = 1.0, curvature: float = 0.5) -> torch.Tensor:
    """Wing loss (Feng et al., CVPR 2018), elementwise: ``width * ln(1 + |x| / curvature)`` for
    ``|x| < width``, else ``|x| - C`` with ``C`` making it continuous at ``width``. Its gradient,
    ``width / (curvature + |x|)`` inside, is largest for small errors, where smooth-L1's vanishes.
    ``x = pred - target`` in the units of the encoded offsets (``width`` = 1: one variance step
    of the anchor size)."""
    _check_wing(width, curvature)
    x = (pred - target).abs()
    c = width - width * math.log1p(width / curvature)
    return torch.where(x < width, width * torch.log1p(x / curvature), x - c)


def multibox_loss(logits: torch.Tensor, box_pred: torch.Tensor, lmk_pred: torch.Tensor,
                  labels: torch.Tensor, box_t: torch.Tensor, lmk_t: torch.Tensor, lmk_mask: torch.Tensor,
                  w: LossWeights | None = None) -> dict[str, torch.Tensor]:
    """Loss for a batch: predictions (B, N, 2 | 4 | 10) against targets from
    :func:`facelite.train.match.encode_targets` (labels (B, N) int64, box_t (B, N, 4),
    lmk_t (B, N, 10), lmk_mask (B, N) bool).

    - classification: cross-entropy over the positives and the hardest negatives
      (``neg_pos_ratio`` per positive, per image), summed and divided by the number of positives;
      anchors labelled -1 (ignore regions) are neither;
    - boxes: smooth-L1 over positives / number of positives;
    - landmarks: smooth-L1 (or ``w.landmark_loss = "wing"``: :func:`wing_loss`) over positives
      that have landmarks / their number.

    ``w`` defaults to ``LossWeights()``. Returns the weighted ``total`` and the unweighted parts
    ``cls``, ``box``, ``landmarks``.
    """
    w = w if w is not None else LossWeights()
    logits, box_pred, lmk_pred = logits.float(), box_pred.float(), lmk_pred.float()
    pos = labels > 0
    num_pos = pos.sum().clamp(min=1).float()
    box_loss = F.smooth_l1_loss(box_pred[pos], box_t[pos], reduction="sum") / num_pos
    num_lmk = lmk_mask.sum().clamp(min=1).float()
    if w.landmark_loss == "wing":  # LossWeights checked its settings
        lmk_sum = wing_loss(lmk_pred[lmk_mask], lmk_t[lmk_mask], w.wing_width, w.wing_curvature).sum()
    else:
        lmk_sum = F.smooth_l1_loss(lmk_pred[lmk_mask], lmk_t[lmk_mask], reduction="sum")
    lmk_loss = lmk_sum / num_lmk

    ignored = labels < 0
    ce = F.cross_entropy(logits.reshape(-1, 2), labels.clamp(min=0).reshape(-1), reduction="none").view_as(labels)
    with torch.no_grad():
        mining = ce.detach().clone()
        mining[pos | ignored] = -1.0  # positives and ignored anchors never count as negatives
        order = mining.argsort(dim=1, descending=True)
        rank = order.argsort(dim=1)
        n_anchors = labels.shape[1]
        num_neg = (w.neg_pos_ratio * pos.sum(dim=1, keepdim=True)).clamp(max=n_anchors - 1)
        num_neg = torch.maximum(num_neg, torch.ones_like(num_neg) * min(w.neg_pos_ratio, n_anchors - 1))
        neg = (rank < num_neg) & ~pos & ~ignored
    cls_loss = ce[pos | neg].sum() / num_pos
    total = w.box * box_loss + w.cls * cls_loss + w.landmarks * lmk_loss
    return {"total": total, "cls": cls_loss.detach(), "box": box_loss.detach(), "landmarks": lmk_loss.detach()}


def distill_loss(logits: torch.Tensor, lmk_pred: torch.Tensor, t_logits: torch.Tensor, t_lmk: torch.Tensor,
                 labels: torch.Tensor, lmk_mask: torch.Tensor, positives: bool = True) -> dict[str, torch.Tensor]:
    """Knowledge distillation from a teacher with the same anchors (all (B, N, 2 | 10)).

    - ``cls``: KL(teacher || student) of the face/background distribution, summed over all anchors
      (``positives=False``: all but the labels' positives) and divided by the number of positives
      (the scale of the classification loss);
    - ``landmarks``: smooth-L1 to the teacher's landmark offsets on positives that have no labelled
      landmarks (most WIDER faces), divided by their number; rows the teacher left NaN (no
      landmarks for that anchor) are skipped.
    """
    logits, lmk_pred = logits.float(), lmk_pred.float()
    t_logits, t_lmk = t_logits.float(), t_lmk.float()
    pos = labels > 0
    num_pos = pos.sum().clamp(min=1).float()
    if positives:
        kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t_logits, -1), log_target=True, reduction="sum")
    else:
        per_anchor = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(t_logits, -1), log_target=True,
                              reduction="none").sum(-1)
        kl = per_anchor[~pos].sum()
    unl = pos & ~lmk_mask & torch.isfinite(t_lmk).all(dim=-1)
    lmk = F.smooth_l1_loss(lmk_pred[unl], t_lmk[unl], reduction="sum") / unl.sum().clamp(min=1).float()
    return {"cls": kl / num_pos, "landmarks": lmk}


class FeatureAdapter(torch.nn.Module):
    """Per-level 1x1 convolutions from the student's SSH outputs to the teacher's channels,
    started as the identity when the channel counts match. Trained with the student, never
    exported (feature distillation only)."""

    def __init__(self, student_channels: int, teacher_channels: int, levels: int) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv2d(student_channels, teacher_channels, 1) for _ in range(levels))
        if student_channels == teacher_channels:
            with torch.no_grad():
                for c in self.convs:
                    c.weight.copy_(torch.eye(teacher_channels)[:, :, None, None])
                    c.bias.zero_()

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f.float()) for conv, f in zip(self.convs, feats)]


def feature_distill_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Feature mimicking: per level, the mean squared difference between the adapted student
    features and the teacher's (both (B, C, H, W)), divided by the mean square of the teacher's
    (so each level counts alike, whatever its scale); the mean over levels."""
    losses = []
    for s, t in zip(student, teacher):
        s, t = s.float(), t.float()
        if s.shape != t.shape:
            raise ValueError(f"student features {tuple(s.shape)} and teacher features {tuple(t.shape)} differ")
        losses.append(F.mse_loss(s, t) / t.pow(2).mean().clamp(min=1e-6))
    return torch.stack(losses).mean()
