"""MobileNetV2 with a width multiplier, returning the stride 8, 16 and 32 feature maps.

Parameter names follow torchvision's ``mobilenet_v2().features`` layout so that the
ImageNet state dicts in ``../shared/weights/imagenet/`` load directly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..spec import BACKBONE_TAPS

# (expansion t, output channels c, repeats n, first stride s), MobileNetV2 paper table 2.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Index into ``features`` after which each output level is taken (exclusive end).
STAGE_ENDS = (7, 14, 18)  # stride 8 (after the 32-ch blocks), 16 (96-ch), 32 (320-ch)
# backbone_taps = "expansion": the block whose 1x1 expansion layer (before its depthwise conv, so at
# the level's resolution) is read with each level's output: the first block of the next stage for
# strides 8 and 16 (SSDLite's taps), the stage's own last block for stride 32.
EXPANSION_BLOCKS = (7, 14, 17)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor``, never more than 10 % below ``value`` (MobileNetV2)."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class ExpansionTap(nn.Sequential):
    """An inverted residual's layers that also return the first one's output (its 1x1 expansion).

    A subclass, not a split of the ``nn.Sequential``: parameter names and exported node scopes
    stay those of the untapped block."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        expanded = self[0](x)
        out = expanded
        for layer in list(self)[1:]:
            out = layer(out)
        return out, expanded


class InvertedResidual(nn.Module):
    """``tap``: ``forward`` returns (output, expansion layer output) instead of the output."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, tap: bool = False) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        if tap and (expand == 1 or self.use_res):
            raise ValueError("an expansion tap needs a block with an expansion layer and no residual")
        self.tap = tap
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNReLU(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = ExpansionTap(*layers) if tap else nn.Sequential(*layers)
        self.out_channels = cout
        self.hidden_channels = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.tap:
            return self.conv(x)
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Backbone(nn.Module):
    """``forward(x)`` with x (B, 3, H, W) returns the feature maps at strides 8, 16, 32.

    ``taps="blocks"``: each map is the output of the stage's last block. ``taps="expansion"``:
    each is that output with the expansion layer of :data:`EXPANSION_BLOCKS` concatenated after
    it on the channel axis (block output channels first), at no extra backbone cost.
    """

    def __init__(self, alpha: float = 1.0, taps: str = "blocks") -> None:
        super().__init__()
        if not 0.0 < alpha <= 1.5:
            raise ValueError(f"alpha must be in (0, 1.5], got {alpha}")
        if taps not in BACKBONE_TAPS:
            raise ValueError(f"taps must be one of {list(BACKBONE_TAPS)}, got {taps!r}")
        cin = make_divisible(32 * alpha)
        layers: list[nn.Module] = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = make_divisible(c * alpha)
            for i in range(n):
                tap = taps == "expansion" and len(layers) in EXPANSION_BLOCKS
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, tap))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = [self.features[e - 1].out_channels for e in STAGE_ENDS]
        if taps == "expansion":
            self.out_channels = [c + self.features[b].hidden_channels
                                 for c, b in zip(self.out_channels, EXPANSION_BLOCKS)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs: list[torch.Tensor] = []
        expanded: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            if getattr(layer, "tap", False):
                x, e = layer(x)
                expanded.append(e)
            else:
                x = layer(x)
            if i + 1 in STAGE_ENDS:
                outs.append(x)
        if expanded:  # taps == "expansion": one expansion layer per level, in level order
            outs = [torch.cat([o, e], dim=1) for o, e in zip(outs, expanded)]
        return outs

    def load_imagenet(self, path: str | Path) -> int:
        """Load ImageNet weights (torchvision key layout, ``features.*``); returns the tensor count.

        Raises ``ValueError`` on any shape mismatch or missing backbone tensor. Keys the
        backbone does not use (the classifier, the final 1x1 conv ``features.18``) are ignored.
        """
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
        own = self.state_dict()
        wanted = {"features." + k: v for k, v in self.features.state_dict().items()}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(f"{path}: {len(missing)} backbone tensors missing, e.g. {missing[:3]}")
        bad = [
            f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
            for k, v in wanted.items()
            if tuple(state[k].shape) != tuple(v.shape)
        ]
        if bad:
            raise ValueError(f"{path}: shape mismatch for width {self._alpha_hint()}: " + "; ".join(bad[:5]))
        own.update({k: state[k] for k in wanted})
        self.load_state_dict(own)
        return len(wanted)

    def _alpha_hint(self) -> str:
        return f"first conv has {self.features[0][0].out_channels} channels"
