"""``facelite models``: the shipped files with their checksum status, and what a model file carries."""

import json
import shutil

from facelite import models
from facelite.cli import main
from facelite.models import MODEL_NAMES, PRECISIONS, file_sha256, update_checksums
from facelite.runtime import load_backend


def test_lists_every_shipped_file_with_its_checksum(capsys):
    rc = main(["models", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["precision"]) for r in rows] == [(n, p) for n in MODEL_NAMES for p in PRECISIONS]
    assert [r["default"] for r in rows].count(True) == 1 and rows[0]["default"]
    for r in rows:
        if r["status"] == "ok":
            assert r["sha256"] == file_sha256(r["path"])
    assert rc == (0 if all(r["status"] == "ok" for r in rows) else 1)
    main(["models"])
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 1 + len(rows) and "(default)" in text[1]


def test_missing_and_corrupt_files_fail(tmp_path, monkeypatch, random_model_path, capsys):
    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)
    good, bad = tmp_path / "mobilenetv2-0.35-float32.onnx", tmp_path / "mobilenetv2-0.35-int8.onnx"
    shutil.copy(random_model_path, good)
    shutil.copy(random_model_path, bad)
    update_checksums(tmp_path)
    bad.write_bytes(bad.read_bytes()[:-10] + b"0123456789")  # same size, different bytes
    assert main(["models", "--json"]) == 1
    status = {(r["name"], r["precision"]): r["status"] for r in json.loads(capsys.readouterr().out)}
    assert status == {("mobilenetv2-0.35", "float32"): "ok", ("mobilenetv2-0.35", "int8"): "corrupt",
                      ("mobilenetv2-1.0", "float32"): "missing", ("mobilenetv2-1.0", "int8"): "missing"}


def test_describes_a_model_file(random_model_path, capsys):
    assert main(["models", str(random_model_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    spec = load_backend(random_model_path).spec
    assert d["shipped"] is False and d["sha256"] == file_sha256(random_model_path)
    assert d["spec"]["alpha"] == spec.alpha and d["spec"]["strides"] == list(spec.strides)
    assert d["spec"]["min_sizes"] == [list(m) for m in spec.min_sizes]
    assert main(["models", str(random_model_path)]) == 0
    out = capsys.readouterr().out
    assert "strides 8/16/32" in out and "left_eye, right_eye, nose, left_mouth, right_mouth" in out


def test_bad_model_arguments(tmp_path, capsys):
    assert main(["models", "mobilenetv2-9"]) == 1
    assert "unknown model" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 100)
    assert main(["models", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("facelite models: error:") and "junk.onnx" in err and "Traceback" not in err


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "facelite", "models"], capture_output=True, text=True)
    assert proc.returncode == 0 and "mobilenetv2-0.35" in proc.stdout and "(default)" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "facelite", "detect", "/no/such.jpg"], capture_output=True, text=True)
    assert proc.returncode == 1 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
