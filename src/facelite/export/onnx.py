"""Export a trained :class:`~facelite.nn.RetinaFace` to a single self-contained ONNX file.

The graph takes ``input`` float32 (B, 3, H, W), already normalised per the spec, with
dynamic B, H and W, and returns ``scores`` (B, N), ``boxes`` (B, N, 4) and
``landmarks`` (B, N, 10) (see :class:`facelite.nn.retinaface.InferenceWrapper`). The
model's :class:`~facelite.spec.ModelSpec` is stored in the file's metadata.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from ..nn.retinaface import InferenceWrapper, RetinaFace

INPUT_NAME = "input"
OUTPUT_NAMES = ("scores", "boxes", "landmarks")
OPSET = 17


def add_metadata(model_proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Set (replace) key/value pairs in ``model_proto.metadata_props``, and the checksum of the graph
    as it is now (:data:`facelite.modelfile.CHECKSUM_KEY`: call this after the last change to the graph)."""
    from ..modelfile import stamp_checksum

    keep = [p for p in model_proto.metadata_props if p.key not in metadata]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(keep)
    for k, v in metadata.items():
        model_proto.metadata_props.add(key=k, value=v)
    stamp_checksum(model_proto)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The key/value metadata of an ONNX file (the graph's weights are not loaded).

    Raises:
        google.protobuf.message.DecodeError (among others): the file is not ONNX.
    """
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def export_onnx(model: RetinaFace, path: str | Path, sample_hw: tuple[int, int] = (320, 320)) -> Path:
    """Write ``model`` (eval mode, float32) to ``path`` with its spec in the metadata; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = InferenceWrapper(model).eval().float()
    x = torch.zeros(1, 3, *sample_hw)
    dyn = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}}
    dyn.update({n: {0: "batch", 1: "anchors"} for n in OUTPUT_NAMES})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (x,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dyn,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    add_metadata(proto, {**model.spec.to_metadata(), "producer": "facelite"})
    proto.doc_string = f"facelite {model.spec.name}"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path
