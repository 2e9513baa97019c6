"""The training loop: bf16 autocast + channels_last on the CPU (or a CUDA device), warm-up + cosine
learning rate, EMA of weights, a log file and CSVs in the run folder, checkpoints every epoch with
automatic resume, an optional wall-clock budget that sets the schedule length, and dev-split
WIDER FACE AP every few epochs (model selection)."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..annotations import Sample, read_labels, read_landmark_crops, read_wider_txt
from ..paths import cache_dir
from ..progress import Progress, format_duration
from ..spec import ModelSpec, default_spec
from .augment import AugmentConfig
from .config import Config, resolve
from .dataset import FaceDataset, Normalizer
from .loss import FeatureAdapter, LossWeights, distill_loss, feature_distill_loss, multibox_loss
from .pseudolabel import attach_crop_boxes
from .sources import Source, SourceSampler, extra_source
from .teachers import ANCHOR_TEACHERS, FEATURE_TEACHERS, make_anchor_teacher

log = logging.getLogger("facelite.train")

LAST = "last.pt"
BEST = "best.pt"
WEIGHTS = "weights.pt"  # the latest EMA weights + spec, written every epoch (what `facelite export` takes)


class ModelEMA:
    """Exponential moving average of parameters and buffers, with a warm-up of the decay
    (``decay * (1 - exp(-updates / warmup))``) so early averages are not dominated by the init."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup_steps: int = 1000) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup = max(warmup_steps, 1)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.warmup))
        src = model.state_dict()
        avg, new = [], []
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                avg.append(v)
                new.append(src[k].detach())
            else:
                v.copy_(src[k])
        torch._foreach_mul_(avg, d)
        torch._foreach_add_(avg, new, alpha=1 - d)


class EpochSampler(torch.utils.data.Sampler):
    """Yields ``(epoch, index)`` in a shuffled order that depends only on ``(seed, epoch)``, so
    persistent data-loader workers see the current epoch (the dataset's augmentation seed)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        for i in torch.randperm(self.n, generator=gen).tolist():
            yield (self.epoch, i)


def load_weights(model: torch.nn.Module, path: Path, spec: ModelSpec, ck: dict | None = None) -> int:
    """Load a weights.pt / best.pt / last.pt (EMA weights when present) into ``model``; the file's
    spec must describe the same network. ``ck``: the file, if already read. Returns the tensor count."""
    from .onnx_weights import check_same_network

    ck = torch.load(path, map_location="cpu", weights_only=True) if ck is None else ck
    if not isinstance(ck, dict) or "spec" not in ck:
        raise ValueError(f"{path}: not a facelite checkpoint (no 'spec')")
    check_same_network(path, ModelSpec.from_json(ck["spec"]), spec)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ck.get("ema", ck["model"]).items()}
    model.load_state_dict(state)
    return len(state)


def init_model(model: torch.nn.Module, spec: ModelSpec, init_weights: str) -> Path | None:
    """``model.init_weights`` into ``model``: a shipped model, a float32 .onnx or a weights.pt. A
    file of the paper's taps starts a ``backbone_taps = "expansion"`` model through
    :func:`facelite.nn.widen.load_widened` (the same function until training moves it).
    Returns the ONNX file it came from (its batch norms need recalibrating), or None."""
    from ..nn.retinaface import RetinaFace

    from_onnx = onnx_init_path(init_weights)
    ck = None
    if from_onnx is not None:
        from .onnx_weights import onnx_spec

        file_taps = onnx_spec(from_onnx).backbone_taps
    else:
        path = resolve(init_weights)
        ck = torch.load(path, map_location="cpu", weights_only=True)
        file_taps = ModelSpec.from_json(ck["spec"]).backbone_taps if isinstance(ck, dict) and "spec" in ck else None
    target = model
    if file_taps is not None and file_taps != spec.backbone_taps:
        if (file_taps, spec.backbone_taps) != ("blocks", "expansion"):
            raise ValueError(f"{init_weights}: cannot start a {spec.backbone_taps!r}-taps model from "
                             f"{file_taps!r}-taps weights")
        target = RetinaFace(dataclasses.replace(spec, backbone_taps=file_taps))
    if from_onnx is not None:
        from .onnx_weights import load_onnx_weights

        n = load_onnx_weights(target, from_onnx, target.spec)
        log.info("initialised from %s (%s, %d convs)", init_weights, from_onnx, n)
    else:
        n = load_weights(target, path, target.spec, ck)
        log.info("initialised from %s (%d tensors)", init_weights, n)
    if target is not model:
        from ..nn.widen import load_widened

        w = load_widened(model, target.state_dict())
        log.info("backbone taps %s -> %s: %d FPN laterals widened, new input channels at zero",
                 file_taps, spec.backbone_taps, w)
    return from_onnx


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast pays."""
    checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    checks = [c for c in checks if c is not None]
    return not checks or any(c() for c in checks)  # unknown to this torch: trust the recipe


