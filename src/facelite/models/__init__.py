"""The models shipped inside the package, and how a ``model=`` argument is resolved.

Shipped files live next to this module as ``<name>-<precision>.onnx``, e.g.
``mobilenetv2-0.35-float32.onnx``, and ``SHA256SUMS`` (``sha256sum`` format:
``<hex digest>  <file name>`` per line) lists the checksum of each; a shipped file is
verified against it every time it is loaded. After adding or replacing a shipped
file, regenerate the list with ``python -m facelite.models``.

``model=`` may also be the path to any ``.onnx`` file written by
:func:`facelite.export.onnx.export_onnx`; such files are not checksum-verified
(there is nothing to verify them against), but their digest is reported.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MODEL_DIR",
    "MODEL_NAMES",
    "PRECISIONS",
    "ModelChecksumError",
    "ModelNotFoundError",
    "ResolvedModel",
    "available_models",
    "file_sha256",
    "resolve_model",
    "shipped_path",
    "update_checksums",
]

MODEL_DIR = Path(__file__).resolve().parent
MODEL_NAMES: tuple[str, ...] = ("mobilenetv2-0.35", "mobilenetv2-1.0")
"""Names of the shipped models (MobileNetV2 width 0.35 and 1.0)."""
PRECISIONS: tuple[str, ...] = ("float32", "int8")
"""Precisions each shipped model comes in."""
CHECKSUM_FILE = "SHA256SUMS"


class ModelNotFoundError(FileNotFoundError):
    """A shipped model file or a model path does not exist."""


class ModelChecksumError(RuntimeError):
    """A shipped model file does not match ``SHA256SUMS`` (corrupt or replaced)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load.

    Attributes:
        path: the ``.onnx`` file.
        name: the shipped name, or ``None`` for a user-supplied path (then the spec's
            name from the file's metadata is the best description).
        precision: ``"float32"``/``"int8"`` for a shipped model; ``None`` for a path
            (read it from the file's metadata, if present).
        sha256: hex digest of the file.
        shipped: whether it is one of the package's own files (and was verified).
    """

    path: Path
    name: str | None
    precision: str | None
    sha256: str
    shipped: bool


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_checksums(directory: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    f = directory / CHECKSUM_FILE
    if not f.is_file():
        return sums
    for line in f.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def shipped_path(name: str, precision: str = "float32") -> Path:
    """Where the shipped file for ``name``/``precision`` is (whether or not it exists)."""
    _check_name(name, precision)
    return MODEL_DIR / f"{name}-{precision}.onnx"


def _check_name(name: str, precision: str) -> None:
    if name not in MODEL_NAMES:
        raise ValueError(
            f"unknown model {name!r}; the shipped models are {', '.join(MODEL_NAMES)} "
            "(or pass the path of a facelite-exported .onnx file)"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")


def _looks_like_path(model: str | os.PathLike[str]) -> bool:
    if isinstance(model, os.PathLike):
        return True
    return model.endswith(".onnx") or os.sep in model or (os.altsep is not None and os.altsep in model)


def resolve_model(model: str | os.PathLike[str], precision: str = "float32") -> ResolvedModel:
    """Turn a ``model=`` argument into a verified file.

    Args:
        model: a shipped model name (see :data:`MODEL_NAMES`) or a path to a ``.onnx`` file.
        precision: ``"float32"`` or ``"int8"``; only used for shipped names.

    Raises:
        ValueError: unknown name or precision.
        ModelNotFoundError: the shipped file is not in this installation, or no such path.
        ModelChecksumError: a shipped file does not match ``SHA256SUMS``.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"model must be a name or a path, got {type(model).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if _looks_like_path(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: no such model file")
        return ResolvedModel(path, None, None, file_sha256(path), shipped=False)
    _check_name(str(model), precision)
    path = shipped_path(str(model), precision)
    if not path.is_file():
        raise ModelNotFoundError(
            f"the shipped model file {path.name} is not in this installation of facelite "
            f"(looked in {MODEL_DIR}): the installation is incomplete; reinstall facelite, or use the "
            "path of a facelite-exported .onnx file as the model (FaceDetector(model=PATH) or "
            "facelite detect --model PATH). `facelite models` checks every shipped file."
        )
    digest = file_sha256(path)
    expected = _read_checksums(MODEL_DIR).get(path.name)
    if expected is None:
        raise ModelChecksumError(f"{path.name} is not listed in {MODEL_DIR / CHECKSUM_FILE}; the package is incomplete")
    if digest != expected:
        raise ModelChecksumError(
            f"{path} is corrupt or was replaced: its SHA-256 is {digest[:16]}..., "
            f"{CHECKSUM_FILE} says {expected[:16]}...; reinstall facelite"
        )
    return ResolvedModel(path, str(model), precision, digest, shipped=True)


def available_models() -> list[tuple[str, str, bool]]:
    """``(name, precision, present)`` for every shipped name and precision."""
    return [(n, p, shipped_path(n, p).is_file()) for n in MODEL_NAMES for p in PRECISIONS]


def update_checksums(directory: str | os.PathLike[str] = MODEL_DIR) -> Path:
    """Rewrite ``SHA256SUMS`` in ``directory`` for every ``*.onnx`` there; returns its path."""
    d = Path(directory)
    lines = [f"{file_sha256(p)}  {p.name}" for p in sorted(d.glob("*.onnx"))]
    out = d / CHECKSUM_FILE
    out.write_text("".join(line + "\n" for line in lines))
    return out

