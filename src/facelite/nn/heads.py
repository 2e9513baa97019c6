"""Per-level 1x1 prediction heads: class logits (2), box deltas (4) and landmark deltas (10) per anchor."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """Output (B, H*W*A, k) with rows in the order row, column, anchor (matching the anchors)."""

    def __init__(self, channels: int, anchors: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(channels, anchors * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.k)