RECALIBRATION_IMAGES = 64
"""Augmented training samples whose statistics the batch norms of an ONNX-initialised model get."""


def onnx_init_path(init_weights: str) -> Path | None:
    """The float32 ONNX file ``model.init_weights`` names: a shipped model (``"mobilenetv2-0.35"``)
    or a ``.onnx`` path; None for a PyTorch weights file or nothing."""
    if not init_weights:
        return None
    if init_weights.endswith(".onnx"):
        return resolve(init_weights)
    from ..models import MODEL_NAMES, resolve_model

    if init_weights in MODEL_NAMES:
        return Path(resolve_model(init_weights, "float32").path)
    return None


def recalibrate_from_dataset(model: torch.nn.Module, dataset, normalize: torch.nn.Module, seed: int,
                             n: int = RECALIBRATION_IMAGES, batch: int = 8) -> int:
    """:func:`facelite.train.onnx_weights.recalibrate_batchnorm` on ``n`` augmented samples."""
    from .onnx_weights import recalibrate_batchnorm

    idx = np.random.default_rng(seed).permutation(len(dataset))[:n]
    batches = (normalize(torch.stack([dataset[(0, int(i))][0] for i in idx[j:j + batch]]))
               for j in range(0, len(idx), batch))
    return recalibrate_batchnorm(model, batches)


def load_teacher(name: str, spec: ModelSpec) -> tuple[torch.nn.Module, ModelSpec]:
    """A trained facelite model as a frozen teacher: a weights.pt / best.pt, a shipped model name or
    a float32 .onnx (``model.teacher``); its anchors must equal the student's."""
    from ..nn.retinaface import RetinaFace

    onnx_path = onnx_init_path(name)
    if onnx_path is not None:
        from .onnx_weights import load_onnx_weights, onnx_spec

        t_spec = onnx_spec(onnx_path)
    else:
        path = resolve(name)
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or "spec" not in ck:
            raise ValueError(f"{path}: not a facelite checkpoint (no 'spec')")
        t_spec = ModelSpec.from_json(ck["spec"])
    if (t_spec.strides, t_spec.min_sizes) != (spec.strides, spec.min_sizes):
        raise ValueError(f"{name}: the teacher's anchors differ from the student's")
    teacher = RetinaFace(t_spec)
    if onnx_path is not None:
        load_onnx_weights(teacher, onnx_path, t_spec)
    else:
        teacher.load_state_dict({k: v.float() if v.is_floating_point() else v
                                 for k, v in ck.get("ema", ck["model"]).items()})
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, t_spec


def freeze_except(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Freeze every parameter whose name starts with none of ``prefixes`` (``[]``: train all).
    Returns the number of frozen tensors; raises ``ValueError`` when a prefix matches nothing."""
    if not prefixes:
        return 0
    names = [n for n, _ in model.named_parameters()]
    for pre in prefixes:
        if not any(n.startswith(pre) for n in names):
            raise ValueError(f"train.trainable: {pre!r} matches no parameter (e.g. {names[0]!r})")
    frozen = 0
    for n, p in model.named_parameters():
        keep = any(n.startswith(pre) for pre in prefixes)
        p.requires_grad_(keep)
        frozen += not keep
    return frozen


def set_train_mode(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Train mode for the trainable modules only: frozen batch-norm layers keep their statistics."""
    if not prefixes:
        model.train()
        return
    model.eval()
    for name, m in model.named_modules():
        if name and any(name.startswith(pre) for pre in prefixes):
            m.train()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device = {name!r} but PyTorch sees no CUDA device")
    return torch.device(name)


def _worker_init(_: int) -> None:
    """Data workers: one thread each. OpenCV's thread count is set to 1 in the parent before the
    workers are forked (:func:`_single_threaded_opencv`): calling ``cv2.setNumThreads`` in a
    forked child whose parent had a live OpenCV thread pool can deadlock."""
    torch.set_num_threads(1)


def _single_threaded_opencv() -> None:
    """OpenCV on one thread in this process (and so in forked workers): its pool would otherwise
    compete with the training threads for the cores, and must not be alive when workers fork."""
    import cv2

    cv2.setNumThreads(1)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_ratio: float) -> float:
    """Linear warm-up from 1 % of ``base_lr``, then cosine decay to ``min_ratio * base_lr``."""
    if step < warmup_steps:
        return base_lr * (0.01 + 0.99 * step / max(warmup_steps, 1))
    t = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _setup_logging(run_dir: Path) -> None:
    root = logging.getLogger("facelite")
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    target = str(run_dir / "train.log")
    if not any(getattr(h, "baseFilename", None) == str(Path(target).resolve()) for h in root.handlers):
        fh = logging.FileHandler(target)
        fh.setFormatter(fmt)
        root.addHandler(fh)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)


