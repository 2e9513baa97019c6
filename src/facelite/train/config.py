"""Training recipe: a TOML file (see ``configs/``) read into dataclasses.

Relative data paths are resolved against the shared data folder
(:func:`facelite.paths.shared_dir`); ``run_dir`` may use ``~``.
"""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..paths import cache_dir, shared_dir


@dataclass
class ModelConfig:
    alpha: float = 0.35
    fpn_channels: int = 64
    # what the FPN reads from MobileNetV2: "blocks" (the stage outputs, the paper) or "expansion" (with the 6x
    # expansion layers next to them, SSDLite's taps; facelite.spec.ModelSpec.backbone_taps). From "blocks"
    # weights (init_weights), the new input channels start at zero: the same function to begin with.
    backbone_taps: str = "blocks"
    imagenet_weights: str = ""
    # start from an earlier run's weights.pt / best.pt, a shipped model ("mobilenetv2-0.35": fine-tune
    # it on your data) or a float32 .onnx from `facelite export`, instead of ImageNet
    init_weights: str = ""
    # distil from: a trained facelite model (same anchors) -- a weights.pt / best.pt, a shipped model
    # name ("mobilenetv2-1.0") or a float32 .onnx -- or a peer in
    # ../shared run by ONNX Runtime in the data workers: "retinaface" (RetinaFace-mnet0.25, MIT),
    # "yunet" (YuNet-n, Apache-2.0, its candidates projected onto the anchors) or "retinaface+yunet"
    teacher: str = ""


@dataclass
class DataConfig:
    train_gt: str = "data/widerface/train/wider_face_train_bbx_gt.txt"
    train_images: str = "data/widerface/train/images"
    # RetinaFace label.txt (e.g. with pseudo-landmarks), WIDER txt or COCO .json; replaces train_gt when set
    train_labels: str = ""
    train_weight: float = 1.0  # draws per image per epoch of the set above (see extra_sets)
    exhaustive: bool = True  # False: faces a teacher is sure of but the labels lack are ignored (teacher_ignore)
    # more training sets, each an inline table: labels (RetinaFace label.txt, WIDER txt or COCO), images (their
    # folder), weight (draws per image per epoch, may be fractional; default 1), exhaustive (default true),
    # holdout ("facemask": leave out the masked-face validation part, facelite.train.sources; required for it),
    # ignore_regions (default false: the file's crowd / invalid rows are ignore regions, not dropped; data packs),
    # name (for the log; default: the label file's stem)
    extra_sets: list[dict] = field(default_factory=list)
    teacher_ignore: str = ""  # "scrfd": on non-exhaustive sets, the teacher's unlabelled faces become ignore regions
    teacher_ignore_score: float = 0.5  # the teacher's score from which a face counts as sure
    teacher_ignore_iou: float = 0.3  # ... and as unlabelled when its IoU with every labelled face is below this
    teacher_ignore_live: bool = False  # run the teacher on each augmented crop instead of the precomputed boxes
    landmark_crops: str = "data/landmarks5/landmarks.txt"
    landmark_crop_boxes: str = ""  # .npz from `facelite pseudolabel crops` (default: under the cache dir)
    image_size: int = 320
    crop_scales: list[float] = field(default_factory=lambda: [0.3, 0.45, 0.6, 0.8, 1.0])
    paste_prob: float = 0.5
    paste_max: int = 3
    blur_prob: float = 0.0  # image degradations of facelite.train.augment.degrade
    jpeg_prob: float = 0.0
    gray_prob: float = 0.0
    mosaic_prob: float = 0.0  # four training images in one sample (facelite.train.augment.mosaic)
    positive_iou: float = 0.35
    # a face too small for every anchor is still given its best anchor when they overlap by this
    # much (IoU); below it the face has no positive anchor (RetinaFace's rule: 0.2). 0: every face
    min_forced_iou: float = 0.2
    eval_split: str = "data/widerface/dev"
    # your own validation images instead of the WIDER split: a RetinaFace label.txt or WIDER
    # *_bbx_gt.txt scored by `facelite eval labels` (AP, AP by face size, best F1)
    eval_labels: str = ""
    eval_images: str = ""  # folder its image paths are relative to (default: <label folder>/images)


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "adamw"  # or "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01
    ema_decay: float = 0.9995  # 0 disables EMA
    ema_warmup_steps: int = 1000
    threads: int = 2
    workers: int = 1
    bf16: bool = True  # autocast to bfloat16 (CPU with bf16 instructions, or CUDA)
    channels_last: bool = True
    device: str = "auto"  # "cpu", "cuda" or "auto" (CUDA when available)
    distill_cls: float = 1.0  # weight of the teacher's face probabilities (KL) when model.teacher is set
    # false: no KL on the anchors the labels make faces (their cross-entropy alone teaches them; the
    # teacher scores the tiny faces that data.min_forced_iou = 0 matches as background)
    distill_positives: bool = True
    distill_landmarks: float = 0.5  # weight of the teacher's landmarks on positives without labelled ones
    distill_features: float = 0.0  # weight of feature mimicking (SSH outputs; the ONNX RetinaFace teacher only)
    # loss on labelled landmarks: "smooth_l1" (RetinaFace's) or "wing" (facelite.train.loss.wing_loss, its
    # width and curvature in units of the encoded offsets)
    landmark_loss: str = "smooth_l1"
    wing_width: float = 1.0
    wing_curvature: float = 0.5
    trainable: list[str] = field(default_factory=list)  # module prefixes to train (others frozen); [] = all
    eval_every: int = 5
    eval_input_sizes: list[int] = field(default_factory=lambda: [640])
    log_every: int = 20
    seed: int = 0
    run_dir: str = ""
    # batches made on train.device from a precomputed image store (facelite.train.device_batches): crop, resize,
    # mosaic, landmark-crop pasting, colour jitter, flip, anchor matching and an ONNX teacher on the whole
    # batch; no image degradations, no live teacher ignore. Off: the DataLoader path, as before
    device_batches: bool = False


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_dir(self) -> Path:
        if self.train.run_dir:
            return Path(self.train.run_dir).expanduser()
        from ..spec import default_spec

        return cache_dir() / "runs" / default_spec(self.model.alpha).name


