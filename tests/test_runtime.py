import gc
import os
from pathlib import Path

import numpy as np
import pytest

from facelite.anchors import num_anchors
from facelite.runtime import Backend, load_backend
from facelite.runtime.onnx import OnnxBackend
from facelite.spec import ModelSpec, default_spec


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_spec_read_from_metadata(random_model_path):
    backend = OnnxBackend(random_model_path)
    assert isinstance(backend, Backend)
    assert backend.spec == default_spec(0.35)
    assert backend.metadata["producer"] == "facelite"
    assert backend.path == Path(random_model_path)


@pytest.mark.parametrize("shape", [(1, 3, 320, 320), (2, 3, 224, 352)])
def test_onnx_matches_pytorch(random_model, shape):
    torch = pytest.importorskip("torch")
    from facelite.nn.retinaface import InferenceWrapper

    model, path = random_model
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in InferenceWrapper(model).eval()(torch.from_numpy(x))]
    got = OnnxBackend(path, threads=1).run(x)
    n = num_anchors(model.spec, shape[2], shape[3])
    assert got[0].shape == (shape[0], n) and got[1].shape == (shape[0], n, 4) and got[2].shape == (shape[0], n, 10)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc (Linux)")
def test_one_thread_means_no_extra_threads(random_model_path):
    x = np.zeros((1, 3, 128, 128), np.float32)
    gc.collect()  # sessions of earlier tests must not end (and take their threads) mid-count
    gc.disable()
    try:
        before = _threads()
        single = OnnxBackend(random_model_path, threads=1)
        single.run(x)
        assert _threads() == before  # ONNX Runtime started no thread of its own
        # control: asking for 2 threads does start one, so the count above can see them
        two = OnnxBackend(random_model_path, threads=2)
        two.run(x)
        assert _threads() > before
    finally:
        gc.enable()


def test_rejects_models_that_are_not_facelite(tmp_path, random_model_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [x], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    plain = tmp_path / "plain.onnx"
    onnx.save(m, str(plain))
    with pytest.raises(ValueError, match="not exported by facelite"):
        OnnxBackend(plain)
    m.metadata_props.add(key="facelite.spec", value=ModelSpec().to_json())
    onnx.save(m, str(plain))
    with pytest.raises(ValueError, match="expected input 'input' and outputs"):
        OnnxBackend(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        OnnxBackend(junk)
    with pytest.raises(FileNotFoundError):
        OnnxBackend(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="unsupported model file type"):
        load_backend(tmp_path / "model.pb")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            OnnxBackend(random_model_path, threads=bad)


def test_run_checks_its_input(random_model_path):
    backend = load_backend(random_model_path, threads=1)
    with pytest.raises(ValueError, match="float32"):
        backend.run(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(ValueError, match="float32"):
        backend.run(np.zeros((3, 64, 64), np.float32))