def load_samples(cfg: Config) -> list[Sample]:
    """The training images and their faces: ``data.train_labels`` (a RetinaFace label.txt, a WIDER
    txt or a COCO file; faces marked crowd / invalid are dropped) or else ``data.train_gt``."""
    image_root = resolve(cfg.data.train_images)
    if cfg.data.train_labels:
        return [s.without_ignored() for s in read_labels(resolve(cfg.data.train_labels), image_root)]
    return read_wider_txt(resolve(cfg.data.train_gt), image_root)


def load_sources(cfg: Config) -> list[Source]:
    """The main training set (:func:`load_samples`) and ``data.extra_sets``; on the sets that are
    not exhaustive, with ``data.teacher_ignore`` (and not ``teacher_ignore_live``), the teacher's
    sure, unlabelled faces become ignore regions (precomputed, cached per image)."""
    sources = [Source("train", load_samples(cfg), cfg.data.train_weight, cfg.data.exhaustive)]
    sources += [extra_source(e, resolve) for e in cfg.data.extra_sets]
    for src in sources:
        log.info("training set %s: %d images, %d faces, weight %g, %s", src.name, len(src.samples),
                 sum(len(s.boxes) for s in src.samples), src.weight,
                 "exhaustive" if src.exhaustive else "not exhaustive")
    if cfg.data.teacher_ignore and not cfg.data.teacher_ignore_live:
        from .teacher_cache import add_teacher_ignore, teacher_detections

        for src in sources:
            if src.exhaustive:
                continue
            run = teacher_detections(src.samples, cfg.data.teacher_ignore, threads=cfg.train.threads)
            src.samples, st = add_teacher_ignore(src.samples, run.detections, cfg.data.teacher_ignore_score,
                                                 cfg.data.teacher_ignore_iou)
            log.info("%s: %d ignore regions (%s faces >= %g without a label, IoU < %g) in %d of %d images; "
                     "%d labelled faces; teacher run on %d images (%.0f s), the rest cached", src.name,
                     st["ignore_regions"], cfg.data.teacher_ignore, cfg.data.teacher_ignore_score,
                     cfg.data.teacher_ignore_iou, st["images_with_ignore"], st["images"], st["faces"], run.computed,
                     run.seconds)
    return sources


def load_paste_crops(cfg: Config):
    """Landmark crops (training part only: the evaluation's held-out 10 % never enters) with boxes."""
    if cfg.data.paste_prob <= 0 or not cfg.data.landmark_crops:
        return []
    from ..evaluation.landmarks import has_known_bad_labels, landmark_split

    crops = read_landmark_crops(resolve(cfg.data.landmark_crops))
    train_names, _ = landmark_split(c.name for c in crops)
    keep = {n for n in train_names if not has_known_bad_labels(n)}  # net_7876/_*: points ~28 px off
    crops = [c for c in crops if c.name in keep]
    box_file = resolve(cfg.data.landmark_crop_boxes) if cfg.data.landmark_crop_boxes \
        else cache_dir() / "landmark_crop_boxes.npz"
    if not box_file.is_file():
        raise FileNotFoundError(
            f"{box_file} not found: run `facelite pseudolabel crops` first (face boxes for the landmark crops)"
        )
    n = attach_crop_boxes(crops, box_file)
    log.info("landmark crops: %d in the training part, %d with a face box", len(crops), n)
    return crops


def augment_config(cfg: Config, spec: ModelSpec) -> AugmentConfig:
    """The recipe's augmentation; crops outside the image are filled with the spec's mean colour,
    which is what the run time's zero padding of the normalised input amounts to."""
    mean_bgr = spec.mean[::-1] if spec.channel_order == "RGB" else spec.mean
    return AugmentConfig(size=cfg.data.image_size, crop_scales=tuple(cfg.data.crop_scales),
                         fill_bgr=tuple(int(round(v)) for v in mean_bgr),
                         paste_prob=cfg.data.paste_prob, paste_max=cfg.data.paste_max,
                         blur_prob=cfg.data.blur_prob, jpeg_prob=cfg.data.jpeg_prob, gray_prob=cfg.data.gray_prob,
                         mosaic_prob=cfg.data.mosaic_prob)


