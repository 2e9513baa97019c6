"""facelite.export.soup: the average of exported float32 files with one graph."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from facelite import FaceDetector, load_image  # noqa: E402
from facelite.export.soup import main, soup  # noqa: E402
from facelite.modelfile import read_model_file  # noqa: E402
from facelite.models import shipped_path  # noqa: E402
from facelite.paths import data_path  # noqa: E402


def _tensors(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _shifted(src, out, delta):
    proto = onnx.load(str(src))
    for i, t in enumerate(proto.graph.initializer):
        x = numpy_helper.to_array(t)
        if x.dtype == np.float32:
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array((x + delta).astype(np.float32), t.name))
    onnx.save(proto, str(out))  # its old checksum no longer matches: soup() must stamp anew
    return out


def test_soup_is_the_mean_and_loads_with_its_own_checksum(tmp_path):
    src = shipped_path("mobilenetv2-0.35")
    plus = _shifted(src, tmp_path / "plus.onnx", 0.002)
    minus = _shifted(src, tmp_path / "minus.onnx", -0.001)
    out = soup([src, plus, minus], tmp_path / "soup.onnx")
    ref, got = _tensors(src), _tensors(out)
    assert set(got) == set(ref)
    for name, x in ref.items():
        want = x + np.float32(0.001 / 3) if x.dtype == np.float32 else x
        np.testing.assert_allclose(got[name], want, atol=1e-6)
    digest, meta = read_model_file(out.read_bytes())
    assert meta["facelite.graph_sha256"] == digest
    assert meta["facelite.spec"] == read_model_file(src.read_bytes())[1]["facelite.spec"]
    image = np.zeros((240, 320, 3), np.uint8)
    assert FaceDetector(model=str(out)).detect(image) == []  # verified checksum, runs


def test_soup_of_a_file_with_itself_detects_what_the_file_detects(tmp_path):
    sample_image = load_image(data_path("astronaut.jpg"))
    src = shipped_path("mobilenetv2-0.35")
    out = soup([src, src], tmp_path / "same.onnx")
    a = FaceDetector(model=str(src)).detect(sample_image)
    b = FaceDetector(model=str(out)).detect(sample_image)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose([f.box for f in a], [f.box for f in b], atol=1e-3)


def test_soup_refuses_what_cannot_be_averaged(tmp_path, capsys):
    f35, f10 = shipped_path("mobilenetv2-0.35"), shipped_path("mobilenetv2-1.0")
    with pytest.raises(ValueError, match="at least two"):
        soup([f35], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="int8 file"):
        soup([shipped_path("mobilenetv2-0.35", "int8"), f35], tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="not the graph of|differs"):
        soup([f35, f10], tmp_path / "x.onnx")
    assert main([str(tmp_path / "x.onnx"), str(f35), str(f10)]) == 1
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
    assert main([str(tmp_path / "x.onnx")]) == 2
