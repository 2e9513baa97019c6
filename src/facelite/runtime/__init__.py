"""Inference backends behind one small interface (:class:`~facelite.runtime.base.Backend`).

- :class:`~facelite.runtime.onnx.OnnxBackend`: ONNX Runtime on the CPU (the default).
- :class:`~facelite.runtime.tflite.TFLiteBackend`: LiteRT's interpreter (optional ``tflite`` extra).

A new backend (e.g. TFLite) implements :class:`Backend` and gets a branch in
:func:`load_backend`, keyed on the model file's extension.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Backend, check_outputs

__all__ = ["Backend", "check_outputs", "load_backend"]


def load_backend(path: str | os.PathLike[str], threads: int | None = None) -> Backend:
    """The backend for a model file, chosen by its extension (``.onnx`` -> ONNX Runtime,
    ``.tflite`` -> LiteRT).

    Args:
        path: the model file.
        threads: CPU threads for the network (``None``: the backend's default, all cores).
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        from .onnx import OnnxBackend

        return OnnxBackend(path, threads=threads)
    if suffix == ".tflite":
        from .tflite import TFLiteBackend, tflite_runtime_available

        if not tflite_runtime_available():
            raise ValueError(
                f"{path}: unsupported model file type '.tflite' in this installation: running TFLite models "
                "needs LiteRT (pip install 'facelite[tflite]')"
            )
        return TFLiteBackend(path, threads=threads)
    raise ValueError(
        f"{path}: unsupported model file type {suffix or '(none)'!r}; facelite runs .onnx files "
        "(and .tflite files with the tflite extra)"
    )
