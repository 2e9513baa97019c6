"""Defects found by trying to break facelite (issue 22): each test failed before its fix.

Anything that could crash the interpreter (a segfault in OpenCV) or take a lot of memory runs
in a subprocess, bounded where it matters, so that a regression fails the test instead of
taking pytest (or the machine) down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelite.paths import data_path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, timeout=timeout
    )


def _facelite(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return _python("import sys; from facelite.cli import main; sys.exit(main(sys.argv[1:]))", *args, cwd=cwd,
                   timeout=timeout)


# --------------------------------------------------------------------------- 1: file names that are not UTF-8

BAD = os.fsdecode(b"b\xff")  # a name with a byte that is not UTF-8 (a surrogate escape in Python)


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("names")
    (root / "d").mkdir()
    for name in ("a", BAD, "c"):
        (root / "d" / f"{name}.jpg").write_bytes(data_path("astronaut.jpg").read_bytes())
    return root


@pytest.mark.parametrize("command", ["detect", "blur", "align"])
def test_names_that_are_not_utf8_are_written(command, odd_names, random_model_path, tmp_path):
    out = tmp_path / "o"
    r = _facelite([command, str(odd_names / "d"), "--out", str(out), "--jsonl", str(tmp_path / "o.jsonl"),
                   "--model", str(random_model_path), "--input-size", "160", "--threads", "1",
                   "--score-threshold", "0.3", "-q", *(["--max-faces", "1"] if command == "align" else [])],
                  cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]  # was -11 (segfault) in OpenCV
    written = sorted(os.listdir(out))
    assert len(written) >= 3 and any(BAD in n for n in written)
    records = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert {Path(r["path"]).name for r in records} == {"a.jpg", f"{BAD}.jpg", "c.jpg"}  # align: a face each


def test_video_writer_and_reader_with_a_name_that_is_not_utf8(tmp_path):
    code = """
import os, sys, numpy as np
from facelite.video import VideoWriter, VideoSourceError, open_source
target = os.path.join(sys.argv[1], os.fsdecode(b"v\\xff.avi"))
with VideoWriter(target, 10.0) as w:
    for i in range(3):
        w.write(np.full((64, 96, 3), 40 * i, np.uint8))
print(sorted(os.listdir(sys.argv[1])), w.frames_written)
try:
    open_source(target)
except VideoSourceError as exc:
    print("error:", exc)
"""
    r = _python(code, str(tmp_path))
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    out = r.stdout.decode(errors="replace")
    assert os.listdir(tmp_path) == [os.fsdecode(b"v\xff.avi")] and " 3\n" in out
    assert (tmp_path / os.fsdecode(b"v\xff.avi")).stat().st_size > 0
    assert "error:" in out and "not valid UTF-8" in out


# --------------------------------------------------------------------------- 3: --json / --coco into links, pipes


def _read_fifo(path: Path, got: list[bytes], deadline_s: float = 60.0) -> None:
    import time

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # does not wait for a writer
    end = time.monotonic() + deadline_s
    try:
        while time.monotonic() < end:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                chunk = None
            if chunk:
                got.append(chunk)
            elif chunk == b"" and got:  # the writer closed it
                return
            else:
                time.sleep(0.01)
    finally:
        os.close(fd)


def test_json_and_coco_write_through_links_and_pipes(random_model_path, tmp_path, capsys):
    import stat
    import threading

    from facelite.cli import main

    real_json, real_coco = tmp_path / "real.json", tmp_path / "real.coco.json"
    real_json.write_text("old\n")
    os.chmod(real_json, 0o600)
    link_json, link_coco = tmp_path / "link.json", tmp_path / "link.coco.json"
    link_json.symlink_to(real_json)
    link_coco.symlink_to(real_coco)  # dangling: the target is created
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, got), daemon=True)
    reader.start()
    image = str(data_path("astronaut.jpg"))
    common = ["--model", str(random_model_path), "--input-size", "160", "--threads", "1", "-q"]
    assert main(["detect", image, "--json", str(link_json), "--coco", str(link_coco), *common]) == 0
    assert main(["detect", image, "--coco", str(fifo), *common]) == 0
    reader.join(60)
    capsys.readouterr()
    assert link_json.is_symlink() and link_coco.is_symlink()  # were replaced by regular files
    assert json.loads(real_json.read_text())[0]["path"] == image
    assert stat.S_IMODE(real_json.stat().st_mode) == 0o600
    assert json.loads(real_coco.read_text())["images"][0]["file_name"] == image
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # was a regular file, and the reader got nothing
    assert json.loads(b"".join(got))["images"][0]["file_name"] == image
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["real.json", "real.coco.json", "link.json", "link.coco.json", "pipe.json"])  # no temporary files left


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    from facelite import fileio

    target = tmp_path / "f.json"
    target.write_text("old\n")

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", broken)
    with pytest.raises(OSError):
        fileio.write_atomic(target, "new\n")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["f.json"]


# --------------------------------------------------------------------------- 5: --resume and path spelling


@pytest.mark.parametrize("command", ["detect", "align"])
def test_resume_does_not_depend_on_how_the_folder_is_spelt(command, random_model_path, tmp_path, monkeypatch, capsys):
    from facelite.cli import main

    (tmp_path / "imgs").mkdir()
    for name in ("a", "b"):
        (tmp_path / "imgs" / f"{name}.jpg").write_bytes(data_path("astronaut.jpg").read_bytes())
    (tmp_path / "linked").symlink_to(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    common = ["--model", str(random_model_path), "--input-size", "160", "--threads", "1", "-q",
              "--jsonl", "f.jsonl", "--out", "out", "--score-threshold", "0.3",
              *(["--max-faces", "1"] if command == "align" else [])]
    assert main([command, "imgs", *common]) == 0  # recorded with relative paths, as older versions did
    recorded = [json.loads(line)["path"] for line in Path("f.jsonl").read_text().splitlines()]
    assert sorted(set(recorded)) == ["imgs/a.jpg", "imgs/b.jpg"]  # the recorded path stays as given
    capsys.readouterr()
    for spelling in (str(tmp_path / "imgs"), "./imgs", "imgs/", "linked"):
        assert main([command, spelling, *common, "--resume"]) == 0
        err = capsys.readouterr().err
        assert "2 of 2 images already in f.jsonl" in err, (spelling, err)
    assert [json.loads(line)["path"] for line in Path("f.jsonl").read_text().splitlines()] == recorded


# --------------------------------------------------------------------------- 8: bench with the run-time install


def test_quick_bench_runs_without_the_extras(tmp_path):
    """``pip install .`` has no onnx, torch, scipy or matplotlib: the shipped files are still timed,
    and the rows that need an extra say which."""
    code = """
import sys
for mod in ("onnx", "torch", "scipy", "matplotlib", "onnxscript"):
    sys.modules[mod] = None  # as if not installed
from facelite.cli import main
sys.exit(main(sys.argv[1:]))
"""
    r = _python(code, "bench", "--quick", "--images", "1", "--repeats", "1", "--warmup", "0", "--crowded", "0",
                "--sizes", "160", "--out", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), "--quiet",
                cwd=tmp_path, timeout=300)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err[-3000:]  # was ModuleNotFoundError: onnx
    assert "Traceback" not in err
    rows = [line for line in out.splitlines() if line.startswith("| mobilenetv2-")]
    assert any("| float32 |" in line for line in rows) and any("| static-int8 |" in line for line in rows)
    assert "dynamic-int8: derived from the float32 file: needs the onnx package" in out
    assert "stages needs the onnx package" in out
    assert "needs scipy" in out
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["latency"]
