"""What the bench reads out of an ONNX graph: parameters, multiply-accumulates, and the
sub-models of the network's stages (backbone, FPN, SSH + heads).

Everything here works on the exported file, not on the PyTorch module, so the counts are
those of the deployed network (batch norm already folded into the convolutions).

Stages are recognised by the node names that the TorchScript ONNX exporter
(:func:`facelite.export.onnx.export_onnx`, ``dynamo=False``) derives from the module
path: ``/model/backbone/...``, ``/model/fpn/...``, and everything after them
(``/model/ssh.*``, ``/model/*_heads.*``, the final softmax). The stage boundaries are the
tensors produced by one stage and consumed by a later one; :func:`split_stages` cuts the
graph there with :class:`onnx.utils.Extractor`, so running the sub-models one after the
other computes exactly what the whole graph computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference, utils

__all__ = [
    "STAGES",
    "StageCut",
    "count_macs",
    "count_params",
    "find_stage_boundaries",
    "split_stages",
]

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("backbone", ("/model/backbone/",)),
    ("fpn", ("/model/fpn/",)),
    ("ssh_heads", ("",)),  # everything else: SSH modules, heads, softmax and concatenation
)
"""(stage name, node-name prefixes) in execution order; the last stage takes the rest."""

_CONV_OPS = ("Conv", "ConvInteger", "QLinearConv")


def _load(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def _fixed_input(model: onnx.ModelProto, height: int, width: int) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, height, width)):
        d.ClearField("dim_param")
        d.dim_value = v
    return shape_inference.infer_shapes(m, data_prop=True)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...] | None]:
    """Static shapes of every tensor whose shape is known (initializers, value_info, outputs)."""
    out: dict[str, tuple[int, ...] | None] = {}
    for init in model.graph.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    # Identity / DequantizeLinear of an initializer keep its shape (shared or quantized weights).
    for node in model.graph.node:
        if node.op_type in ("Identity", "DequantizeLinear") and node.input[0] in out and node.output[0] not in out:
            out[node.output[0]] = out[node.input[0]]
    return out


def count_macs(model: str | Path | onnx.ModelProto, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions for one ``height`` x ``width`` input.

    Per convolution: ``k_h * k_w * C_in / groups * C_out * H_out * W_out`` (the weight tensor
    is ``(C_out, C_in / groups, k_h, k_w)``). Other operations (additions, resizing, softmax)
    are a fraction of a percent of the total and are not counted.

    Raises:
        ValueError: a convolution's output or weight shape cannot be inferred.
    """
    m = _fixed_input(_load(model), height, width)
    shapes = _shapes(m)
    total = 0
    for node in m.graph.node:
        if node.op_type not in _CONV_OPS:
            continue
        w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        w, y = shapes.get(w_name), shapes.get(node.output[0])
        if w is None or y is None:
            raise ValueError(f"cannot infer the shapes of {node.name or node.op_type} ({w_name}: {w}, out: {y})")
        total += int(np.prod(w)) * int(np.prod(y[2:])) * int(y[0])
    return total


def count_params(model: str | Path | onnx.ModelProto) -> int:
    """Learned parameters of the deployed network: the elements of every convolution's weight
    and bias (batch norm is folded into them by the exporter)."""
    m = _load(model)
    shapes = _shapes(m)
    seen: set[str] = set()
    total = 0
    for node in m.graph.node:
        if node.op_type == "Conv":
            names = list(node.input[1:3])
        elif node.op_type == "ConvInteger":
            names = [node.input[1]]
        elif node.op_type == "QLinearConv":
            names = [node.input[3]] + ([node.input[8]] if len(node.input) > 8 else [])
        else:
            continue
        for n in names:
            if n and n not in seen and shapes.get(n) is not None:
                seen.add(n)
                total += int(np.prod(shapes[n]))
    if any(n.op_type == "ConvInteger" for n in m.graph.node):
        # dynamic quantization moves the conv biases into separate Add nodes
        for node in m.graph.node:
            if node.op_type == "Add":
                for n in node.input:
                    s = shapes.get(n)
                    if n not in seen and s is not None and any(i.name == n for i in m.graph.initializer) and len(s) >= 1:
                        seen.add(n)
                        total += int(np.prod(s))
    return total


def _stage_of(name: str) -> int:
    for i, (_, prefixes) in enumerate(STAGES[:-1]):
        if any(name.startswith(p) for p in prefixes):
            return i
    return len(STAGES) - 1


def find_stage_boundaries(model: str | Path | onnx.ModelProto) -> list[list[str]]:
    """Tensor names at the end of each stage but the last.

    Returns one list per boundary (``len(STAGES) - 1`` lists): the tensors computed by the
    stages up to it and read by a later stage. Constants, and nodes that compute only from
    initializers (shared weights), belong to no stage.

    Raises:
        ValueError: the graph does not have the expected named stages (not a facelite export).
    """
    m = _load(model)
    g = m.graph
    constant = {i.name for i in g.initializer}
    producer_stage: dict[str, int] = {}
    nodes = []
    for node in g.node:
        free = all((not x) or x in constant for x in node.input)  # Constant, Identity of a weight, ...
        if free:
            constant.update(node.output)
            continue
        s = _stage_of(node.name)
        nodes.append((node, s))
        for o in node.output:
            producer_stage[o] = s
    found = {s for _, s in nodes}
    if found != set(range(len(STAGES))):
        names = [STAGES[s][0] for s in sorted(found)]
        raise ValueError(
            f"cannot find the network's stages in the graph (found {names}); the stage split needs a model "
            "exported by facelite.export.onnx.export_onnx (node names /model/backbone/..., /model/fpn/...)"
        )
    boundaries: list[list[str]] = []
    for k in range(len(STAGES) - 1):
        cut: list[str] = []
        for node, s in nodes:
            if s <= k:
                continue
            for x in node.input:
                if x and x not in constant and producer_stage.get(x, -1) <= k and x not in cut:
                    if x not in producer_stage:  # the graph input
                        raise ValueError(f"stage {STAGES[s][0]} reads the graph input {x!r} directly")
                    cut.append(x)
        boundaries.append(cut)
    return boundaries


@dataclass(frozen=True)
class StageCut:
    """One stage as a stand-alone model: its ``inputs`` and ``outputs`` are tensor names of the whole graph."""

    name: str
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def split_stages(
    model_path: str | Path, out_dir: str | Path, output_names: Sequence[str] = ("scores", "boxes", "landmarks")
) -> list[StageCut]:
    """Cut the model into one sub-model per stage (see :data:`STAGES`), written to ``out_dir``.

    Stage *k* reads the tensors of boundary *k-1* (the first reads the graph input) and writes
    those of boundary *k* (the last writes the graph's outputs). Existing files are reused.
    """
    model_path, out_dir = Path(model_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    m = onnx.load(str(model_path))
    bounds = find_stage_boundaries(m)
    inputs = [[m.graph.input[0].name]] + bounds
    outputs = bounds + [list(output_names)]
    extractor = None
    cuts = []
    for (name, _), ins, outs in zip(STAGES, inputs, outputs):
        path = out_dir / f"stage-{name}.onnx"
        if not path.is_file():
            if extractor is None:
                extractor = utils.Extractor(shape_inference.infer_shapes(m))  # value_info of the cut tensors
            sub = extractor.extract_model(list(ins), list(outs))
            tmp = path.with_name(f".{path.name}.tmp")
            onnx.save(sub, str(tmp))
            tmp.replace(path)
        cuts.append(StageCut(name, path, tuple(ins), tuple(outs)))
    return cuts