def make_device_batches(cfg: Config, spec: ModelSpec, aug: AugmentConfig, samples: list[Sample],
                        device: torch.device, anchor_teacher=None, crops=None):
    """``train.device_batches``: the image store of ``samples`` (built or checked here) and the
    :class:`facelite.train.device_batches.DeviceBatches` that make the batches on ``device``
    (``crops``: landmark crops to paste, those with a face box are used)."""
    from ..imageio import load_image
    from .batch_teacher import BatchTeacher
    from .device_batches import DeviceBatches
    from .store import needed_short_side, open_store

    if cfg.data.teacher_ignore and cfg.data.teacher_ignore_live:
        raise ValueError("train.device_batches: data.teacher_ignore_live is not supported (use the precomputed "
                         "teacher ignore regions)")
    skipped = [k for k in ("blur_prob", "jpeg_prob", "gray_prob") if getattr(cfg.data, k) > 0]
    if skipped:
        log.warning("train.device_batches: %s not applied on this path", ", ".join(f"data.{k}" for k in skipped))
    t0 = time.time()
    store, built = open_store(samples, needed_short_side(aug.size, aug.crop_scales),
                              threads=max(cfg.train.workers, cfg.train.threads))
    log.info("image store %s: %d images, %.0f MB, %s in %.1f s", store.root, len(store), store.pixels.nbytes / 1e6,
             "built" if built else "checked", time.time() - t0)
    teacher = BatchTeacher(anchor_teacher, device, cfg.train.threads) if anchor_teacher is not None else None
    crops = [c for c in (crops or []) if c.box is not None]
    return DeviceBatches(store, aug, spec, device, cfg.train.seed, cfg.data.positive_iou, teacher, crops,
                         [load_image(c.path) for c in crops], cfg.data.min_forced_iou)


class _BatchImages:
    """``dataset[(epoch, index)][0]`` (the augmented image, on the CPU) from device batches, for
    :func:`recalibrate_from_dataset`."""

    def __init__(self, batches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches.augmenter.store)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor]:
        imgs, _ = self.batches.augmenter([key[1]], key[0], [key[1]])
        return (imgs[0].cpu(),)


def build_optimizer(model: torch.nn.Module, cfg: Config, fused: bool = False,
                    extra: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW over ``model``'s trainable parameters (no weight decay on biases
    and norms) and, in a group of its own without weight decay, ``extra``'s."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if extra is not None:  # e.g. a feature adapter: no weight decay (it starts as the identity)
        groups.append({"params": list(extra.parameters()), "weight_decay": 0.0})
    if cfg.train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum, nesterov=True)
    if cfg.train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.train.lr, fused=fused or None)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.train.optimizer!r}")


LOSS_PARTS = ("total", "cls", "box", "landmarks", "kd_cls", "kd_landmarks", "kd_features")
"""Per-epoch means in ``losses.csv``; ``total`` includes the distillation terms at their weights,
``kd_*`` are unweighted (0 without a teacher, ``kd_features`` 0 without feature distillation)."""
LOSS_COLUMNS = ("epoch", "step", "lr", *LOSS_PARTS, "images_per_s", "seconds")
METRIC_COLUMNS = ("epoch", "input_size", "easy", "medium", "hard", "seconds")
LABEL_METRIC_COLUMNS = ("epoch", "input_size", "ap", "ap_small", "ap_medium", "ap_large", "best_f1", "seconds")
"""metrics.csv with ``data.eval_labels`` (your own validation images) instead of the WIDER split."""


def metric_columns(cfg: Config) -> tuple[str, ...]:
    return LABEL_METRIC_COLUMNS if cfg.data.eval_labels else METRIC_COLUMNS


