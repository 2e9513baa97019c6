"""backbone_taps = "expansion": SSDLite's taps, started from a paper-taps file with the same function."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelite.models import shipped_path  # noqa: E402
from facelite.nn.mobilenetv2 import MobileNetV2Backbone  # noqa: E402
from facelite.nn.retinaface import InferenceWrapper, RetinaFace  # noqa: E402
from facelite.nn.widen import load_widened  # noqa: E402
from facelite.spec import ModelSpec, default_spec  # noqa: E402
from facelite.train.trainer import init_model  # noqa: E402


def test_expansion_taps_concatenate_block_output_and_expansion_layer():
    blocks = MobileNetV2Backbone(0.35).eval()
    wide = MobileNetV2Backbone(0.35, "expansion").eval()
    wide.load_state_dict(blocks.state_dict())  # the same backbone weights: taps read more, compute the same
    assert blocks.out_channels == [16, 32, 112]
    assert wide.out_channels == [16 + 96, 32 + 192, 112 + 336]
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        narrow, taps = blocks(x), wide(x)
        expansion = blocks.features[7].conv[0](blocks.features[:7](x))  # next block's 1x1 expansion, stride 8
    for n, t, c, s in zip(narrow, taps, wide.out_channels, (8, 16, 32)):
        assert t.shape == (2, c, 96 // s, 128 // s)
        torch.testing.assert_close(t[:, : n.shape[1]], n)  # block output first
        assert float(t[:, n.shape[1]:].min()) >= 0.0 and float(t[:, n.shape[1]:].max()) <= 6.0  # ReLU6 activations
    torch.testing.assert_close(taps[0][:, 16:], expansion)


def test_spec_carries_the_taps_and_old_metadata_reads_as_blocks():
    spec = default_spec(0.35, backbone_taps="expansion")
    assert ModelSpec.from_json(spec.to_json()) == spec
    old = json.loads(default_spec(0.35).to_json())
    del old["backbone_taps"]  # files exported before the field existed
    assert ModelSpec.from_json(json.dumps(old)).backbone_taps == "blocks"
    with pytest.raises(ValueError, match="backbone_taps must be one of"):
        default_spec(0.35, backbone_taps="expanded")
    with pytest.raises(ValueError, match="malformed model spec metadata: backbone_taps"):
        ModelSpec.from_json(json.dumps({**old, "backbone_taps": 3}))


def test_widened_model_from_the_shipped_file_computes_what_the_file_computes(tmp_path):
    import onnxruntime as ort

    from facelite.export.onnx import export_onnx

    spec = default_spec(0.35, backbone_taps="expansion")
    model = RetinaFace(spec)
    init_model(model, spec, "mobilenetv2-0.35")
    lateral = model.fpn.laterals[0][0].weight.detach()
    assert lateral.shape == (64, 112, 1, 1) and float(lateral[:, 16:].abs().max()) == 0.0
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 160)).astype(np.float32)
    sess = ort.InferenceSession(str(shipped_path("mobilenetv2-0.35")), providers=["CPUExecutionProvider"])
    shipped = sess.run(None, {sess.get_inputs()[0].name: x})
    with torch.no_grad():
        ours = [t.numpy() for t in InferenceWrapper(model).eval()(torch.from_numpy(x))]
    for a, b in zip(ours, shipped):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # once the new channels carry weight, the export round-trips with the taps in its metadata
    with torch.no_grad():
        model.fpn.laterals[0][0].weight[:, 16:] = 0.01
        moved = [t.numpy() for t in InferenceWrapper(model).eval()(torch.from_numpy(x))]
    assert float(np.abs(moved[0] - ours[0]).max()) > 1e-3
    path = export_onnx(model.eval(), tmp_path / "taps.onnx")
    from facelite.train.onnx_weights import onnx_spec

    assert onnx_spec(path).backbone_taps == "expansion"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for a, b in zip(moved, sess.run(None, {sess.get_inputs()[0].name: x})):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_widening_refuses_what_is_not_a_wider_input(tmp_path):
    wide = RetinaFace(default_spec(0.35, backbone_taps="expansion"))
    state = RetinaFace(default_spec(0.35)).state_dict()
    assert load_widened(wide, state) == 3  # one lateral per level
    with pytest.raises(ValueError, match="cannot widen"):
        load_widened(RetinaFace(default_spec(0.35)), wide.state_dict())  # narrower: would drop weights
    with pytest.raises(ValueError, match="not the same network"):
        load_widened(wide, {k: v for k, v in state.items() if "ssh" not in k})
    path = tmp_path / "taps.pt"
    torch.save({"spec": wide.spec.to_json(), "model": wide.state_dict()}, path)
    with pytest.raises(ValueError, match="cannot start"):  # weights never shrink
        init_model(RetinaFace(default_spec(0.35)), default_spec(0.35), str(path))

