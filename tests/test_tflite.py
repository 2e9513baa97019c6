"""TFLite export and the TFLite backend (the optional ``tflite`` extra).

Without the extra (CI) only the ONNX -> PyTorch rebuild is tested (it needs torch and onnx);
the conversion tests are skipped with the reason. The model here is a random-weight network
whose batch-norm statistics were set from a real image (:func:`normalise_batchnorm`), so its
activations have realistic scales and int8 quantization behaves as on a trained network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelite.export.tflite import unavailable_reason

SIZE = 128
NEEDS_EXTRA = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    torch = pytest.importorskip("torch", reason="exporting a model needs torch (the 'train' extra)")
    pytest.importorskip("onnx")
    from facelite.bench.models import normalise_batchnorm
    from facelite.export.onnx import export_onnx
    from facelite.nn import build_model

    torch.manual_seed(1)
    model = normalise_batchnorm(build_model(0.35), size=SIZE)
    return model, export_onnx(model, tmp_path_factory.mktemp("tflite") / "m.onnx")


def _image_tensor(spec, size: int = SIZE) -> np.ndarray:
    from facelite.imageio import load_image
    from facelite.paths import data_path
    from facelite.preprocess import preprocess

    tensor, _ = preprocess(load_image(data_path("astronaut.jpg")), spec, size)
    return tensor


def test_torch_model_from_onnx_reproduces_the_file(onnx_model) -> None:
    import torch

    from facelite.export.tflite import torch_model_from_onnx
    from facelite.nn.retinaface import InferenceWrapper
    from facelite.runtime.onnx import OnnxBackend

    _, path = onnx_model
    rebuilt = torch_model_from_onnx(path)
    backend = OnnxBackend(path, threads=1)
    x = _image_tensor(backend.spec)
    with torch.no_grad():
        got = [t.numpy() for t in InferenceWrapper(rebuilt)(torch.from_numpy(x))]
    for a, b in zip(backend.run(x), got):
        np.testing.assert_allclose(b, a, atol=2e-4, rtol=1e-3)


@pytest.fixture(scope="module")
def tflite_models(onnx_model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if unavailable_reason():
        pytest.skip(unavailable_reason())
    from facelite.export.tflite import export_tflite
    from facelite.paths import data_path

    model, _ = onnx_model
    out = tmp_path_factory.mktemp("tflite-out")
    f32 = export_tflite(model, out / "m-float32.tflite", "float32", (SIZE, SIZE))
    return {
        "float32": f32,
        "dynamic-int8": export_tflite(model, out / "m-dyn.tflite", "dynamic-int8", (SIZE, SIZE), float_model=f32),
        "int8": export_tflite(model, out / "m-int8.tflite", "int8", (SIZE, SIZE), [data_path("astronaut.jpg")],
                              float_model=f32),
    }


@NEEDS_EXTRA
def test_metadata_and_detector(tflite_models, onnx_model) -> None:
    from facelite import FaceDetector
    from facelite.runtime.onnx import OnnxBackend
    from facelite.runtime.tflite import read_metadata

    spec = OnnxBackend(onnx_model[1]).spec
    for kind, path in tflite_models.items():
        meta = read_metadata(path)
        assert meta["facelite.precision"] == f"tflite-{kind}"
        det = FaceDetector(path, input_size=SIZE, threads=1)
        assert det.spec == spec and det.precision == f"tflite-{kind}"
        boxes, scores, lmks = det.detect_arrays(np.full((100, 80, 3), 128, np.uint8))
        assert boxes.shape[1:] == (4,) and lmks.shape[1:] == (5, 2)
    # a fixed-shape file: the default input size is the file's side; a larger one is refused up front
    assert FaceDetector(tflite_models["float32"], threads=1).input_size == SIZE
    with pytest.raises(ValueError, match=f"at most {SIZE}"):
        FaceDetector(tflite_models["float32"], input_size=SIZE + 32)


def _errors(ref, got) -> list[tuple[float, float]]:
    return [(float(np.abs(a - b).mean()), float(np.corrcoef(a.ravel(), b.ravel())[0, 1])) for a, b in zip(ref, got)]


@NEEDS_EXTRA
def test_outputs_match_onnx(tflite_models, onnx_model, tmp_path: Path) -> None:
    from facelite.export.quantize import quantize_static_int8
    from facelite.paths import data_path
    from facelite.runtime.onnx import OnnxBackend
    from facelite.runtime.tflite import TFLiteBackend

    onnx_backend = OnnxBackend(onnx_model[1], threads=1)
    x = _image_tensor(onnx_backend.spec)
    assert x.shape[2:] == (SIZE, SIZE)
    ref = onnx_backend.run(x)
    # float32: the same network, to float rounding
    for a, b in zip(ref, TFLiteBackend(tflite_models["float32"], threads=1).run(x)):
        np.testing.assert_allclose(b, a, atol=1e-4)
    # int8: within quantization tolerance, i.e. about as close as ONNX Runtime's own static int8
    q = quantize_static_int8(onnx_model[1], tmp_path / "q.onnx", [data_path("astronaut.jpg")], SIZE)
    onnx_int8 = _errors(ref, OnnxBackend(q, threads=1).run(x))
    for kind in ("dynamic-int8", "int8"):
        got = _errors(ref, TFLiteBackend(tflite_models[kind], threads=1).run(x))
        for (err, corr), (err_onnx, _), a in zip(got, onnx_int8, ref):
            assert corr > 0.8, (kind, corr)
            assert err < max(2.0 * err_onnx, 0.05 * a.std()), (kind, err, err_onnx)


def _op_output_types(path: Path) -> list[tuple[str, str]]:
    """(op name, dtype of its first output) of each op of a .tflite file, in graph order."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
    return [(op["op_name"], np.dtype(dtypes[op["outputs"][0]]).name) for op in it._get_ops_details()]


