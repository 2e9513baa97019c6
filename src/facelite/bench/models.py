"""The models a bench run measures, and the derived files it makes from them (cached).

A :class:`BenchModel` is one network (one width α) in several *variants*: the float32 ONNX
file, its static int8 (QDQ, per-channel, calibrated) and dynamic int8 quantizations, and,
when the ``tflite`` extra is installed, TFLite files. Where they come from:

- a shipped model name (``mobilenetv2-0.35``): the package's float32 and int8 files;
- a path to a facelite ``.onnx``: a float32 file, or an int8 file on its own;
- ``random_model(alpha)``: a random-weight network exported here (needs torch), so that
  latency tables exist before trained weights do (its AP is *n/a*).

Derived files live under ``<cache>/bench/<first 16 hex digits of the source's SHA-256>/``
(``<cache>`` is :func:`facelite.paths.cache_dir`, i.e. ``~/.cache/facelite``), so they are
made once per source file and never confused between sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..export.calibration import calibration_images
from ..models import MODEL_NAMES, file_sha256, shipped_path
from ..paths import cache_dir, data_path
from ..spec import ModelSpec

__all__ = [
    "ONNX_EXTRA",
    "PRECISIONS",
    "BenchModel",
    "Variant",
    "bench_cache_dir",
    "derive_dynamic_int8",
    "derive_static_int8",
    "model_from_path",
    "model_from_shipped",
    "normalise_batchnorm",
    "random_model",
]

PRECISIONS: tuple[str, ...] = ("float32", "dynamic-int8", "static-int8")
"""ONNX Runtime variants, in table order. TFLite variants are ``tflite-<kind>`` (see
:data:`facelite.export.tflite.KINDS`)."""

ONNX_EXTRA = "needs the onnx package (pip install onnx, or the train extra)"
"""Why a row needs more than the run-time install: the derived int8 files (quantization), parameter
and MAC counts and the stage split read or rewrite the ONNX graph with ``onnx``; the shipped
float32 and int8 files are timed with ONNX Runtime alone."""


def have_onnx() -> bool:
    """True when the ``onnx`` package can be imported (it is not part of the run-time install)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


WEIGHTS_METADATA_KEY = "facelite.weights"
"""Metadata key set to ``"random"`` on the random-weight models the bench exports."""


def bench_cache_dir() -> Path:
    """``<cache>/bench`` (``$FACELITE_CACHE``, default ``~/.cache/facelite``)."""
    return cache_dir() / "bench"


@dataclass(frozen=True)
class Variant:
    """One file of a model: ``precision`` (``float32``, ``static-int8``, ``dynamic-int8``,
    ``tflite-*``), its ``path``, and how it was obtained (``origin``). Fixed-shape formats
    (TFLite) have one file per input size in ``sized``; ``path`` is then the largest."""

    precision: str
    path: Path
    origin: str
    sized: dict[int, Path] | None = None

    def path_for(self, input_size: int) -> Path:
        """The file to run at ``input_size``."""
        if self.sized is None:
            return self.path
        if input_size not in self.sized:
            raise ValueError(f"{self.precision}: no file for input size {input_size} (have {sorted(self.sized)})")
        return self.sized[input_size]

    @property
    def backend(self) -> str:
        return "tflite" if self.path.suffix.lower() == ".tflite" else "onnxruntime"

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size


@dataclass
class BenchModel:
    """A network under test and its variants (``precision -> Variant``, in table order)."""

    label: str
    spec: ModelSpec
    trained: bool
    source: str  # "shipped" | "path" | "random"
    variants: dict[str, Variant] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return self.spec.alpha

    @property
    def float32(self) -> Variant | None:
        return self.variants.get("float32")

    def key_dir(self, root: Path | None = None) -> Path:
        """The cache folder of files derived from this model's source file."""
        src = self.float32 or next(iter(self.variants.values()))
        return (root or bench_cache_dir()) / file_sha256(src.path)[:16]