def ensure_csv_header(path: Path, columns: tuple[str, ...]) -> None:
    """Give the CSV log at ``path`` the header ``columns`` before rows are appended.

    A new file gets the header. A file from an older version of the trainer (a resumed run) whose
    columns are a subset of ``columns`` is rewritten under the new header, its rows left empty in
    the added columns; any other header is kept aside as ``<name>.old<N>.csv`` and a new file is
    started, so nothing already logged is lost."""
    text = path.read_text() if path.is_file() else ""
    if not text.strip():
        path.write_text(",".join(columns) + "\n")
        return
    reader = csv.DictReader(text.splitlines())
    old = tuple(reader.fieldnames or ())
    if old == columns:
        return
    if set(old) <= set(columns):
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
            w.writeheader()
            w.writerows(reader)
        tmp.replace(path)
        log.info("%s: added columns %s to the rows already logged", path.name,
                 ", ".join(c for c in columns if c not in old))
        return
    n = 1
    while (aside := path.with_name(f"{path.stem}.old{n}{path.suffix}")).exists():
        n += 1
    path.replace(aside)
    path.write_text(",".join(columns) + "\n")
    log.warning("%s had other columns (%s); kept as %s, new rows go to a new file", path.name,
                ",".join(old), aside.name)


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def export_for_eval(model: torch.nn.Module, path: Path) -> Path:
    from ..export.onnx import export_onnx

    m = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format).eval()
    return export_onnx(m, path)


