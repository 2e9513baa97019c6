"""TFLite backend (optional): LiteRT's interpreter with XNNPACK on the CPU.

Needs the ``tflite`` extra's run-time part, ``ai-edge-litert`` (``pip install 'facelite[tflite]'``);
the rest of facelite never imports it. The ``.tflite`` files come from
:func:`facelite.export.tflite.export_tflite`: input ``(1, 3, S_h, S_w)`` float32 (NCHW, as the
PyTorch network), outputs ``scores``, ``boxes``, ``landmarks`` in that order, and the
:class:`~facelite.spec.ModelSpec` in the flatbuffer's metadata (key ``facelite.spec``), like
the ONNX files.

TFLite models have a fixed input shape. A smaller network input (facelite pads images only to
a multiple of 32) is placed at the top-left of a zero tensor of the model's shape, the same
zero padding the preprocessing itself adds; the outputs of the anchors that lie inside the
smaller input are then picked out, so :meth:`TFLiteBackend.run` returns exactly the anchors the
caller expects. Near the bottom/right edge of the smaller input the network sees explicit zeros
instead of its own padding, so scores there can differ slightly from the ONNX model run at the
smaller shape.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numpy as np

from ..spec import ModelSpec
from .base import check_outputs

__all__ = ["TFLiteBackend", "read_metadata", "tflite_runtime_available"]


def tflite_runtime_available() -> bool:
    """Whether ``ai-edge-litert`` (LiteRT's interpreter) is installed."""
    from importlib.util import find_spec

    try:
        return find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):
        return False


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ModuleNotFoundError:
        raise RuntimeError(
            "running .tflite models needs LiteRT: pip install 'facelite[tflite]' (ai-edge-litert)"
        ) from None
    return schema


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The key/value metadata stored in a ``.tflite`` flatbuffer (UTF-8 values only)."""
    schema = _schema()
    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    out: dict[str, str] = {}
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        name = md.Name().decode() if md.Name() else ""
        data = model.Buffers(md.Buffer())
        raw = data.DataAsNumpy()
        if isinstance(raw, np.ndarray):
            try:
                out[name] = raw.tobytes().decode("utf-8")
            except UnicodeDecodeError:
                continue  # binary metadata (e.g. the converter's own)
    return out


def _quant(detail: dict) -> tuple[float, int, type] | None:
    """``(scale, zero_point, dtype)`` of an integer input/output tensor, ``None`` for float."""
    dtype = np.dtype(detail["dtype"]).type
    if dtype in (np.float32, np.float16, np.float64):
        return None
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        params = detail.get("quantization_parameters", {})
        scales, zeros = params.get("scales", []), params.get("zero_points", [])
        if len(scales) != 1:
            raise ValueError(f"unsupported quantization of model input/output: {params}")
        scale, zero = float(scales[0]), int(zeros[0])
    return float(scale), int(zero), dtype


class TFLiteBackend:
    """A facelite ``.tflite`` model in LiteRT's interpreter (XNNPACK delegate, CPU).

    Args:
        path: the ``.tflite`` file.
        threads: CPU threads (``None``: all cores; ``1``: single-threaded).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a facelite TFLite model.
        RuntimeError: LiteRT is not installed.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.input_hw = (0, 0)
        self.spec = None  # type: ignore[assignment]
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        _schema()
        from ai_edge_litert.interpreter import Interpreter

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.metadata = read_metadata(self.path)
        try:
            self.spec: ModelSpec = ModelSpec.from_metadata(self.metadata)
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from None
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads or os.cpu_count() or 1)
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError
            raise ValueError(f"{self.path}: LiteRT cannot load this model: {exc}") from None
        sigs = self.interpreter.get_signature_list()
        if len(sigs) != 1:
            raise ValueError(f"{self.path}: expected one signature, got {list(sigs)}")
        key, sig = next(iter(sigs.items()))
        if len(sig["inputs"]) != 1 or len(sig["outputs"]) != 3:
            raise ValueError(f"{self.path}: expected 1 input and 3 outputs, got {sig}")
        self._runner = self.interpreter.get_signature_runner(key)
        self._input_name = sig["inputs"][0]
        self._output_names = sorted(sig["outputs"])  # output_0..2: scores, boxes, landmarks
        shape = tuple(int(d) for d in self._runner.get_input_details()[self._input_name]["shape"])
        if len(shape) != 4 or shape[:2] != (1, 3):
            raise ValueError(f"{self.path}: expected an input of shape (1, 3, H, W), got {shape}")
        self.input_hw: tuple[int, int] = (shape[2], shape[3])
        self._buffer = np.zeros(shape, dtype=np.float32)
        # full-integer models may take and give int8: (scale, zero point) to convert, else None
        detail = self._runner.get_input_details()[self._input_name]
        self._in_q = _quant(detail)
        out_details = self._runner.get_output_details()
        self._out_q = [_quant(out_details[n]) for n in self._output_names]
        self._last_hw: tuple[int, int] | None = None
        self._lock = threading.Lock()  # one interpreter and input buffer: one call at a time
        self._index_cache: dict[tuple[int, int], np.ndarray | None] = {}

    def _index(self, h: int, w: int) -> np.ndarray | None:
        """Indices of the model's anchors that belong to an ``h`` x ``w`` input (``None``: all)."""
        key = (h, w)
        if key not in self._index_cache:
            if key == self.input_hw:
                self._index_cache[key] = None
            else:
                a = self.spec.anchors_per_location
                parts, offset = [], 0
                for s in self.spec.strides:
                    rows, cols = math.ceil(self.input_hw[0] / s), math.ceil(self.input_hw[1] / s)
                    r, c = math.ceil(h / s), math.ceil(w / s)
                    grid = (np.arange(r)[:, None, None] * cols + np.arange(c)[None, :, None]) * a + np.arange(a)
                    parts.append(offset + grid.ravel())
                    offset += rows * cols * a
                self._index_cache[key] = np.concatenate(parts)
        return self._index_cache[key]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """See :meth:`facelite.runtime.base.Backend.run`; inputs up to the model's fixed shape."""
        if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a float32 (B, 3, H, W) batch, got {batch.dtype} {batch.shape}")
        h, w = batch.shape[2:]
        mh, mw = self.input_hw
        if h > mh or w > mw:
            raise ValueError(
                f"{self.path.name} takes network inputs up to {mh}x{mw}, got {h}x{w}: use an input_size of at "
                f"most {min(mh, mw)} with this file (TFLite models have a fixed input shape)"
            )
        with self._lock:
            return self._run_locked(batch, h, w)

    def _run_locked(self, batch: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._last_hw != (h, w):
            self._buffer.fill(0.0)
            self._last_hw = (h, w)
        idx = self._index(h, w)
        outs: list[list[np.ndarray]] = [[], [], []]
        for i in range(batch.shape[0]):
            self._buffer[0, :, :h, :w] = batch[i]
            x = self._buffer
            if self._in_q is not None:
                scale, zero, dtype = self._in_q
                info = np.iinfo(dtype)
                x = np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(dtype)
            result = self._runner(**{self._input_name: x})
            for k, name in enumerate(self._output_names):
                o = result[name][0]
                if self._out_q[k] is not None:
                    scale, zero, _ = self._out_q[k]
                    o = (o.astype(np.float32) - zero) * np.float32(scale)
                outs[k].append(o if idx is None else o[idx])
        return check_outputs(tuple(np.stack(o) for o in outs), batch.shape[0], self.spec.num_landmarks)

    def __repr__(self) -> str:
        name = self.spec.name if self.spec is not None else None
        return f"TFLiteBackend({str(self.path)!r}, threads={self.threads}, input={self.input_hw}, spec={name!r})"