def _build(cls, raw: dict[str, Any], where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    return cls(**raw)


def load_config(path: str | Path) -> Config:
    raw = tomllib.loads(Path(path).read_text())
    unknown = set(raw) - {"model", "data", "train"}
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    return Config(
        model=_build(ModelConfig, raw.get("model", {}), f"{path} [model]"),
        data=_build(DataConfig, raw.get("data", {}), f"{path} [data]"),
        train=_build(TrainConfig, raw.get("train", {}), f"{path} [train]"),
    )


def apply_overrides(cfg: Config, items: list[str]) -> None:
    """Apply ``section.key=value`` overrides (value in TOML syntax; bare words are strings),
    e.g. ``train.epochs=40``, ``data.crop_scales=[0.5, 1.0]``, ``data.train_labels=x/label.txt``."""
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in ("model", "data", "train"):
            raise ValueError(f"override {item!r}: expected section.key=value with section model, data or train")
        target = getattr(cfg, section)
        if name not in {f.name for f in fields(target)}:
            raise ValueError(f"override {item!r}: unknown key {name!r} in [{section}]")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value.strip()
        f = next(f for f in fields(target) if f.name == name)
        current = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(current, float) and isinstance(parsed, int) and not isinstance(parsed, bool):
            parsed = float(parsed)
        if isinstance(current, str) and not isinstance(parsed, str):
            parsed = value.strip()
        if type(parsed) is not type(current):
            raise ValueError(f"override {item!r}: expected {type(current).__name__}, got {type(parsed).__name__}")
        setattr(target, name, parsed)


def resolve(path: str) -> Path:
    """A data path from a config: absolute or ``~`` paths as they are, others under the shared folder."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else shared_dir() / p
