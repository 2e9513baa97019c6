"""Start a network with wider FPN inputs from a trained one, computing the same function.

A model with ``backbone_taps = "expansion"`` differs from its ``"blocks"`` twin only in the
input channels of the FPN's 1x1 laterals: the block output comes first, the expansion layer
after it. :func:`load_widened` copies every tensor of the narrower state dict and gives the new
input channels zero weights, so the wider network's outputs equal the narrower one's until
training moves those weights.
"""

from __future__ import annotations

import torch
from torch import nn


def load_widened(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Load ``state`` (a narrower twin's state dict) into ``model``; returns the count of widened tensors.

    Raises:
        ValueError: a missing or unexpected key, or a shape that differs other than by more input
            channels (dimension 1) of a convolution weight.
    """
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"not the same network: missing {missing[:3]}, unexpected {unexpected[:3]}")
    merged: dict[str, torch.Tensor] = {}
    widened = 0
    for key, target in own.items():
        src = state[key]
        if src.shape == target.shape:
            merged[key] = src
            continue
        if src.dim() != 4 or src.shape[0] != target.shape[0] or src.shape[2:] != target.shape[2:] \
                or src.shape[1] > target.shape[1]:
            raise ValueError(f"{key}: shape {tuple(src.shape)} cannot widen to {tuple(target.shape)}")
        wide = torch.zeros_like(target)
        wide[:, : src.shape[1]] = src
        merged[key] = wide
        widened += 1
    model.load_state_dict(merged)
    return widened