def _metadata(path: Path) -> dict[str, str]:
    """The file's metadata, read with ONNX Runtime (the run-time install has no ``onnx``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


# --------------------------------------------------------------------------- sources


def model_from_shipped(name: str, cache_root: Path | None = None) -> BenchModel:
    """A shipped model: its float32 and (static) int8 files, whichever are installed, plus the
    dynamic int8 quantization of the float32 file (derived, cached).

    Raises:
        FileNotFoundError: neither file of ``name`` is installed.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; the shipped models are {', '.join(MODEL_NAMES)}")
    f32, i8 = shipped_path(name, "float32"), shipped_path(name, "int8")
    if not f32.is_file() and not i8.is_file():
        raise FileNotFoundError(
            f"the shipped model {name} is not in this installation (no {f32.name} or {i8.name}); "
            "benchmark a file with --models PATH.onnx, or random weights with --random-weights"
        )
    spec = ModelSpec.from_metadata(_metadata(f32 if f32.is_file() else i8))
    m = BenchModel(label=name, spec=spec, trained=True, source="shipped")
    if f32.is_file():
        m.variants["float32"] = Variant("float32", f32, "shipped")
    if i8.is_file():
        m.variants["static-int8"] = Variant("static-int8", i8, "shipped")
    return m


def model_from_path(path: str | os.PathLike[str]) -> BenchModel:
    """A facelite ``.onnx`` file. Its ``facelite.precision`` metadata says which variant it is
    (absent: float32); a file exported by :func:`random_model` counts as untrained."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file")
    if p.suffix.lower() != ".onnx":
        raise ValueError(f"{p}: the bench takes facelite .onnx files (TFLite files are derived from them)")
    meta = _metadata(p)
    spec = ModelSpec.from_metadata(meta)
    precision = {"int8": "static-int8", "dynamic-int8": "dynamic-int8"}.get(meta.get("facelite.precision", ""), "float32")
    trained = meta.get(WEIGHTS_METADATA_KEY) != "random"
    m = BenchModel(label=spec.name if trained else f"{spec.name} (random)", spec=spec, trained=trained, source="path")
    m.variants[precision] = Variant(precision, p, "given")
    return m


def random_model(alpha: float, seed: int = 0, cache_root: Path | None = None) -> BenchModel:
    """A random-weight α network exported to ONNX (cached; needs torch). Latency only: its AP is n/a."""
    try:
        import torch
    except ModuleNotFoundError:
        raise RuntimeError("exporting random-weight models needs torch: pip install torch==2.13.0 (see DEVELOPERS.md)") from None
    from ..spec import default_spec

    spec = default_spec(alpha)
    root = cache_root or bench_cache_dir()
    path = root / "random" / f"{spec.name}-seed{seed}-bn-torch{torch.__version__.split('+')[0]}.onnx"
    if not path.is_file():
        import onnx

        from ..export.onnx import add_metadata, export_onnx
        from ..nn import build_model

        torch.manual_seed(seed)
        net = normalise_batchnorm(build_model(alpha))
        tmp = _atomic_target(path)
        export_onnx(net, tmp)
        proto = onnx.load(str(tmp))
        add_metadata(proto, {WEIGHTS_METADATA_KEY: "random", "facelite.precision": "float32"})
        onnx.save(proto, str(tmp))
        tmp.replace(path)
    m = BenchModel(label=f"{spec.name} (random)", spec=spec, trained=False, source="random")
    m.variants["float32"] = Variant("float32", path, f"random weights, seed {seed}")
    return m


def normalise_batchnorm(net, size: int = 320):
    """Set a random-weight network's batch-norm statistics from real input (the package's sample
    image at a few scales, and mirrored), and return it in eval mode.

    Freshly initialised statistics (mean 0, variance 1) let the activations of a random network
    shrink layer after layer to ~1e-10, which no int8 quantizer can represent (TFLite's kernels
    refuse such scales). With measured statistics the activations have the scale a trained
    network's have, so quantized random-weight models run the same kernels as trained ones.
    """
    import torch

    from ..imageio import load_image
    from ..preprocess import preprocess

    image = load_image(data_path("astronaut.jpg"))
    tensors = []
    for s in (size, size * 3 // 4, size * 5 // 4):
        t, _ = preprocess(image, net.spec, s)
        tensors += [torch.from_numpy(t), torch.from_numpy(t[..., ::-1].copy())]
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the passes
    net.train()
    with torch.no_grad():
        for t in tensors:
            net(t)
    return net.eval()


# --------------------------------------------------------------------------- derived files


def derive_dynamic_int8(model: BenchModel, cache_root: Path | None = None) -> Variant | None:
    """ONNX Runtime dynamic int8 of the float32 variant (cached); ``None`` without a float32 file."""
    if model.float32 is None:
        return None
    from ..export.quantize import quantize_dynamic_int8

    path = model.key_dir(cache_root) / "dynamic-int8-float-depthwise.onnx"
    if not path.is_file():
        tmp = _atomic_target(path)
        quantize_dynamic_int8(model.float32.path, tmp)
        tmp.replace(path)
    return Variant("dynamic-int8", path, "onnxruntime quantize_dynamic (int8 weights per channel; depthwise convs float)")


def derive_static_int8(
    model: BenchModel,
    calibration: int = 100,
    calibration_size: int = 640,
    method: str = "minmax",
    cache_root: Path | None = None,
) -> Variant | None:
    """Static QDQ int8 (per-channel weights) of the float32 variant, calibrated on ``calibration``
    training images at ``calibration_size`` (cached per source file and calibration set)."""
    if model.float32 is None:
        return None
    from ..export.quantize import quantize_static_int8

    images, what = calibration_images(calibration)
    import hashlib

    tag = hashlib.sha256("\n".join(p.name for p in images).encode()).hexdigest()[:8]
    # "fs": float score heads (quantize_static_int8's default since 2026-12-05): files cached before
    # it, the whole network int8, are not reused
    path = model.key_dir(cache_root) / f"static-int8-fs-{method}-n{len(images)}-s{calibration_size}-{tag}.onnx"
    if not path.is_file():
        tmp = _atomic_target(path)
        quantize_static_int8(model.float32.path, tmp, images, calibration_size, method)
        tmp.replace(path)
    return Variant("static-int8", path, f"static QDQ int8 (score heads float), {method} calibration on {what} at {calibration_size}")


def derive_tflite(model: BenchModel, kind: str, cfg: Any) -> Variant:
    """The ``tflite-<kind>`` files of a bench model, one per input size
    (``S x S``), converted from its float32 ONNX file and cached next to its other derived files."""
    import hashlib

    from ..export.tflite import export_tflite, torch_model_from_onnx

    if model.float32 is None:
        raise ValueError("no float32 ONNX file to convert")
    folder = model.key_dir(cfg.cache_root)
    torch_model = None
    sized: dict[int, Path] = {}
    images, what = calibration_images(cfg.calibration) if kind == "int8" else ([], "")
    tag = ""
    if kind == "int8":
        digest = hashlib.sha256("\n".join(p.name for p in images).encode()).hexdigest()[:8]
        tag = f"-fs-n{len(images)}-{digest}"  # fs: score heads float (export_tflite's float_scores)
    for size in sorted(cfg.sizes):
        s = -(-size // model.spec.pad_multiple) * model.spec.pad_multiple
        path = folder / f"tflite-{kind}-{s}x{s}{tag}.tflite"
        if not path.is_file():
            if torch_model is None:
                torch_model = torch_model_from_onnx(model.float32.path)
            f32 = folder / f"tflite-float32-{s}x{s}.tflite"
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.tflite")
            export_tflite(torch_model, tmp, kind, (s, s), images, float_model=f32 if f32.is_file() and kind != "float32" else None)
            tmp.replace(path)
        sized[size] = path
    origin = {"float32": "litert-torch conversion", "dynamic-int8": "ai-edge-quantizer dynamic_wi8_afp32 (dynamic range)",
              "int8": f"ai-edge-quantizer static_wi8_ai8 (score heads float), calibrated on {what}"}[kind]
    return Variant(f"tflite-{kind}", sized[max(sized)], origin + "; one fixed-shape file per input size", sized=sized)
