"""ONNX Runtime backend (CPU).

The model must have been written by :func:`facelite.export.onnx.export_onnx` (or a
tool that keeps its contract): input ``input`` float32 ``(B, 3, H, W)``, outputs
``scores``, ``boxes``, ``landmarks``, and the :class:`~facelite.spec.ModelSpec` in the
metadata. The geometry is always read from the file, never assumed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..spec import ModelSpec
from .base import check_outputs

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "OnnxBackend", "session_options"]

INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes", "landmarks")


def session_options(threads: int | None) -> ort.SessionOptions:
    """Session options: all graph optimisations; ``threads`` intra-op threads (``None``: ORT default).

    ``threads=1`` is strictly single-threaded: one intra-op thread (the caller's), one
    inter-op thread, sequential execution, and no spin-waiting.
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        opts.intra_op_num_threads = threads
        if threads == 1:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class OnnxBackend:
    """A facelite ONNX model in an ONNX Runtime CPU session.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op CPU threads (``None``: ONNX Runtime's default, one per core;
            ``1``: strictly single-threaded).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a facelite model (no spec metadata, wrong inputs/outputs),
            its metadata is malformed or does not fit the network's outputs, its graph does not
            match its checksum (:mod:`facelite.modelfile`: a corrupted file), or ONNX Runtime
            cannot load it. Every message is one line naming the file.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        self.threads = threads
        from ..modelfile import verify_checksum

        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        self.graph_sha256 = verify_checksum(data, str(self.path))  # before ONNX Runtime parses it
        del data
        opts = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: ONNX Runtime cannot load this model: {exc}") from None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            self.spec: ModelSpec = ModelSpec.from_metadata(self.metadata)
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or sorted(outputs) != sorted(OUTPUT_NAMES):
            raise ValueError(
                f"{self.path}: expected input {INPUT_NAME!r} and outputs {list(OUTPUT_NAMES)}, "
                f"got inputs {inputs} and outputs {outputs}"
            )
        self._check_geometry()

    def _check_geometry(self) -> None:
        """Run the network once on a small blank input and check that its outputs have the anchor
        count the spec's strides and anchor sizes give (a spec that does not describe the network
        would decode every box wrongly)."""
        from ..anchors import num_anchors

        shape = self.session.get_inputs()[0].shape
        fixed = len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:])
        h, w = (int(shape[2]), int(shape[3])) if fixed else (self.spec.pad_multiple, self.spec.pad_multiple)
        if h * w > 4096 * 4096:
            return
        try:
            scores, _, _ = self.run(np.zeros((1, 3, h, w), np.float32))
        except Exception as exc:  # onnxruntime's own types, or check_outputs' RuntimeError
            raise ValueError(f"{self.path}: the network does not run on a {w}x{h} input: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
        expected = num_anchors(self.spec, h, w)
        if scores.shape[1] != expected:
            raise ValueError(
                f"{self.path}: the metadata does not fit the network: a {w}x{h} input gives {scores.shape[1]} "
                f"anchors, the spec's strides {list(self.spec.strides)} and anchor sizes give {expected}"
            )

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`facelite.runtime.base.Backend.run`."""
        if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a float32 (B, 3, H, W) batch, got {batch.dtype} {batch.shape}")
        outs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(batch)})
        return check_outputs((outs[0], outs[1], outs[2]), batch.shape[0], self.spec.num_landmarks)

    def __repr__(self) -> str:
        return f"OnnxBackend({str(self.path)!r}, threads={self.threads}, spec={self.spec.name!r})"
