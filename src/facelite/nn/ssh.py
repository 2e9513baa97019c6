"""SSH context module: parallel 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches, concatenated."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fpn import conv_bn


class SSH(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels % 4 != 0:
            raise ValueError(f"SSH needs channels divisible by 4, got {channels}")
        leaky = 0.1 if channels <= 64 else 0.0
        self.conv3 = conv_bn(channels, channels // 2, 3, act=False)
        self.conv5_1 = conv_bn(channels, channels // 4, 3, leaky)
        self.conv5_2 = conv_bn(channels // 4, channels // 4, 3, act=False)
        self.conv7_2 = conv_bn(channels // 4, channels // 4, 3, leaky)
        self.conv7_3 = conv_bn(channels // 4, channels // 4, 3, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3(x)
        c5_1 = self.conv5_1(x)
        c5 = self.conv5_2(c5_1)
        c7 = self.conv7_3(self.conv7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))