def evaluate_onnx(onnx_path: Path, cfg: Config, input_size: int) -> dict[str, float]:
    """Validation accuracy of an exported model with the project's evaluation code: WIDER AP
    (``easy``, ``medium``, ``hard``) on ``data.eval_split``, or, with ``data.eval_labels``, the
    ``ap``, ``ap_small``, ``ap_medium``, ``ap_large`` and ``best_f1`` of ``facelite eval labels``.

    Runs ``facelite eval`` in a child process: ONNX Runtime and OpenCV thread pools started in
    the trainer would make the data-loader workers it forks later deadlock.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ap.json"
        common = ["--model", str(onnx_path), "--input-size", str(input_size), "--threads", str(cfg.train.threads),
                  "--json", str(out), "--quiet"]
        if cfg.data.eval_labels:
            task = ["labels", str(resolve(cfg.data.eval_labels))]
            if cfg.data.eval_images:
                task += ["--images", str(resolve(cfg.data.eval_images))]
        else:
            task = ["widerface", "--split-dir", str(resolve(cfg.data.eval_split))]
        cmd = [sys.executable, "-m", "facelite.cli", "eval", *task, *common]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"evaluation failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        result = json.loads(out.read_text())
        if cfg.data.eval_labels:
            values = {"ap": result["ap"], **{f"ap_{k}": v for k, v in result["ap_by_size"].items()},
                      "best_f1": result["best_f1"]["f1"]}
        else:
            values = result["ap"]
        return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def _fit_epochs(budget: float, elapsed: float, epoch_times: list[float], done: int) -> int:
    """Epoch count that ends the run within ``budget`` seconds: the epochs done plus as many as
    the remaining time allows at the mean epoch time (the first epoch, which includes start-up,
    only counts while it is the only one)."""
    times = epoch_times[1:] or epoch_times
    per_epoch = sum(times) / len(times)
    return done + max(int((budget - elapsed) // per_epoch), 0)


def train(cfg: Config, epochs: int | None = None, stop_after: int | None = None,
          time_budget: float | None = None) -> Path:
    """Train (or resume) per ``cfg``; returns the run folder. ``epochs`` overrides the schedule
    length; ``stop_after`` ends this call after that many epochs (the schedule is unchanged);
    ``time_budget`` (seconds) sets the schedule length from the first three epochs' times so that
    the run ends within it (the resulting count is logged and written to the run's config.json)."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir)
    if epochs:
        cfg.train.epochs = epochs
    torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.train.bf16 and device.type == "cpu" and not cpu_has_bf16():
        # emulated bf16 is ~10x slower than float32 (measured: 1.2 against 13.9 images/s, AVX2 only)
        log.warning("this CPU has no bf16 instructions (AVX512-BF16 or AMX): training in float32 instead")
        cfg.train.bf16 = False
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))

    spec = default_spec(cfg.model.alpha, cfg.model.fpn_channels, cfg.model.backbone_taps)
    from ..nn.retinaface import RetinaFace

    model = RetinaFace(spec)
    from_onnx = init_model(model, spec, cfg.model.init_weights) if cfg.model.init_weights else None
    if not cfg.model.init_weights and cfg.model.imagenet_weights:
        n = model.backbone.load_imagenet(resolve(cfg.model.imagenet_weights))
        log.info("ImageNet backbone: loaded %d tensors from %s", n, cfg.model.imagenet_weights)
    sources = load_sources(cfg)
    samples = [s for src in sources for s in src.samples]
    crops = load_paste_crops(cfg)
    aug = augment_config(cfg, spec)
    anchor_teacher = None
    use_features = cfg.train.distill_features > 0
    if use_features and cfg.model.teacher not in FEATURE_TEACHERS:
        raise ValueError(f"train.distill_features needs model.teacher in {FEATURE_TEACHERS}, got {cfg.model.teacher!r}")
    if cfg.model.teacher in ANCHOR_TEACHERS:
        anchor_teacher = make_anchor_teacher(cfg.model.teacher, spec, features=use_features)
        log.info("distilling from %s (ONNX, %s): cls weight %g, landmark weight %g%s", cfg.model.teacher,
                 "on each batch" if cfg.train.device_batches else "in the data workers", cfg.train.distill_cls,
                 cfg.train.distill_landmarks, f", feature weight {cfg.train.distill_features:g}" if use_features else "")
    live_ignore = None
    if cfg.data.teacher_ignore and cfg.data.teacher_ignore_live:
        from .teacher_cache import LiveIgnoreTeacher

        live_ignore = LiveIgnoreTeacher(cfg.data.teacher_ignore, cfg.data.teacher_ignore_score,
                                        cfg.data.teacher_ignore_iou)
    dataset = batches = None
    if cfg.train.device_batches:
        batches = make_device_batches(cfg, spec, aug, samples, device, anchor_teacher, crops)
    else:
        dataset = FaceDataset(samples, spec, aug, seed=cfg.train.seed, crops=crops,
                              positive_iou=cfg.data.positive_iou, teacher=anchor_teacher, live_ignore=live_ignore,
                              live_ignore_on=np.concatenate([np.full(len(src.samples), not src.exhaustive)
                                                             for src in sources]),
                              min_forced_iou=cfg.data.min_forced_iou)
    single = len(sources) == 1 and sources[0].weight == 1.0
    sampler = (EpochSampler(len(samples), cfg.train.seed) if single  # as before: the same order
               else SourceSampler([len(src.samples) for src in sources], [src.weight for src in sources],
                                  cfg.train.seed))
    if not single:
        log.info("draws per epoch: %s", ", ".join(f"{src.name} {c}" for src, c in zip(sources, sampler.counts())))
    steps_per_epoch = len(sampler) // cfg.train.batch_size
    total_steps = steps_per_epoch * cfg.train.epochs
    warmup_steps = int(cfg.train.warmup_epochs * steps_per_epoch)

    start_epoch, step, best = 0, 0, -1.0
    last = run_dir / LAST
    ck = torch.load(last, map_location="cpu", weights_only=True) if last.is_file() else None
    if ck is not None:
        model.load_state_dict(ck["model"])
    elif from_onnx is not None:
        k = recalibrate_from_dataset(model, dataset if batches is None else _BatchImages(batches),
                                     normalize=Normalizer(spec), seed=cfg.train.seed)
        log.info("batch norms of the imported file: statistics of %d training samples in %d of them",
                 min(len(samples), RECALIBRATION_IMAGES), k)
    model = model.to(device)
    frozen = freeze_except(model, cfg.train.trainable)
    if frozen:
        log.info("training only %s (%d tensors frozen)", ", ".join(cfg.train.trainable), frozen)
    adapter = None
    if use_features:  # trained alongside the student, kept in last.pt, never exported
        adapter = FeatureAdapter(spec.fpn_channels, anchor_teacher.feature_channels, len(spec.strides))
        if ck is not None and "adapter" in ck:
            adapter.load_state_dict(ck["adapter"])
        adapter = adapter.to(device)
    optimizer = build_optimizer(model, cfg, fused=device.type == "cuda", extra=adapter)
    ema = ModelEMA(model, cfg.train.ema_decay, cfg.train.ema_warmup_steps) if cfg.train.ema_decay > 0 else None
    if ck is not None:
        optimizer.load_state_dict(ck["optimizer"])
        if ema is not None and "ema" in ck:
            ema.module.load_state_dict(ck["ema"])
            ema.updates = int(ck.get("ema_updates", 0))
        start_epoch, step, best = int(ck["epoch"]), int(ck["step"]), float(ck.get("best", -1.0))
        log.info("resumed from %s at epoch %d (step %d)", last, start_epoch, step)
        del ck
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    normalize = Normalizer(spec).to(device)
    teacher = t_normalize = None
    if cfg.model.teacher and anchor_teacher is None:
        teacher, t_spec = load_teacher(cfg.model.teacher, spec)
        teacher = teacher.to(device).eval()
        if cfg.train.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        t_normalize = Normalizer(t_spec).to(device)
        log.info("distilling from %s (%s): cls weight %g, landmark weight %g", cfg.model.teacher, t_spec.name,
                 cfg.train.distill_cls, cfg.train.distill_landmarks)
    weights = LossWeights(landmark_loss=cfg.train.landmark_loss, wing_width=cfg.train.wing_width,
                          wing_curvature=cfg.train.wing_curvature)  # checks them
    if weights.landmark_loss == "wing":
        log.info("landmark loss: wing (width %g, curvature %g)", weights.wing_width, weights.wing_curvature)

    loss_csv = run_dir / "losses.csv"
    ensure_csv_header(loss_csv, LOSS_COLUMNS)
    metrics_csv = run_dir / "metrics.csv"
    ensure_csv_header(metrics_csv, metric_columns(cfg))

    log.info("training %s on %s: %d images, %d draws and %d steps/epoch, epochs %d..%d of %d, batch %d, size %d, "
             "threads %d, workers %d", spec.name, device, len(samples), len(sampler), steps_per_epoch, start_epoch + 1, cfg.train.epochs,
             cfg.train.epochs, cfg.train.batch_size, cfg.data.image_size, cfg.train.threads, cfg.train.workers)
    end_epoch = cfg.train.epochs if stop_after is None else min(cfg.train.epochs, start_epoch + stop_after)
    pin = device.type == "cuda"
    loader = None
    if dataset is not None:
        if cfg.train.workers > 0:
            _single_threaded_opencv()
        loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler, drop_last=True,
                            num_workers=cfg.train.workers, worker_init_fn=_worker_init, pin_memory=pin,
                            persistent_workers=cfg.train.workers > 0,
                            prefetch_factor=4 if cfg.train.workers else None)
    run_t0 = time.time()
    epoch_times: list[float] = []
    epoch = start_epoch
    while epoch < end_epoch:
        sampler.epoch = epoch
        if dataset is not None:
            dataset.epoch = epoch  # for workers=0 and the first workers' start
        set_train_mode(model, cfg.train.trainable)
        sums = torch.zeros(len(LOSS_PARTS), device=device)
        n_steps = 0
        bad_steps = 0
        t0 = time.time()
        bar = Progress(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", unit="step",
                       log_interval=60.0)
        epoch_batches = loader if batches is None else batches.epoch(sampler, cfg.train.batch_size)
        for imgs, labels, box_t, lmk_t, lmk_mask, *soft in epoch_batches:
            lr = lr_at(step, total_steps, warmup_steps, cfg.train.lr, cfg.train.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr
            imgs, labels, box_t, lmk_t, lmk_mask = (t.to(device, non_blocking=pin)
                                                    for t in (imgs, labels, box_t, lmk_t, lmk_mask))
            x = normalize(imgs)
            if cfg.train.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.bf16):
                logits, boxes, lmks, feats = model.forward_features(x)
            losses = multibox_loss(logits, boxes, lmks, labels, box_t, lmk_t, lmk_mask, weights)
            if teacher is not None:
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.bf16):
                    xt = t_normalize(imgs)
                    if cfg.train.channels_last:
                        xt = xt.contiguous(memory_format=torch.channels_last)
                    t_logits, _, t_lmks = teacher(xt)
            if soft:  # an ONNX teacher's outputs, computed by the data workers
                t_logits, t_lmks, *t_feats = (t.to(device, non_blocking=pin) for t in soft)
            losses["kd_cls"] = losses["kd_landmarks"] = losses["kd_features"] = torch.zeros((), device=device)
            if teacher is not None or soft:
                kd = distill_loss(logits, lmks, t_logits, t_lmks, labels, lmk_mask, cfg.train.distill_positives)
                losses["kd_cls"], losses["kd_landmarks"] = kd["cls"], kd["landmarks"]
                losses["total"] = (losses["total"] + cfg.train.distill_cls * kd["cls"]
                                   + cfg.train.distill_landmarks * kd["landmarks"])
            if adapter is not None:
                losses["kd_features"] = feature_distill_loss(adapter(feats), t_feats)
                losses["total"] = losses["total"] + cfg.train.distill_features * losses["kd_features"]
            if not torch.isfinite(losses["total"]):
                bad_steps += 1
                optimizer.zero_grad(set_to_none=True)
                if bad_steps > 10:
                    raise RuntimeError(f"loss not finite in {bad_steps} steps of epoch {epoch + 1}; stopping")
                continue
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            if adapter is not None:
                torch.nn.utils.clip_grad_norm_(adapter.parameters(), 10.0)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            n_steps += 1
            sums += torch.stack([losses[k].detach().float() for k in LOSS_PARTS])
            if n_steps % max(cfg.train.log_every, 1) == 0 or n_steps == steps_per_epoch:
                bar.update(n_steps - bar.n, loss=f"{float(sums[0]) / n_steps:.3f}", lr=f"{lr:.2e}")
        bar.close()
        n = max(n_steps, 1)
        dt = time.time() - t0
        epoch_times.append(dt)
        mean = (sums / n).tolist()
        with loss_csv.open("a") as f:
            f.write(",".join([str(epoch + 1), str(step), f"{lr:.6g}", *(f"{v:.5f}" for v in mean),
                              f"{n * cfg.train.batch_size / dt:.2f}", f"{dt:.1f}"]) + "\n")
        done = epoch + 1 - start_epoch
        if time_budget and done <= 3:
            fitted = start_epoch + _fit_epochs(time_budget, time.time() - run_t0, epoch_times, done)
            if fitted != cfg.train.epochs:
                log.info("time budget %s: schedule set to %d epochs (was %d)", format_duration(time_budget),
                         fitted, cfg.train.epochs)
                cfg.train.epochs = fitted
                total_steps = steps_per_epoch * fitted
                end_epoch = fitted if stop_after is None else min(fitted, start_epoch + stop_after)
                (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        left = (time.time() - run_t0) / done * (end_epoch - epoch - 1)
        kd_note = (f" kd_cls {mean[4]:.4f} kd_lmk {mean[5]:.4f}"
                   if teacher is not None or anchor_teacher is not None else "")
        if adapter is not None:
            kd_note += f" kd_feat {mean[6]:.4f}"
        log.info("epoch %d/%d: loss %.4f (cls %.4f box %.4f lmk %.4f%s), %.1f img/s, %s; ETA %s",
                 epoch + 1, cfg.train.epochs, *mean[:4], kd_note, n * cfg.train.batch_size / dt,
                 format_duration(dt), format_duration(left))
        eval_model = ema.module if ema is not None else model
        state = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1, "step": step,
            "best": best, "config": json.dumps(cfg.to_dict()), "spec": spec.to_json(),
        }
        if ema is not None:
            state["ema"] = ema.module.state_dict()
            state["ema_updates"] = ema.updates
        if adapter is not None:
            state["adapter"] = adapter.state_dict()
        save_checkpoint(last, **state)
        save_checkpoint(run_dir / WEIGHTS, model={k: v.detach().cpu().contiguous()
                                                for k, v in eval_model.state_dict().items()},
                        epoch=epoch + 1, spec=spec.to_json(), config=json.dumps(cfg.to_dict()))
        if cfg.train.eval_every and ((epoch + 1) % cfg.train.eval_every == 0 or epoch + 1 == cfg.train.epochs):
            best = _evaluate_and_select(eval_model, cfg, run_dir, epoch + 1, best, metrics_csv, spec)
            state["best"] = best
            save_checkpoint(last, **state)
        epoch += 1
    return run_dir


