"""Training from an exported ONNX file: the folded batch norms are put back, then recalibrated."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelite.models import shipped_path  # noqa: E402
from facelite.nn.retinaface import InferenceWrapper, RetinaFace  # noqa: E402
from facelite.spec import default_spec  # noqa: E402
from facelite.train.onnx_weights import load_onnx_weights, module_path, recalibrate_batchnorm  # noqa: E402


def test_module_path_of_exported_node_names():
    assert module_path("/model/fpn/merges.0/merges.0.0/Conv") == "fpn.merges.0.0"
    assert module_path("/model/backbone/features.2/conv/conv.0/conv.0.0/Conv") == "backbone.features.2.conv.0.0"
    assert module_path("/model/cls_heads.1/conv/Conv") == "cls_heads.1.conv"


def _outputs(model, x):
    with torch.no_grad():
        return [t.numpy() for t in InferenceWrapper(model).eval()(x)]


def test_shipped_model_imports_exactly_and_recalibration_keeps_the_function():
    spec = default_spec(0.35)
    model = RetinaFace(spec)
    assert load_onnx_weights(model, shipped_path("mobilenetv2-0.35"), spec) == 80  # checked against ONNX Runtime
    rng = np.random.default_rng(0)
    batches = [torch.from_numpy(rng.standard_normal((4, 3, 64, 64)).astype(np.float32)) for _ in range(3)]
    x = batches[0]

    def train_eval_gap():
        m = copy.deepcopy(model)  # a train-mode pass moves the running statistics
        with torch.no_grad():
            eval_mode = m.eval()(x)
            train_mode = m.train()(x)
        return max(float((a - b).abs().max()) for a, b in zip(train_mode, eval_mode))

    before = _outputs(model, x)
    gap_folded = train_eval_gap()  # batch statistics of the raw conv outputs: far from the folded identity
    assert recalibrate_batchnorm(model, batches) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    after = _outputs(model, x)
    for a, b in zip(before, after):
        np.testing.assert_allclose(a, b, atol=1e-4)  # eval mode: the same network
    assert train_eval_gap() < 0.2 * gap_folded  # train mode now starts near it


def test_wrong_network_or_int8_file_is_refused():
    with pytest.raises(ValueError, match="alpha 0.35 / FPN 64 / taps blocks does not match the recipe.s 1.0 / 64 / blocks"):
        load_onnx_weights(RetinaFace(default_spec(1.0)), shipped_path("mobilenetv2-0.35"), default_spec(1.0))
    with pytest.raises(ValueError, match="int8 file"):
        load_onnx_weights(RetinaFace(default_spec(0.35)), shipped_path("mobilenetv2-0.35", "int8"), default_spec(0.35))