@NEEDS_EXTRA
def test_int8_keeps_score_heads_and_outputs_float(tflite_models, onnx_model, tmp_path: Path) -> None:
    from facelite.export.tflite import export_tflite, float_score_ops
    from facelite.paths import data_path
    from facelite.runtime.tflite import TFLiteBackend

    kept = float_score_ops(tflite_models["float32"])
    names = [name for _, name, _ in kept]
    # one score head per pyramid level, then the tail: per-level reshapes, concatenations, softmax
    assert sum(n.endswith("CONV_2D") for n in names) == 3 and any(n.endswith("SOFTMAX") for n in names)
    ops = _op_output_types(tflite_models["int8"])
    convs = [t for name, t in ops if name == "CONV_2D"]
    assert convs.count("float32") == 3 and convs.count("int8") > 30  # score heads float, the rest int8
    assert [t for name, t in ops if name == "SOFTMAX"] == ["float32"]
    all_int8 = export_tflite(onnx_model[0], tmp_path / "all.tflite", "int8", (SIZE, SIZE),
                             [data_path("astronaut.jpg")], float_model=tflite_models["float32"], float_scores=False)
    assert [t for name, t in _op_output_types(all_int8) if name == "CONV_2D"].count("float32") == 0
    # the scores themselves: the all-int8 file gives at most 256 levels, the default thousands
    x = _image_tensor(TFLiteBackend(tflite_models["float32"]).spec)
    fine = TFLiteBackend(tflite_models["int8"], threads=1).run(x)[0]
    coarse = TFLiteBackend(all_int8, threads=1).run(x)[0]
    assert len(np.unique(coarse)) <= 256 < len(np.unique(fine))


