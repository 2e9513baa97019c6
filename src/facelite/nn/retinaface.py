"""The detector: MobileNetV2 -> FPN -> SSH per level -> class/box/landmark heads."""

from __future__ import annotations

import torch
from torch import nn

from ..spec import ModelSpec, default_spec
from .fpn import FPN
from .heads import Head
from .mobilenetv2 import MobileNetV2Backbone
from .ssh import SSH


class RetinaFace(nn.Module):
    """``forward(x)`` with x float (B, 3, H, W), normalised per ``spec``, returns

    - ``logits`` (B, N, 2): background/face class logits,
    - ``boxes`` (B, N, 4): encoded box deltas,
    - ``landmarks`` (B, N, 10): encoded landmark deltas (x, y per point),

    where N is :func:`facelite.anchors.num_anchors` for (H, W), in anchor order.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = MobileNetV2Backbone(spec.alpha, spec.backbone_taps)
        ch = spec.fpn_channels
        self.fpn = FPN(self.backbone.out_channels, ch)
        levels = len(spec.strides)
        a = spec.anchors_per_location
        self.ssh = nn.ModuleList(SSH(ch) for _ in range(levels))
        self.cls_heads = nn.ModuleList(Head(ch, a, 2) for _ in range(levels))
        self.box_heads = nn.ModuleList(Head(ch, a, 4) for _ in range(levels))
        self.lmk_heads = nn.ModuleList(Head(ch, a, 2 * spec.num_landmarks) for _ in range(levels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.forward_features(x)[:3]

    def forward_features(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """:meth:`forward`'s outputs plus the SSH outputs the heads read, one (B, C, H / s, W / s)
        tensor per stride s (C = ``spec.fpn_channels``), for feature distillation."""
        feats = [ssh(p) for ssh, p in zip(self.ssh, self.fpn(self.backbone(x)))]
        logits = torch.cat([h(f) for h, f in zip(self.cls_heads, feats)], dim=1)
        boxes = torch.cat([h(f) for h, f in zip(self.box_heads, feats)], dim=1)
        lmks = torch.cat([h(f) for h, f in zip(self.lmk_heads, feats)], dim=1)
        return logits, boxes, lmks, feats


class InferenceWrapper(nn.Module):
    """What is exported: face probability instead of logits, float32 outputs.

    Outputs ``scores`` (B, N) in [0, 1], ``boxes`` (B, N, 4), ``landmarks`` (B, N, 10).
    """

    def __init__(self, model: RetinaFace) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, boxes, lmks = self.model(x)
        scores = torch.softmax(logits, dim=-1)[..., 1]
        return scores, boxes, lmks


def build_model(alpha: float = 0.35, spec: ModelSpec | None = None) -> RetinaFace:
    """A RetinaFace for ``spec`` (default: :func:`facelite.spec.default_spec` of ``alpha``)."""
    return RetinaFace(spec or default_spec(alpha))
