"""int8 quantization (facelite.export.quantize, through the bench's cached derivations).

A random-weight model is enough for these checks: they compare raw outputs of the float32
and the int8 networks on a real image, not detections.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from facelite.bench.models import (
    BenchModel,
    Variant,
    derive_dynamic_int8,
    derive_static_int8,
    model_from_path,
)
from facelite.export.calibration import calibration_images
from facelite.imageio import load_image
from facelite.paths import data_path
from facelite.preprocess import preprocess
from facelite.runtime.onnx import OnnxBackend

SIZE = 320


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for derived models, shared by the bench and quantization tests (same
    path in both modules), so each quantization is made once per session."""
    return tmp_path_factory.getbasetemp() / "bench-cache"


@pytest.fixture(scope="session")
def quantized(random_model_path: Path, bench_cache: Path) -> BenchModel:
    m = model_from_path(random_model_path)
    m.variants["static-int8"] = derive_static_int8(m, calibration=2, calibration_size=SIZE, cache_root=bench_cache)
    m.variants["dynamic-int8"] = derive_dynamic_int8(m, cache_root=bench_cache)
    return m


def _outputs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    backend = OnnxBackend(path, threads=1)
    tensor, _ = preprocess(load_image(data_path("astronaut.jpg")), backend.spec, SIZE)
    return backend.run(tensor)


@pytest.mark.parametrize("precision", ["static-int8", "dynamic-int8"])
def test_int8_outputs_agree_with_float32(quantized: BenchModel, precision: str) -> None:
    ref = _outputs(quantized.variants["float32"].path)
    got = _outputs(quantized.variants[precision].path)
    for name, a, b in zip(("scores", "boxes", "landmarks"), ref, got):
        assert a.shape == b.shape, name
        err = np.abs(a - b)
        # quantization noise is a small fraction of the outputs' own spread
        assert err.mean() < 0.1 * a.std(), (name, err.mean(), a.std())
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99, name
    assert np.abs(ref[0] - got[0]).max() < 0.05  # face probabilities


def test_metadata_survives_quantization(quantized: BenchModel) -> None:
    spec = OnnxBackend(quantized.variants["float32"].path).spec
    for precision, tag in (("static-int8", "int8"), ("dynamic-int8", "dynamic-int8")):
        backend = OnnxBackend(quantized.variants[precision].path)
        assert backend.spec == spec
        assert backend.metadata["facelite.precision"] == tag
        # and the bench reads the variant back from the file
        assert model_from_path(quantized.variants[precision].path).variants.keys() == {precision}


def test_int8_files_are_smaller(quantized: BenchModel) -> None:
    f32 = quantized.variants["float32"].file_bytes
    assert quantized.variants["dynamic-int8"].file_bytes < 0.5 * f32
    assert quantized.variants["static-int8"].file_bytes < 0.5 * f32


def test_static_int8_is_qdq_per_channel(quantized: BenchModel) -> None:
    import onnx

    g = onnx.load(str(quantized.variants["static-int8"].path)).graph
    ops = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: i for i in g.initializer}
    # per-channel weights: some conv weight has a vector of scales
    per_channel = [
        n for n in g.node
        if n.op_type == "DequantizeLinear" and n.input[1] in inits and len(inits[n.input[1]].dims) == 1
        and inits[n.input[1]].dims[0] > 1
    ]
    assert per_channel


def test_derived_models_are_cached(quantized: BenchModel, bench_cache: Path) -> None:
    v = quantized.variants["static-int8"]
    assert v.path.is_relative_to(bench_cache)
    mtime = v.path.stat().st_mtime_ns
    again = derive_static_int8(quantized, calibration=2, calibration_size=SIZE, cache_root=bench_cache)
    assert again.path == v.path and again.path.stat().st_mtime_ns == mtime


def test_int8_model_detects(quantized: BenchModel) -> None:
    from facelite import FaceDetector

    det = FaceDetector(quantized.variants["static-int8"].path, input_size=SIZE, threads=1)
    boxes, scores, lmks = det.detect_arrays(load_image(data_path("astronaut.jpg")))
    assert boxes.shape[1:] == (4,) and lmks.shape[1:] == (5, 2) and len(scores) == len(boxes)
    assert det.precision == "int8"


def test_calibration_images_without_shared_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACELITE_SHARED", str(tmp_path / "nowhere"))
    images, what = calibration_images(10)
    assert images == [data_path("astronaut.jpg")]
    assert "not representative" in what


def test_variant_backend_by_extension(tmp_path: Path) -> None:
    assert Variant("tflite-int8", tmp_path / "m.tflite", "x").backend == "tflite"
    assert Variant("float32", tmp_path / "m.onnx", "x").backend == "onnxruntime"


@pytest.fixture(scope="module")
def shipped_quantized(bench_cache: Path) -> BenchModel:
    """The shipped (trained) float32 model and its quantizations; skipped until it is installed."""
    from facelite.bench.models import model_from_shipped
    from facelite.models import shipped_path

    if not shipped_path("mobilenetv2-0.35", "float32").is_file():
        pytest.skip("the trained mobilenetv2-0.35 float32 model is not installed yet")
    m = model_from_shipped("mobilenetv2-0.35")
    m.variants["static-int8"] = derive_static_int8(m, calibration=4, calibration_size=SIZE, cache_root=bench_cache)
    m.variants["dynamic-int8"] = derive_dynamic_int8(m, cache_root=bench_cache)
    return m


