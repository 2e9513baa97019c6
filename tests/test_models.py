import re
import shutil

import pytest

from facelite import FaceDetector, models
from facelite.models import (
    MODEL_NAMES,
    ModelChecksumError,
    ModelNotFoundError,
    file_sha256,
    resolve_model,
    update_checksums,
)
from facelite.spec import default_spec


def test_names_and_file_layout():
    assert MODEL_NAMES == ("mobilenetv2-0.35", "mobilenetv2-1.0")
    assert models.shipped_path("mobilenetv2-1.0", "int8").name == "mobilenetv2-1.0-int8.onnx"
    # an exported model's spec name is its shipped name (export names files after it)
    assert (default_spec(0.35).name, default_spec(1.0).name) == MODEL_NAMES
    with pytest.raises(ValueError, match="mobilenetv2-0.35, mobilenetv2-1.0"):
        resolve_model("mobilenetv2-0.5")
    with pytest.raises(ValueError, match="precision"):
        resolve_model("mobilenetv2-0.35", "fp16")
    with pytest.raises(ValueError, match="name or a path"):
        resolve_model(3)  # type: ignore[arg-type]


def test_shipped_files_match_their_checksums():
    """Every shipped .onnx is listed in SHA256SUMS and matches it, and every listed file exists."""
    listed = models._read_checksums(models.MODEL_DIR)
    on_disk = {p.name for p in models.MODEL_DIR.glob("*.onnx")}
    assert set(listed) == on_disk
    for name, digest in listed.items():
        assert re.fullmatch(r"mobilenetv2-(0\.35|1\.0)-(float32|int8)\.onnx", name), name
        assert file_sha256(models.MODEL_DIR / name) == digest, name


def test_missing_shipped_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)
    with pytest.raises(ModelNotFoundError, match="mobilenetv2-0.35-float32.onnx is not in this installation"):
        resolve_model("mobilenetv2-0.35")
    with pytest.raises(ModelNotFoundError, match="not in this installation"):
        FaceDetector("mobilenetv2-1.0", precision="int8")
    assert all(not present for _, _, present in models.available_models())


def test_checksum_verified_at_load(tmp_path, monkeypatch, random_model_path):
    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)
    target = tmp_path / "mobilenetv2-0.35-float32.onnx"
    shutil.copy(random_model_path, target)
    with pytest.raises(ModelChecksumError, match="not listed"):
        resolve_model("mobilenetv2-0.35")
    update_checksums(tmp_path)
    assert (tmp_path / "SHA256SUMS").read_text() == f"{file_sha256(target)}  {target.name}\n"
    resolved = resolve_model("mobilenetv2-0.35")
    assert resolved.shipped and resolved.path == target and resolved.precision == "float32"
    det = FaceDetector("mobilenetv2-0.35")
    assert det.name == "mobilenetv2-0.35" and det.precision == "float32"
    assert det.model_info.sha256 == file_sha256(target)
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumError, match="corrupt or was replaced"):
        FaceDetector("mobilenetv2-0.35")


def test_path_models(tmp_path, random_model_path):
    r = resolve_model(random_model_path)
    assert not r.shipped and r.name is None and r.sha256 == file_sha256(random_model_path)
    assert resolve_model(str(random_model_path)).path == random_model_path
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        resolve_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelNotFoundError, match="no such model file"):
        resolve_model("nope.onnx")
