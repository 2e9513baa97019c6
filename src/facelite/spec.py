"""The model's geometry, defined once.

A :class:`ModelSpec` says everything the run time needs to know about a network
besides its weights: the strides of the feature maps, the anchor sizes per level,
the variances of the box/landmark coding, the input normalisation and channel
order, the width multiplier, and the landmark order. Training builds its anchors
from the same object, and :func:`facelite.export.onnx.export_onnx` writes it into
the ONNX file's metadata (key :data:`METADATA_KEY`) so the run time reads it back
instead of assuming it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

METADATA_KEY = "facelite.spec"
SPEC_FORMAT_VERSION = 1

LANDMARK_NAMES: tuple[str, ...] = (
    "left_eye",
    "right_eye",
    "nose",
    "left_mouth",
    "right_mouth",
)
"""Landmark order. Left/right as seen in the image (the subject's right eye is ``left_eye``)."""

BACKBONE_TAPS: tuple[str, ...] = ("blocks", "expansion")
"""Where the FPN may tap MobileNetV2 (see :attr:`ModelSpec.backbone_taps`)."""

FLIP_PERMUTATION: tuple[int, ...] = (1, 0, 2, 4, 3)
"""Landmark index permutation to apply after a horizontal flip."""

# Input normalisation of the two ImageNet backbones in ../shared/weights/imagenet.
# torchvision MobileNetV2 (alpha 1.0): RGB, (x/255 - mean) / std.
TORCHVISION_MEAN = (123.675, 116.28, 103.53)
TORCHVISION_STD = (58.395, 57.12, 57.375)
# Keras MobileNetV2 (alpha 0.35): RGB, x / 127.5 - 1.
KERAS_MEAN = (127.5, 127.5, 127.5)
KERAS_STD = (127.5, 127.5, 127.5)


@dataclass(frozen=True)
class ModelSpec:
    """Geometry and input convention of one detector.

    Attributes:
        name: model name, e.g. ``"mobilenetv2-0.35"``.
        alpha: MobileNetV2 width multiplier.
        strides: stride (input pixels per feature cell) of each pyramid level.
        min_sizes: anchor side lengths in input pixels, one tuple per level; every
            level has the same number of anchors per location.
        variances: (centre, size) variances of the SSD/RetinaFace box coding.
        channel_order: ``"RGB"`` or ``"BGR"``: what the network's input channel 0..2 hold.
        mean, std: per-channel normalisation in ``channel_order``, on the 0..255 scale:
            ``x_net = (x - mean) / std``.
        fpn_channels: width of FPN and SSH feature maps.
        pad_multiple: the network input's height and width are padded to a multiple of this.
        landmark_names: order of the 5 landmarks in the outputs.
        backbone_taps: what the FPN reads at each stride (:data:`BACKBONE_TAPS`): ``"blocks"``, the
            output of the stage's last block (16 / 32 / 112 channels for alpha 0.35, the paper's
            design), or ``"expansion"``, that output concatenated with the 6x expansion layer next to
            it (SSDLite's tap; 16 + 96 / 32 + 192 / 112 + 336 channels for alpha 0.35). Training
            and export only: the run time reads the graph.
    """

    name: str = "mobilenetv2-0.35"
    alpha: float = 0.35
    strides: tuple[int, ...] = (8, 16, 32)
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    variances: tuple[float, float] = (0.1, 0.2)
    channel_order: str = "RGB"
    mean: tuple[float, float, float] = KERAS_MEAN
    std: tuple[float, float, float] = KERAS_STD
    fpn_channels: int = 64
    pad_multiple: int = 32
    landmark_names: tuple[str, ...] = field(default=LANDMARK_NAMES)
    backbone_taps: str = "blocks"
    format_version: int = SPEC_FORMAT_VERSION

    def __post_init__(self) -> None:
        def finite(values: tuple[float, ...]) -> bool:
            return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)

        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if not (finite((self.alpha,)) and 0.0 < self.alpha <= 1.5):
            raise ValueError(f"alpha must be in (0, 1.5], got {self.alpha}")
        if not self.strides or any(s < 1 for s in self.strides) or list(self.strides) != sorted(set(self.strides)):
            raise ValueError(f"strides must be positive and increasing, got {list(self.strides)}")
        if len(self.strides) != len(self.min_sizes):
            raise ValueError("strides and min_sizes must have one entry per pyramid level")
        if any(not level or min(level) < 1 for level in self.min_sizes):
            raise ValueError(f"anchor sizes (min_sizes) must be positive, at least one per level, got {self.min_sizes}")
        counts = {len(m) for m in self.min_sizes}
        if len(counts) != 1:
            raise ValueError(f"every level needs the same number of anchors, got {self.min_sizes}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or not finite(self.mean + self.std) or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 finite values each, std > 0, got {self.mean} and {self.std}")
        if len(self.variances) != 2 or not finite(self.variances) or min(self.variances) <= 0:
            raise ValueError(f"variances must be (centre, size), finite and > 0, got {self.variances}")
        if self.fpn_channels < 1:
            raise ValueError(f"fpn_channels must be >= 1, got {self.fpn_channels}")
        if len(self.landmark_names) != len(LANDMARK_NAMES):
            raise ValueError(f"landmark_names must name {len(LANDMARK_NAMES)} landmarks, got {list(self.landmark_names)}")
        if self.backbone_taps not in BACKBONE_TAPS:
            raise ValueError(f"backbone_taps must be one of {list(BACKBONE_TAPS)}, got {self.backbone_taps!r}")
        if self.pad_multiple < 1 or self.pad_multiple % max(self.strides) != 0:
            raise ValueError(f"pad_multiple must be a positive multiple of the largest stride, got {self.pad_multiple}")

    @property
    def anchors_per_location(self) -> int:
        return len(self.min_sizes[0])

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """The spec from its JSON text.

        Raises:
            ValueError: (one line) not JSON, a newer format, unknown fields, a value of the wrong
                type, or values that fail the checks of the constructor.
        """
        try:
            return cls._from_json(text)
        except ValueError as exc:
            raise ValueError(f"malformed model spec metadata: {exc}") from None
        except (TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"malformed model spec metadata: a value of the wrong type ({exc})") from None

    @classmethod
    def _from_json(cls, text: str) -> ModelSpec:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        version = raw.get("format_version", 0)
        if version > SPEC_FORMAT_VERSION:
            raise ValueError(
                f"model spec format {version} is newer than this facelite understands "
                f"({SPEC_FORMAT_VERSION}); upgrade facelite"
            )
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown model spec fields: {sorted(unknown)}")
        tuples = {
            "strides": tuple(_integer(s, "strides") for s in raw.get("strides", cls.strides)),
            "min_sizes": tuple(tuple(_integer(m, "min_sizes") for m in lvl) for lvl in raw.get("min_sizes", cls.min_sizes)),
            "variances": tuple(float(v) for v in raw.get("variances", cls.variances)),
            "mean": tuple(float(v) for v in raw.get("mean", cls.mean)),
            "std": tuple(float(v) for v in raw.get("std", cls.std)),
            "landmark_names": tuple(raw.get("landmark_names", LANDMARK_NAMES)),
        }
        raw.update(tuples)
        for key in ("pad_multiple", "fpn_channels", "format_version"):
            if key in raw:
                raw[key] = _integer(raw[key], key)
        if "alpha" in raw:
            raw["alpha"] = float(raw["alpha"])
        return cls(**raw)

    def to_metadata(self) -> dict[str, str]:
        """Key/value pairs for an ONNX model's ``metadata_props``."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelSpec:
        if METADATA_KEY not in metadata:
            raise ValueError(
                f"model file has no '{METADATA_KEY}' metadata: it was not exported by facelite "
                "(use facelite.export.onnx.export_onnx or `facelite export`)"
            )
        return cls.from_json(metadata[METADATA_KEY])


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{what} must hold integers, got {value!r}")
    return int(value)


def default_spec(alpha: float, fpn_channels: int = 64, backbone_taps: str = "blocks") -> ModelSpec:
    """The spec used for a MobileNetV2 of width ``alpha``; normalisation follows its ImageNet weights."""
    keras = abs(alpha - 1.0) > 1e-6  # all widths other than 1.0 start from the Keras-convention weights
    return ModelSpec(
        name=f"mobilenetv2-{float(alpha)!r}",  # "mobilenetv2-0.35", "mobilenetv2-1.0": the shipped names
        alpha=alpha,
        mean=KERAS_MEAN if keras else TORCHVISION_MEAN,
        std=KERAS_STD if keras else TORCHVISION_STD,
        fpn_channels=fpn_channels,
        backbone_taps=backbone_taps,
    )
