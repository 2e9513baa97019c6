"""int8 quantization of an exported float32 facelite ONNX model (ONNX Runtime's quantizer).

- :func:`quantize_static_int8`: QDQ format, per-channel int8 weights, uint8 activations,
  calibrated on real images preprocessed exactly as at run time; the score heads and what
  follows the heads stay float (see there). The shipped int8 models.
- :func:`quantize_dynamic_int8`: ONNX Runtime's dynamic quantization (int8 weights,
  activations quantized on the fly), the equivalent of the paper's "dynamic optimization".
  Kept for the benchmark tables: on x86 it makes this convolutional network slower.

Both copy the float model's metadata (the :class:`~facelite.spec.ModelSpec`) into the result.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..imageio import load_image
from ..preprocess import _round_up, preprocess
from ..spec import ModelSpec
from .onnx import INPUT_NAME, add_metadata, read_metadata

CALIBRATION_CHUNK = 8
"""Images per calibration pass: what the calibrator holds in memory at once."""


def _copy_metadata(src: Path, dst: Path, precision: str) -> None:
    proto = onnx.load(str(dst))
    add_metadata(proto, {**read_metadata(src), "facelite.precision": precision})
    onnx.save(proto, str(dst))


class ImageCalibrationReader(CalibrationDataReader):
    """Feeds images through facelite's own preprocessing, one (1, 3, H, W) tensor at a time.

    ``square``: place each tensor at the top-left of a zero (1, 3, S, S) canvas, S = the input
    size rounded up to the pad multiple (the zeros are the run-time padding's). The histogram
    calibrators (entropy, percentile) stack the outputs of all images, so these need one shape;
    min-max reduces each image on its own and takes them as they are.
    """

    def __init__(self, images: Iterable[str | Path], spec: ModelSpec, input_size: int, square: bool = False) -> None:
        self._paths = list(images)
        self._spec = spec
        self._size = input_size
        self._square = square
        self._range = (0, len(self._paths))
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._paths)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Feed only images ``start_index:end_index`` (ONNX Runtime calibrates chunk by chunk)."""
        self._range = (start_index, end_index)
        self._it = None

    def _gen(self) -> Iterator[dict[str, np.ndarray]]:
        side = _round_up(self._size, self._spec.pad_multiple)
        for p in self._paths[self._range[0] : self._range[1]]:
            tensor, _ = preprocess(load_image(p), self._spec, self._size)
            if self._square:
                canvas = np.zeros((1, 3, side, side), np.float32)
                canvas[:, :, : tensor.shape[2], : tensor.shape[3]] = tensor
                tensor = canvas
            yield {INPUT_NAME: tensor}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._gen()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def quantize_static_int8(float_model: str | Path, out: str | Path, calibration_images: list[str | Path],
                         input_size: int = 640, method: str = "minmax", float_scores: bool = True) -> Path:
    """Static QDQ int8 (per-channel weights) calibrated on ``calibration_images``.

    ``float_scores``: the score heads' 1x1 convolutions and every node after the heads (the
    concatenations, the softmax) stay float, so the scores are not cut to 256 levels of one
    tensor-wide range and the box and landmark offsets leave the network without a last
    requantization. The box and landmark heads stay int8. Costs ~0.2 ms at 320 and ~0.8 ms at
    640 of 5-36 ms (one thread), and keeps int8 within 0.5 AP point of float32 with box voting
    (docs/TRAINING.md). ``False``: the whole network int8 (the int8 files shipped before
    2026-12-05).
    """
    float_model, out = Path(float_model), Path(out)
    if len(calibration_images) == 0:
        raise ValueError("static quantization needs calibration images")
    spec = ModelSpec.from_metadata(read_metadata(float_model))
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ValueError(f"calibration method must be one of {sorted(methods)}")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_model), str(pre), skip_symbolic_shape=True)
        excluded = _score_heads_and_tail(onnx.load(str(pre))) if float_scores else []
        quantize_static(
            str(pre), str(out), ImageCalibrationReader(calibration_images, spec, input_size, square=method != "minmax"),
            quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, calibrate_method=methods[method], nodes_to_exclude=excluded,
            # the calibrators keep every intermediate output of the images fed in one go (a few GB
            # per 10 images at 640 px): feed them in chunks, whose statistics are merged
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                           "CalibStridedMinMax": _chunk(len(calibration_images))},
        )
    _copy_metadata(float_model, out, "int8")
    return out


def _chunk(n: int, most: int = CALIBRATION_CHUNK) -> int:
    """The largest chunk size up to ``most`` that divides ``n`` (ONNX Runtime's strided calibration
    needs equal chunks)."""
    return max(k for k in range(1, min(most, n) + 1) if n % k == 0)


def _score_heads_and_tail(model: onnx.ModelProto) -> list[str]:
    """Names of the score heads' nodes (``cls_heads.*``: conv, transpose, reshape) and of every
    node downstream of any head (the output concatenations, softmax, gather): the nodes
    :func:`quantize_static_int8` leaves float. The box and landmark heads' own nodes are not in it."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    heads = [n for n in model.graph.node if n.op_type == "Conv" and "_heads." in n.name]
    if not heads:
        raise ValueError("no head convolutions (nodes named '*_heads.*') in the model: not a facelite export?")
    downstream: set[str] = set()
    stack = list(heads)
    while stack:
        node = stack.pop()
        if node.name in downstream:
            continue
        downstream.add(node.name)
        for name in node.output:
            stack.extend(consumers.get(name, []))
    return sorted(n for n in downstream if "cls_heads." in n or "_heads." not in n)


def _depthwise_convs(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def quantize_dynamic_int8(float_model: str | Path, out: str | Path) -> Path:
    """ONNX Runtime dynamic int8 (the paper's "dynamic" conversion); for comparison only.

    Depthwise convolutions stay float: ONNX Runtime's dynamic ``ConvInteger`` path destroys them
    (batch-norm-folded depthwise kernels; the outputs of the trained network become uncorrelated
    with the float ones, AP ~0). TensorFlow's dynamic-range quantization, the paper's, leaves them
    float too (it skips weight tensors under 1,024 elements, which a 3x3 depthwise kernel is).
    """
    float_model, out = Path(float_model), Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(float_model), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=_depthwise_convs(onnx.load(str(pre))))
    _copy_metadata(float_model, out, "dynamic-int8")
    return out