@pytest.mark.parametrize("precision", ["static-int8", "dynamic-int8"])
def test_int8_keeps_a_trained_network_intact(shipped_quantized: BenchModel, precision: str) -> None:
    """On trained weights quantization noise must stay small. (Random networks are too chaotic to
    show it: every int8 variant of one correlates only ~0.8 with its float outputs. ONNX Runtime's
    dynamic int8 of the depthwise convolutions turned the trained network's outputs to noise.)"""
    ref = _outputs(shipped_quantized.variants["float32"].path)
    got = _outputs(shipped_quantized.variants[precision].path)
    for name, a, b in zip(("scores", "boxes", "landmarks"), ref, got):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95, name


def test_calibration_in_chunks_and_histogram_methods_on_mixed_sizes(random_model_path: Path, tmp_path: Path) -> None:
    """The calibrators are fed in equal chunks (bounded memory); the histogram methods, which stack
    the outputs of all images, get one input shape however the images are shaped."""
    import cv2
    import onnxruntime as ort

    from facelite.export.quantize import _chunk, quantize_static_int8

    assert (_chunk(100), _chunk(97), _chunk(16), _chunk(3)) == (5, 1, 8, 3)
    rng = np.random.default_rng(0)
    images = []
    for i, (h, w) in enumerate([(48, 96), (96, 48), (64, 64)]):
        images.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(images[-1]), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    for method in ("minmax", "percentile"):
        out = quantize_static_int8(random_model_path, tmp_path / f"{method}.onnx", images, input_size=64, method=method)
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        scores = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 96), np.float32)})[0]
        assert np.isfinite(scores).all()


def _float_after(graph, node_names: set[str]) -> bool:
    """True when no QuantizeLinear reads an output of the nodes named ``node_names``."""
    outputs = {o for n in graph.node if n.name in node_names for o in n.output}
    return not any(n.op_type == "QuantizeLinear" and n.input[0] in outputs for n in graph.node)


def test_score_heads_and_outputs_stay_float(random_model_path: Path, tmp_path: Path) -> None:
    """By default the score heads and everything after the heads are left float, the box and
    landmark heads int8; ``float_scores=False`` quantizes them all (the files before 2026-12-05)."""
    import onnx

    from facelite.export.quantize import quantize_static_int8

    images = [data_path("astronaut.jpg")]
    graphs = {}
    for float_scores in (True, False):
        out = quantize_static_int8(random_model_path, tmp_path / f"{float_scores}.onnx", images, SIZE,
                                   float_scores=float_scores)
        graphs[float_scores] = onnx.load(str(out)).graph
    names = {n.name for n in graphs[True].node}
    score_convs = {n for n in names if "cls_heads." in n and n.endswith("/Conv")}
    box_convs = {n for n in names if "box_heads." in n and n.endswith("/Conv")}
    assert len(score_convs) == len(box_convs) == 3
    softmax = {n.name for n in graphs[True].node if n.op_type == "Softmax"}
    assert _float_after(graphs[True], score_convs | softmax)
    assert not _float_after(graphs[True], box_convs)  # still int8
    assert not _float_after(graphs[False], score_convs) and not _float_after(graphs[False], softmax)
    # and the float score heads read float weights (no DequantizeLinear of an int8 weight in front)
    weights = {n.input[1] for n in graphs[True].node if n.name in score_convs}
    assert {i.name for i in graphs[True].initializer} >= weights


def test_shipped_int8_scores_are_not_cut_to_256_levels() -> None:
    """The shipped int8 files keep float scores: on a real image they take thousands of values,
    where a quantized softmax output holds at most 256."""
    from facelite.models import shipped_path

    for name in ("mobilenetv2-0.35", "mobilenetv2-1.0"):
        path = shipped_path(name, "int8")
        if not path.is_file():
            pytest.skip(f"{name} int8 is not shipped in this installation")
        scores = _outputs(path)[0]
        assert len(np.unique(scores)) > 1000, name


def test_export_command_quantizes_a_float32_file(random_model_path: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``facelite export --float32 FILE --int8``: a soup or a shipped file gets its int8 file
    without a checkpoint; the float32 file is copied unchanged; a file that is not a facelite
    ONNX export is refused with a message, not a traceback."""
    import shutil

    from facelite.cli import main

    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(data_path("astronaut.jpg"), calib / "a.jpg")
    out = tmp_path / "out"
    assert main(["export", "--float32", str(random_model_path), "--out-dir", str(out), "--int8", "--name", "soup",
                 "--calib-dir", str(calib), "--calib-images", "1", "--calib-size", "64"]) == 0
    assert (out / "soup-float32.onnx").read_bytes() == random_model_path.read_bytes()
    backend = OnnxBackend(out / "soup-int8.onnx")
    assert backend.spec == OnnxBackend(random_model_path).spec and backend.metadata["facelite.precision"] == "int8"
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    assert main(["export", "--float32", str(text), "--out-dir", str(out)]) == 1
    assert main(["export", "--float32", str(tmp_path / "missing.onnx"), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "notes.onnx: not an ONNX model" in err and "no such file" in err and "Traceback" not in err
