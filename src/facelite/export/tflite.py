"""Export to TFLite, the paper's mobile format (optional ``tflite`` extra).

Three kinds, as the paper's conversion and its usual follow-up:

- ``float32``: the network as it is (LiteRT's ``litert-torch`` converts the PyTorch module);
- ``dynamic-int8``: *dynamic-range* quantization, the paper's "dynamic optimization": int8
  weights (per channel), float activations quantized on the fly (``ai-edge-quantizer``'s
  ``dynamic_wi8_afp32`` recipe);
- ``int8``: full integer, int8 weights and activations, calibrated on real images through
  facelite's own preprocessing (``static_wi8_ai8``); the input stays float32. As in
  :func:`facelite.export.quantize.quantize_static_int8`, the score heads' convolutions, every
  op after the heads (reshapes, concatenations, the softmax) and the outputs stay float by
  default, so scores are not cut to 256 levels (``float_scores=False``: everything int8, the
  outputs too; :class:`facelite.runtime.tflite.TFLiteBackend` dequantizes them).

TFLite models have a fixed input shape: one file per input size (``S x S``, the largest padded
input of that size); :class:`facelite.runtime.tflite.TFLiteBackend` runs smaller inputs in it.
The source is any facelite float32 ONNX file: :func:`torch_model_from_onnx` rebuilds the
PyTorch network from its (batch-norm-folded) weights, so shipped models convert without their
training checkpoint. The :class:`~facelite.spec.ModelSpec` goes into the flatbuffer's metadata.

Install (in a virtual environment where ``torch==2.13.0`` was installed first, see DEVELOPERS.md)::

    pip install 'facelite[tflite]'      # litert-torch, ai-edge-quantizer, ai-edge-litert
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "KINDS",
    "PRECISION_METADATA_KEY",
    "export_tflite",
    "float_score_ops",
    "torch_model_from_onnx",
    "unavailable_reason",
    "write_metadata",
]

KINDS: tuple[str, ...] = ("float32", "dynamic-int8", "int8")
PRECISION_METADATA_KEY = "facelite.precision"
_NEEDED = ("torch", "litert_torch", "ai_edge_quantizer", "ai_edge_litert", "onnx")


def unavailable_reason() -> str | None:
    """Why TFLite export cannot run here (``None`` when it can)."""
    from importlib.util import find_spec

    missing = []
    for mod in _NEEDED:
        try:
            if find_spec(mod) is None:
                missing.append(mod)
        except (ImportError, ValueError):
            missing.append(mod)
    if missing:
        return (
            f"the tflite extra is not installed (missing {', '.join(missing)}): "
            "pip install torch==2.13.0 && pip install 'facelite[tflite]'"
        )
    return None


# --------------------------------------------------------------------------- ONNX -> PyTorch


def _module_path(node_name: str) -> str:
    """``/model/fpn/laterals.0/laterals.0.0/Conv`` -> ``fpn.laterals.0.0`` (the exporter's scope names:
    each scope is a child's name, qualified relative to its parent when it extends the previous one)."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if not parts or parts[0] != "model":
        raise ValueError(f"unexpected node name {node_name!r}")
    path: list[str] = []
    for seg in parts[1:]:
        if path and seg.startswith(path[-1] + "."):
            path[-1] = seg
        else:
            path.append(seg)
    return ".".join(path)


def torch_model_from_onnx(path: str | os.PathLike[str]) -> Any:
    """The :class:`~facelite.nn.RetinaFace` whose export ``path`` is (float32 facelite ONNX file).

    Batch norm is folded into the exported convolutions; the rebuilt network gives each
    convolution its folded weight and bias and replaces its batch norm by an identity.

    Raises:
        ValueError: a convolution of the file has no counterpart in the network (not a facelite
            export, or a different architecture).
    """
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn

    from ..nn.retinaface import RetinaFace
    from ..spec import ModelSpec

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = ModelSpec.from_metadata(meta)
    model = RetinaFace(spec).eval()
    # fold: conv + batch norm -> conv with bias, identity
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                if conv.bias is None:
                    conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
                seq._modules[b] = nn.Identity()
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:  # shared weights are Identity nodes of initializers
        if node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    modules = dict(model.named_modules())
    loaded = set()
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        name = _module_path(node.name)
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"{path}: convolution {node.name} has no counterpart ({name}) in the network")
        w = consts[node.input[1]]
        b = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0], np.float32)
        if tuple(conv.weight.shape) != w.shape:
            raise ValueError(f"{path}: {name} has weight shape {w.shape}, the network {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
            conv.bias.copy_(torch.from_numpy(np.array(b, dtype=np.float32)))
        loaded.add(name)
    convs = {n for n, m in modules.items() if isinstance(m, nn.Conv2d)}
    if loaded != convs:
        raise ValueError(f"{path}: no weights for {sorted(convs - loaded)[:3]}")
    return model


# --------------------------------------------------------------------------- metadata


def write_metadata(path: str | os.PathLike[str], metadata: dict[str, str]) -> None:
    """Add (replace) UTF-8 key/value entries in a ``.tflite`` file's metadata."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    raw = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(raw, 0))
    for buf in model.buffers or []:
        # data stored after the flatbuffer (offset/size, as the quantizer writes it): inline it,
        # since re-packing the flatbuffer moves everything
        if getattr(buf, "offset", 0) and buf.offset > 1:
            buf.data = np.frombuffer(raw[buf.offset : buf.offset + buf.size], dtype=np.uint8)
            buf.offset, buf.size = 0, 0
    model.metadata = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) not in metadata]
    for key, value in metadata.items():
        buf = schema.BufferT()
        buf.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        model.buffers.append(buf)
        md = schema.MetadataT()
        md.name = key
        md.buffer = len(model.buffers) - 1
        model.metadata.append(md)
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    from ..fileio import write_atomic

    write_atomic(path, bytes(builder.Output()))


# --------------------------------------------------------------------------- export


def float_score_ops(tflite_model: str | os.PathLike[str]) -> list[tuple[int, str, str]]:
    """The ops of a float ``.tflite`` detector that ``int8`` export keeps float:
    ``(op index, op name, scope)`` (the scope as ai-edge-quantizer names it: the output tensor
    names, each followed by ``;``).

    Found from the graph, not from names: walking up from each model output, every op until a
    ``CONV_2D`` is the tail (reshapes, concatenations, softmax, slice); the ``CONV_2D`` ops
    reached from the output whose tail has a ``SOFTMAX`` are the score heads. The box and
    landmark heads stay int8."""
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfu

    model = tfu.read_model(Path(tflite_model))
    graph = model.subgraphs[0]
    producer = {t: i for i, op in enumerate(graph.operators) for t in op.outputs}

    def code(i: int) -> int:
        return model.operatorCodes[graph.operators[i].opcodeIndex].builtinCode

    keep: set[int] = set()
    for out in graph.outputs:
        tail, heads, todo = set(), set(), [producer[out]] if out in producer else []
        while todo:
            i = todo.pop()
            if i in tail or i in heads:
                continue
            if code(i) == qtyping.BuiltinOperator.CONV_2D:
                heads.add(i)
                continue
            tail.add(i)
            todo += [producer[t] for t in graph.operators[i].inputs if t in producer]
        keep |= tail
        if any(code(i) == qtyping.BuiltinOperator.SOFTMAX for i in tail):
            if not heads:
                raise ValueError("no score head convolutions above the softmax")
            keep |= heads
    if not any(code(i) == qtyping.BuiltinOperator.SOFTMAX for i in keep):
        raise ValueError(f"{tflite_model}: no softmax on the way to an output; not a facelite detector?")
    return [(i, tfu.get_op_name_by_index(model, 0, i), tfu.get_op_scope(graph.operators[i], graph.tensors))
            for i in sorted(keep)]


def _calibration_tensors(images: Sequence[str | os.PathLike[str]], spec: Any, input_hw: tuple[int, int]) -> list[np.ndarray]:
    from ..imageio import load_image
    from ..preprocess import preprocess

    out = []
    for p in images:
        t, _ = preprocess(load_image(p), spec, max(input_hw))
        full = np.zeros((1, 3, *input_hw), np.float32)  # the backend's padding to the fixed shape
        h, w = min(t.shape[2], input_hw[0]), min(t.shape[3], input_hw[1])
        full[:, :, :h, :w] = t[:, :, :h, :w]
        out.append(full)
    return out


def export_tflite(
    model: Any,
    out: str | os.PathLike[str],
    kind: str = "float32",
    input_hw: tuple[int, int] = (640, 640),
    calibration_images: Sequence[str | os.PathLike[str]] = (),
    float_model: str | os.PathLike[str] | None = None,
    float_scores: bool = True,
) -> Path:
    """Convert ``model`` (a :class:`~facelite.nn.RetinaFace`, eval mode) to a ``.tflite`` file.

    Args:
        kind: ``float32``, ``dynamic-int8`` or ``int8`` (see the module doc).
        input_hw: the file's fixed input shape (multiples of the spec's ``pad_multiple``).
        calibration_images: image files for ``int8`` (preprocessed as at run time).
        float_model: an existing float32 ``.tflite`` of the same model and shape to quantize
            instead of converting again (saves the conversion).
        float_scores: ``int8`` only: keep the score heads and the ops after the heads float
            (:func:`float_score_ops`); ``False`` quantizes everything.

    Returns:
        ``out``, with the spec and ``facelite.precision`` (``tflite-<kind>``) in its metadata.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    why = unavailable_reason()
    if why:
        raise RuntimeError(why)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = model.spec
    if any(v % spec.pad_multiple for v in input_hw):
        raise ValueError(f"input_hw {input_hw} must be multiples of {spec.pad_multiple}")
    tmp_float = out.with_name(f".{out.stem}.float.tflite")
    if float_model is None:
        import litert_torch
        import torch

        from ..nn.retinaface import InferenceWrapper

        wrapper = InferenceWrapper(model).eval().float()
        edge = litert_torch.convert(wrapper, (torch.zeros(1, 3, *input_hw),))
        edge.export(str(tmp_float))
        float_model = tmp_float
    float_model = Path(float_model)
    try:
        if kind == "float32":
            if float_model != out:
                out.write_bytes(float_model.read_bytes())
        else:
            from ai_edge_quantizer import quantizer, recipe

            qt = quantizer.Quantizer(str(float_model))
            if kind == "dynamic-int8":
                qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
                result = qt.quantize()
            else:
                if not calibration_images:
                    raise ValueError("int8 (full integer) quantization needs calibration images")
                qt.load_quantization_recipe(recipe.static_wi8_ai8())
                if float_scores:
                    import re

                    from ai_edge_quantizer import qtyping

                    for _, _, scope in float_score_ops(float_model):
                        qt.update_quantization_recipe(regex=f"^{re.escape(scope)}$",
                                                      operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                                      algorithm_key="no_quantize")
                    # the graph's outputs too: else they are requantized to int8 at the very end
                    qt.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName.OUTPUT,
                                                  algorithm_key="no_quantize")
                from ai_edge_litert.interpreter import Interpreter

                sig_key, sig = next(iter(Interpreter(model_path=str(float_model)).get_signature_list().items()))
                data = [{sig["inputs"][0]: t} for t in _calibration_tensors(calibration_images, spec, input_hw)]
                result = qt.quantize(qt.calibrate({sig_key: data}))
            if out.exists():
                out.unlink()
            result.export_model(str(out))
    finally:
        if tmp_float.exists() and tmp_float != out:
            tmp_float.unlink()
    write_metadata(out, {**spec.to_metadata(), PRECISION_METADATA_KEY: f"tflite-{kind}", "producer": "facelite"})
    return out
