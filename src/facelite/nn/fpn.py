"""Feature pyramid network (RetinaFace's variant: 1x1 laterals, nearest upsampling, 3x3 merges)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int, leaky: float = 0.0, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, 1, (kernel - 1) // 2, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.LeakyReLU(leaky, inplace=True) if leaky > 0 else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FPN(nn.Module):
    """Maps backbone features [C3, C4, C5] to [P3, P4, P5], each with ``out_channels``."""

    def __init__(self, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.laterals = nn.ModuleList(conv_bn(c, out_channels, 1, leaky) for c in in_channels)
        self.merges = nn.ModuleList(conv_bn(out_channels, out_channels, 3, leaky) for _ in in_channels[:-1])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [m(f) for m, f in zip(self.laterals, feats)]
        outs = [lat[-1]]
        for i in range(len(lat) - 2, -1, -1):
            up = F.interpolate(outs[0], size=lat[i].shape[-2:], mode="nearest")
            outs.insert(0, self.merges[i](lat[i] + up))
        return outs
