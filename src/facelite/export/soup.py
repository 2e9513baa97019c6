"""Weight averaging ("model soup") of facelite float32 ONNX files with one graph.

Fine-tunes that start from the same file stay in one basin; the average of their weights is
often as good as the best of them and better where they differ (Wortsman et al., 2022). The
files are the exported ones, batch norms folded into the convolutions, so the average is taken
over the folded weights and biases: the soup is a file of the same graph, exported spec and
size, with its own graph checksum.

    python -m facelite.export.soup OUT.onnx A.onnx B.onnx [C.onnx ...]

The shipped ``mobilenetv2-0.35`` of 2026-12-04 is such a soup (docs/TRAINING.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def soup(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write the uniform average of the float32 initializers of ``paths`` to ``out``.

    Every other part (nodes, non-float tensors, metadata other than the checksum) is the
    first file's. Raises ``ValueError`` for fewer than two files, int8 files, or files whose
    graphs differ in their nodes or tensor names, shapes or non-float values.
    """
    import onnx
    from onnx import numpy_helper

    from ..modelfile import is_quantized, stamp_checksum

    if len(paths) < 2:
        raise ValueError("a soup needs at least two files")
    protos = [onnx.load(str(p)) for p in paths]
    first = protos[0]
    nodes = [(n.op_type, list(n.input), list(n.output)) for n in first.graph.node]
    if is_quantized(first):
        raise ValueError(f"{paths[0]}: an int8 file; average the float32 files and quantize the soup")
    tensors = [{t.name: numpy_helper.to_array(t) for t in p.graph.initializer} for p in protos]
    for path, proto, ts in zip(paths[1:], protos[1:], tensors[1:]):
        if [(n.op_type, list(n.input), list(n.output)) for n in proto.graph.node] != nodes:
            raise ValueError(f"{path}: not the graph of {paths[0]}")
        for name, ref in tensors[0].items():
            other = ts.get(name)
            if other is None or other.shape != ref.shape or other.dtype != ref.dtype:
                raise ValueError(f"{path}: tensor {name!r} differs in name, shape or type from {paths[0]}'s")
            if ref.dtype != np.float32 and not np.array_equal(other, ref):
                raise ValueError(f"{path}: non-float tensor {name!r} differs from {paths[0]}'s")
    for i, t in enumerate(first.graph.initializer):
        ref = tensors[0][t.name]
        if ref.dtype == np.float32:
            mean = sum(ts[t.name].astype(np.float64) for ts in tensors) / len(tensors)
            first.graph.initializer[i].CopyFrom(numpy_helper.from_array(mean.astype(np.float32), t.name))
    stamp_checksum(first)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(first, str(out))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:
        print("usage: python -m facelite.export.soup OUT.onnx A.onnx B.onnx [C.onnx ...]", file=sys.stderr)
        return 2
    try:
        out = soup(args[1:], args[0])
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} (the average of {len(args) - 1} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