@NEEDS_EXTRA
def test_smaller_inputs_are_padded_and_cropped(tflite_models, onnx_model) -> None:
    from facelite.anchors import num_anchors
    from facelite.runtime.onnx import OnnxBackend
    from facelite.runtime.tflite import TFLiteBackend

    backend = TFLiteBackend(tflite_models["float32"], threads=1)
    onnx_backend = OnnxBackend(onnx_model[1], threads=1)
    x = np.ascontiguousarray(_image_tensor(backend.spec)[:, :, :96, :])  # 96 x 128
    got = backend.run(x)
    assert got[0].shape == (1, num_anchors(backend.spec, 96, SIZE))
    # what it computes: the network on the input zero-padded to the file's shape, cut to the
    # anchors of the smaller input
    padded = np.zeros((1, 3, SIZE, SIZE), np.float32)
    padded[:, :, :96] = x
    idx = backend._index(96, SIZE)
    for a, b in zip(onnx_backend.run(padded), got):
        np.testing.assert_allclose(b, a[:, idx], atol=1e-4)
    # (the network run on the smaller input itself differs near its bottom edge, and through the
    # FPN's top-down path somewhat beyond: the same effect as batching images of different sizes)
    with pytest.raises(ValueError, match="input_size"):
        backend.run(np.zeros((1, 3, SIZE + 32, SIZE), np.float32))


@NEEDS_EXTRA
def test_backend_shared_by_threads(tflite_models) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from facelite.runtime.tflite import TFLiteBackend

    backend = TFLiteBackend(tflite_models["float32"], threads=1)
    full = _image_tensor(backend.spec)
    # inputs of different contents and sizes: interleaved calls would mix the shared buffer
    inputs = [np.ascontiguousarray(full[:, :, :h, :w]) for h, w in ((128, 128), (96, 128), (128, 64), (64, 64))]
    inputs += [np.ascontiguousarray(x[:, :, :, ::-1]) for x in inputs]
    expected = [backend.run(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, ref in zip(pool.map(backend.run, inputs), expected):
                for a, b in zip(got, ref):
                    np.testing.assert_array_equal(a, b)


def test_tflite_file_without_the_extra(tmp_path: Path) -> None:
    from facelite.runtime import load_backend
    from facelite.runtime.tflite import tflite_runtime_available

    if tflite_runtime_available():
        with pytest.raises(FileNotFoundError):
            load_backend(tmp_path / "missing.tflite")
    else:
        with pytest.raises(ValueError, match=r"facelite\[tflite\]"):
            load_backend(tmp_path / "missing.tflite")


def test_export_command_writes_tflite_files(onnx_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``facelite export --float32 M.onnx --tflite ...``: one file per kind and size, with the spec
    and the kind in the metadata; without the extra, a message naming it and nothing written."""
    import shutil

    from facelite.cli import main
    from facelite.paths import data_path

    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(data_path("astronaut.jpg"), calib / "a.jpg")
    out = tmp_path / "out"
    args = ["export", "--float32", str(onnx_model[1]), "--out-dir", str(out), "--name", "m", "--tflite", "float32",
            "int8", "--tflite-sizes", "96", "--calib-dir", str(calib), "--calib-images", "1"]
    if unavailable_reason():
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "facelite[tflite]" in err and "Traceback" not in err
        assert not out.exists()
        return
    assert main(args) == 0
    from facelite.runtime.onnx import OnnxBackend
    from facelite.runtime.tflite import TFLiteBackend, read_metadata

    assert sorted(p.name for p in out.iterdir()) == ["m-float32-96.tflite", "m-float32.onnx", "m-int8-96.tflite"]
    for kind in ("float32", "int8"):
        path = out / f"m-{kind}-96.tflite"
        assert read_metadata(path)["facelite.precision"] == f"tflite-{kind}"
        backend = TFLiteBackend(path, threads=1)
        assert backend.input_hw == (96, 96) and backend.spec == OnnxBackend(onnx_model[1]).spec
    assert main(args[:-4] + ["--tflite-sizes", "100"]) == 1
    assert "multiples of 32" in capsys.readouterr().err
