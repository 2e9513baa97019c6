"""Shared fixtures and markers.

- ``@pytest.mark.shared``: needs the development data folder (``$FACELITE_SHARED``,
  default ``../shared``); such tests are skipped, with a message saying so, when it is absent.
- ``@pytest.mark.slow``: deselected by default (``addopts`` in pyproject.toml); run with ``-m slow``.
- ``random_model_path``: a random-weight α=0.35 model exported to ONNX once per session
  (needs torch; tests using it are skipped without it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facelite.paths import shared_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = shared_dir()
    if root.is_dir():
        return
    skip = pytest.mark.skip(
        reason=f"needs the shared data folder, not found at {root} (set FACELITE_SHARED to where it is)"
    )
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


def _random_model(alpha: float, seed: int = 0):
    torch = pytest.importorskip("torch", reason="exporting a model needs torch (the 'train' extra)")
    from facelite.nn import build_model

    torch.manual_seed(seed)
    model = build_model(alpha).eval()
    with torch.no_grad():
        # Random heads give every anchor a score near 0.5; spread the class logits so that
        # scores vary and score thresholds select a meaningful subset.
        for head in model.cls_heads:
            head.conv.weight.mul_(20.0)
    return model


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory):
    """``(torch_model, onnx_path)``: a random-weight α=0.35 model and its ONNX export (spec in the metadata)."""
    from facelite.export.onnx import export_onnx

    model = _random_model(0.35)
    return model, export_onnx(model, tmp_path_factory.mktemp("models") / "random-0.35.onnx")


@pytest.fixture(scope="session")
def random_model_path(random_model) -> Path:
    """The ONNX file of :func:`random_model`."""
    return random_model[1]


@pytest.fixture(scope="session")
def peer_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained RetinaFace-mnet0.25 from ../shared/peers, rewrapped as a facelite model.

    Same anchors and coding as facelite; BGR input minus (104, 117, 123). Only the output
    names and the metadata change, so it exercises the whole run-time path with real
    weights. Test-only: peers are never loaded by the package.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from facelite.spec import ModelSpec

    src = shared_dir() / "peers" / "retinaface_mnet025" / "retinaface_mnet025.onnx"
    if not src.is_file():
        pytest.skip(f"peer model not found at {src}")
    m = onnx.load(str(src))
    g = m.graph
    g.initializer.append(helper.make_tensor("face_column", TensorProto.INT64, [], [1]))
    g.node.append(helper.make_node("Gather", ["conf", "face_column"], ["scores"], axis=2))
    g.node.append(helper.make_node("Identity", ["loc"], ["boxes"]))
    g.node.append(helper.make_node("Identity", ["iou"], ["landmarks"]))
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "anchors"]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", "anchors", 4]),
            helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["batch", "anchors", 10]),
        ]
    )
    spec = ModelSpec(
        name="retinaface-mnet0.25", alpha=0.25, channel_order="BGR", mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0)
    )
    for key, value in spec.to_metadata().items():  # (facelite.export.onnx.add_metadata needs torch)
        m.metadata_props.add(key=key, value=value)
    from facelite.modelfile import stamp_checksum

    stamp_checksum(m)  # the graph checksum facelite's exporter writes
    out = tmp_path_factory.mktemp("peer") / "retinaface-mnet0.25.onnx"
    onnx.save(m, str(out))
    return out