def _evaluate_and_select(model, cfg: Config, run_dir: Path, epoch: int, best: float, metrics_csv: Path, spec) -> float:
    try:
        onnx_path = export_for_eval(model, run_dir / "eval.onnx")
        scores = []
        names = metric_columns(cfg)[2:-1]
        for size in cfg.train.eval_input_sizes:
            t0 = time.time()
            m = evaluate_onnx(onnx_path, cfg, size)
            dt = time.time() - t0
            with metrics_csv.open("a") as f:
                f.write(",".join([str(epoch), str(size), *(f"{m[k]:.4f}" for k in names), f"{dt:.1f}"]) + "\n")
            log.info("validation at %d: %s (%.0f s)", size, " ".join(f"{k} {m[k]:.4f}" for k in names), dt)
            # the model kept as best.pt: mean WIDER AP of the three subsets, or AP on your labels
            scores.append(m["ap"] if cfg.data.eval_labels else (m["easy"] + m["medium"] + m["hard"]) / 3)
    except (ImportError, FileNotFoundError, RuntimeError) as exc:
        log.warning("validation skipped: %s", exc)
        return best
    score = float(np.mean(scores))
    if score > best:
        best = score
        save_checkpoint(run_dir / BEST, model=model.state_dict(), epoch=epoch, score=score, spec=spec.to_json())
        log.info("new best (%s %.4f) saved to %s", "AP" if cfg.data.eval_labels else "mean AP", score, run_dir / BEST)
    return best
