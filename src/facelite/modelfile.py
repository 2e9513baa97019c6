"""The checksum facelite writes into its ONNX files, and its check on load (no ``onnx`` package needed).

``facelite export`` (every writer that goes through :func:`facelite.export.onnx.add_metadata`)
stores ``sha256`` of the serialised graph (its nodes and weights, the metadata excluded) under
the metadata key :data:`CHECKSUM_KEY`. Loading a model file (``FaceDetector(model=PATH)``,
``facelite models PATH``) recomputes it from the file's bytes, with the few lines of protobuf
reading below, and refuses a file whose graph does not match: a flipped weight byte otherwise
loads silently and finds hundreds of "faces". A file without the key (exported by an older
facelite, or by another tool) loads with a :class:`ModelChecksumWarning`.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

__all__ = [
    "CHECKSUM_KEY",
    "ModelChecksumWarning",
    "graph_sha256",
    "read_model_file",
    "stamp_checksum",
    "verify_checksum",
]

CHECKSUM_KEY = "facelite.graph_sha256"
"""Metadata key of the graph checksum (hex SHA-256 of the serialised ``GraphProto``)."""

_GRAPH_FIELD = 7  # ModelProto.graph
_METADATA_FIELD = 14  # ModelProto.metadata_props (StringStringEntryProto: key = 1, value = 2)


class ModelChecksumWarning(UserWarning):
    """A model file carries no graph checksum, so corruption cannot be detected."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("not an ONNX file (a malformed field)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes, start: int = 0, end: int | None = None):
    """``(field number, wire type, value or (start, end) of a length-delimited field)`` of a message."""
    pos, stop = start, len(data) if end is None else end
    while pos < stop:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > stop:
                raise ValueError("not an ONNX file (a field runs past the end): truncated or corrupted")
            yield number, wire, (pos, pos + length)
            pos += length
        else:
            raise ValueError(f"not an ONNX file (wire type {wire})")
    if pos != stop:
        raise ValueError("not an ONNX file (a field runs past the end): truncated or corrupted")


def read_model_file(data: bytes) -> tuple[str | None, dict[str, str]]:
    """``(hex SHA-256 of the graph or None if there is none, metadata)`` of a serialised ONNX model.

    Raises:
        ValueError: the bytes are not a well-formed protobuf message.
    """
    graph: tuple[int, int] | None = None
    metadata: dict[str, str] = {}
    for number, wire, value in _fields(data):
        if wire != 2:
            continue
        if number == _GRAPH_FIELD:
            if graph is not None:
                raise ValueError("not a single ONNX graph (the graph field appears twice)")
            graph = value
        elif number == _METADATA_FIELD:
            key = val = ""
            for sub, _, (a, b) in ((n, w, v) for n, w, v in _fields(data, *value) if w == 2):
                text = data[a:b].decode("utf-8", errors="replace")
                if sub == 1:
                    key = text
                elif sub == 2:
                    val = text
            metadata[key] = val
    digest = hashlib.sha256(data[graph[0] : graph[1]]).hexdigest() if graph is not None else None
    return digest, metadata


def is_quantized(model_proto: Any) -> bool:
    """Whether an ``onnx.ModelProto`` is a quantized (QDQ int8) file rather than a float32 one."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model_proto.graph.node)


def graph_sha256(model_proto: Any) -> str:
    """Hex SHA-256 of an ``onnx.ModelProto``'s serialised graph (what :data:`CHECKSUM_KEY` holds)."""
    return hashlib.sha256(model_proto.graph.SerializeToString()).hexdigest()


def stamp_checksum(model_proto: Any) -> str:
    """Set :data:`CHECKSUM_KEY` in an ``onnx.ModelProto``'s metadata to its graph's checksum; returns it.
    Call it after the last change to the graph, before saving."""
    digest = graph_sha256(model_proto)
    keep = [p for p in model_proto.metadata_props if p.key != CHECKSUM_KEY]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(keep)
    model_proto.metadata_props.add(key=CHECKSUM_KEY, value=digest)
    return digest


def verify_checksum(data: bytes, name: str) -> str | None:
    """Check the graph of a serialised model against its :data:`CHECKSUM_KEY`.

    Returns the checksum when it matches, ``None`` when the file has none (after a
    :class:`ModelChecksumWarning`).

    Raises:
        ValueError: (one line, naming the file) the graph does not match, or the file is not a
            well-formed ONNX model.
    """
    try:
        digest, metadata = read_model_file(data)
    except ValueError as exc:
        raise ValueError(f"{name}: cannot load this model: {exc}") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is None and "facelite.spec" not in metadata:
        return None  # not a facelite model at all: the spec check says so
    if expected is None:
        warnings.warn(
            f"{name}: no weights checksum in its metadata (exported by an older facelite or another tool): "
            "corruption cannot be detected; export it again, or stamp it with "
            "python -m facelite.models --stamp FILE",
            ModelChecksumWarning,
            stacklevel=3,
        )
        return None
    if digest != expected.strip().lower():
        raise ValueError(f"{name}: weights do not match their checksum: the file is corrupted")
    return digest
