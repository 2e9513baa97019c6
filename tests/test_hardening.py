"""Defects found by trying to break facelite (issue 22): each test failed before its fix.

Anything that could crash the interpreter (a segfault in OpenCV) or take a lot of memory runs
in a subprocess, bounded where it matters, so that a regression fails the test instead of
taking pytest (or the machine) down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facelite.paths import data_path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, *args: str, cwd: Path | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
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


def test_json_to_dev_stdout_redirected_to_a_file_writes_into_it(random_model_path, tmp_path):
    out = tmp_path / "out.json"
    out.write_text("")
    inode = out.stat().st_ino
    code = "import sys; from facelite.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(out, "w") as f:
        r = subprocess.run([sys.executable, "-c", code, "detect", str(data_path("astronaut.jpg")), "--json", "/dev/stdout",
                            "--model", str(random_model_path), "--input-size", "160", "-q"],
                           stdout=f, stderr=subprocess.PIPE, env=env, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert out.stat().st_ino == inode  # the shell's file, not a new one renamed over it
    assert json.loads(out.read_text())[0]["path"] == str(data_path("astronaut.jpg"))


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
    # a dev split as far as the bench looks before it needs scipy (the real one or not, wherever this runs)
    shared = tmp_path / "shared" / "data" / "widerface"
    (shared / "dev").mkdir(parents=True)
    (shared / "dev" / "images.txt").write_text("x/y.jpg\n")
    (shared / "dev" / "images" / "x").mkdir(parents=True)
    shutil.copy(data_path("astronaut.jpg"), shared / "dev" / "images" / "x" / "y.jpg")
    (shared / "eval").mkdir()
    (shared / "eval" / "wider_face_val.mat").write_bytes(b"")
    r = _python(code, "bench", "--quick", "--images", "1", "--repeats", "1", "--warmup", "0", "--crowded", "0",
                "--sizes", "160", "--out", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), "--quiet",
                cwd=tmp_path, timeout=300, env={"FACELITE_SHARED": str(tmp_path / "shared")})
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err[-3000:]  # was ModuleNotFoundError: onnx
    assert "Traceback" not in err
    rows = [line for line in out.splitlines() if line.startswith("| mobilenetv2-")]
    assert any("| float32 |" in line for line in rows) and any("| static-int8 |" in line for line in rows)
    assert "dynamic-int8: derived from the float32 file: needs the onnx package" in out
    assert "stages needs the onnx package" in out
    assert "needs scipy" in out
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["latency"]


# --------------------------------------------------------------------------- 2, 4: the pixel limit, every format

BOMB_PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a regression fails here, not the machine
from benchmarks.bombs import BOMBS
from facelite.imageio import load_image
import tempfile, os, pathlib
out = {}
folder = pathlib.Path(tempfile.mkdtemp())
for name, make in BOMBS.items():
    path = folder / name
    path.write_bytes(make())
    try:
        load_image(path)
        out[name] = "decoded"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def test_every_decompression_bomb_is_refused_before_decoding():
    from benchmarks.bombs import BOMBS

    r = _python(BOMB_PROBE, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    for name in BOMBS:  # before: the JPEG with a stray byte, JPEG 2000 and BigTIFF were decoded first
        assert out[name].startswith("ImageLoadError") and "over the limit" in out[name], (name, out[name])
    assert out["peak_rss_mb"] < 1024  # before: 5.2 GB (stray-byte JPEG), 4.4 GB (JPEG 2000), 1.8 GB (BigTIFF)


def _png_header(width: int, height: int, depth: int = 8, colour: int = 2) -> bytes:
    import struct
    import zlib

    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


def test_default_limit_takes_a_200_megapixel_photo_and_counts_decoder_memory():
    from facelite.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, decode_image

    assert DEFAULT_MAX_PIXELS >= 16330 * 12250
    # a 200-megapixel header passes the size check (and only then fails: the pixels are missing)
    with pytest.raises(ImageLoadError, match="truncated PNG"):
        decode_image(_png_header(16330, 12250))
    with pytest.raises(ImageLoadError, match="over the limit of 250 megapixels"):
        decode_image(_png_header(20000, 15000))
    # 16-bit colour: 6 bytes a pixel; 190 megapixels need 1.14 GB, over 4 bytes x max_pixels
    with pytest.raises(ImageLoadError, match=r"needs about 1140 MB, over the limit of 1000 MB"):
        decode_image(_png_header(19000, 10000, depth=16))
    with pytest.raises(ImageLoadError, match="over the limit"):
        decode_image(_png_header(100, 100), max_pixels=9999)


def test_a_small_jpeg_announcing_a_large_image_is_refused_but_flat_large_images_pass():
    import cv2
    import numpy as np

    from benchmarks.bombs import _jpeg_fill_bytes
    from facelite.imageio import ImageLoadError, decode_image

    # 2 KB announcing 12000 x 12000 (144 MP, under the limit): libjpeg would pad it into a grey
    # image of 432 MB (a mutated bomb of the fuzz run did that, peak RSS 1.1 GB)
    with pytest.raises(ImageLoadError, match=r"a 12000x12000 JPEG image in \d+ bytes .* damaged, or a decompression bomb"):
        decode_image(_jpeg_fill_bytes(12000))
    flat = cv2.imencode(".jpg", np.full((4200, 5000, 3), 90, np.uint8))[1].tobytes()  # 21 MP, ~64 pixels a byte
    assert decode_image(flat).shape == (4200, 5000, 3)


def test_a_gif_frame_larger_than_its_screen_counts():
    import struct

    from facelite.imageio import ImageLoadError, decode_image

    # no global colour table; a 10 x 10 screen whose first frame is 60000 x 60000
    gif = (b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b"\x2c" + struct.pack("<HHHHB", 0, 0, 60000, 60000, 0)
           + b"\x02\x02\x44\x01\x00;")
    with pytest.raises(ImageLoadError, match="60000x60000 = 3600.0 megapixels, over the limit"):
        decode_image(gif)


def test_header_only_and_cut_pnm_files_say_truncated():
    from facelite.imageio import ImageLoadError, decode_image

    with pytest.raises(ImageLoadError, match=r"truncated PPM \(15 of 30015 bytes\)"):
        decode_image(b"P6\n100 100\n255\n")  # was "unknown format"
    with pytest.raises(ImageLoadError, match=r"truncated PGM \(header only, no pixel values\)"):
        decode_image(b"P2\n4 4\n255\n")
    with pytest.raises(ImageLoadError, match="truncated PBM header"):
        decode_image(b"P4\n4 ")
    with pytest.raises(ImageLoadError, match="truncated PAM header"):
        decode_image(b"P7\nWIDTH 4\nHEIGHT 4\n")


def test_unknown_formats_and_unreadable_headers_are_refused_without_decoding():
    from facelite.imageio import ImageLoadError, decode_image

    with pytest.raises(ImageLoadError, match=r"unknown format; it reads JPEG, PNG, WebP"):
        decode_image(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)  # HEIC: OpenCV has no decoder here
    with pytest.raises(ImageLoadError, match="truncated JPEG"):
        decode_image(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 8 + b"\xff\xd9")  # no frame header
    with pytest.raises(ImageLoadError, match="corrupt TIFF"):
        decode_image(b"II*\x00\x08\x00\x00\x00\x00\x00" + b"\x00" * 16)  # no width / height
    with pytest.raises(ImageLoadError, match="JPEG 2000 with 300 components"):
        import struct

        siz = b"\xff\x4f\xff\x51" + struct.pack(">HHIIIIIIIIH", 38 + 3 * 300, 0, 8, 8, 0, 0, 8, 8, 0, 0, 300)
        decode_image(siz + b"\x07\x01\x01" * 300)


@pytest.mark.parametrize("ext, grey", [(".jpg", False), (".png", False), (".webp", False), (".bmp", False),
                                       (".tiff", False), (".jp2", False), (".ppm", False), (".pgm", True),
                                       (".pbm", True), (".pam", False), (".pfm", False), (".sr", False),
                                       (".hdr", False), (".gif", False), (".avif", False)])
def test_every_accepted_format_still_decodes_with_its_size_known(ext, grey):
    import cv2
    import numpy as np

    from facelite.imageio import decode_image, read_image_size

    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    if grey:
        img = img[:, :, 0]
    if ext in (".pfm", ".hdr"):
        img = img.astype(np.float32) / 255
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    data = buf.tobytes()
    assert read_image_size(data) == (53, 37)
    out = decode_image(data)
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8


def test_max_pixels_option_reaches_every_command(random_model_path, tmp_path, capsys):
    from facelite.cli import main
    from facelite.commands._common import max_pixels_of

    image = str(data_path("astronaut.jpg"))  # 512 x 512
    common = ["--model", str(random_model_path), "--input-size", "160", "--threads", "1", "-q"]
    assert main(["detect", image, *common, "--max-pixels", "1000"]) == 1
    assert "over the limit of 0.001 megapixels (max_pixels=1000)" in capsys.readouterr().err
    assert main(["detect", image, *common, "--max-pixels", str(512 * 512)]) == 0
    assert main(["blur", image, "--out", str(tmp_path / "b"), *common, "--max-pixels", "1000"]) == 1
    assert main(["align", image, "--out", str(tmp_path / "a"), *common, "--max-pixels", "1000"]) == 1
    assert main(["video", image, *common[:-1], "--max-pixels", "1000"]) == 1
    assert "over the limit" in capsys.readouterr().err
    parser_args = __import__("facelite.cli", fromlist=["build_parser"]).build_parser()
    for argv in (["eval", "widerface"], ["eval", "landmarks"], ["eval", "labels", "x.txt"]):
        args = parser_args.parse_args([*argv, "--max-pixels", "0"])
        assert max_pixels_of(args) is None  # 0: no limit
    assert max_pixels_of(parser_args.parse_args(["detect", image])) == 250_000_000


# --------------------------------------------------------------------------- 6: model files given by path


def test_exported_and_shipped_models_carry_a_graph_checksum(random_model_path):
    from facelite.modelfile import CHECKSUM_KEY, read_model_file
    from facelite.models import MODEL_NAMES, PRECISIONS, shipped_path

    for path in [random_model_path] + [shipped_path(n, p) for n in MODEL_NAMES for p in PRECISIONS]:
        digest, metadata = read_model_file(path.read_bytes())
        assert metadata.get(CHECKSUM_KEY) == digest, path


def _corrupted_copy(src: Path, dst: Path, count: int = 50) -> Path:
    onnx = pytest.importorskip("onnx")
    biggest = max(onnx.load(str(src)).graph.initializer, key=lambda t: len(t.raw_data))
    data = bytearray(src.read_bytes())
    at = data.find(biggest.raw_data[:64]) + len(biggest.raw_data) // 2
    for k in range(count):  # 50 weight bytes, as in the issue
        data[at + 7 * k] ^= 0x5A
    dst.write_bytes(bytes(data))
    return dst


def test_corrupted_weights_are_refused(random_model_path, tmp_path):
    from facelite.detector import FaceDetector

    bad = _corrupted_copy(random_model_path, tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match="weights do not match their checksum: the file is corrupted"):
        FaceDetector(model=bad)  # before: loaded, and found hundreds of "faces"
    r = _facelite(["models", str(bad)], cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [f"facelite models: error: {bad}: weights do not match their checksum: "
                                        "the file is corrupted"]


def _with_spec(src: Path, dst: Path, **changes) -> Path:
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(src))
    for p in proto.metadata_props:
        if p.key == "facelite.spec":
            raw = changes.pop("_raw", None)
            if raw is None:
                spec = json.loads(p.value)
                spec.update(changes)
                raw = json.dumps(spec)
            p.value = raw
    onnx.save(proto, str(dst))  # the graph is unchanged: its checksum still holds
    return dst


@pytest.mark.parametrize("changes, message", [
    ({"pad_multiple": 0}, "pad_multiple must be a positive multiple of the largest stride, got 0"),
    ({"strides": [0, 16, 32]}, "strides must be positive and increasing"),
    ({"strides": [8, 16, "x"]}, "strides must hold integers"),
    ({"variances": [0.1, float("nan")]}, "variances must be (centre, size), finite and > 0"),
    ({"variances": [0.1, -0.2]}, "variances must be (centre, size), finite and > 0"),
    ({"std": [1.0, 0.0, 1.0]}, "mean and std need 3 finite values each, std > 0"),
    ({"mean": [1.0, 2.0]}, "mean and std need 3 finite values each"),
    ({"min_sizes": [[16, 32], [], [256, 512]]}, "at least one per level"),
    ({"min_sizes": [[16, 32], [64], [256, 512]]}, "every level needs the same number of anchors"),
    ({"min_sizes": [[0], [64], [256]]}, "anchor sizes (min_sizes) must be positive"),
    ({"strides": 8}, "malformed model spec metadata: a value of the wrong type"),
    ({"_raw": "{not json"}, "malformed model spec metadata: not JSON"),
    ({"strides": [8, 16, 64], "pad_multiple": 64}, "the metadata does not fit the network"),
    ({"min_sizes": [[16], [64], [256]]}, "the metadata does not fit the network"),
])
def test_malformed_metadata_is_a_one_line_error(changes, message, random_model_path, tmp_path):
    bad = _with_spec(random_model_path, tmp_path / "bad.onnx", **changes)
    r = _facelite(["models", str(bad)], cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err, err[-2000:]  # before: ZeroDivisionError etc.
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_model_without_a_checksum_loads_with_a_warning(random_model_path, tmp_path):
    onnx = pytest.importorskip("onnx")
    from facelite.detector import FaceDetector
    from facelite.modelfile import CHECKSUM_KEY, ModelChecksumWarning

    proto = onnx.load(str(random_model_path))
    keep = [p for p in proto.metadata_props if p.key != CHECKSUM_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    with pytest.warns(ModelChecksumWarning, match="no weights checksum"):
        FaceDetector(model=old, input_size=160)
    r = _facelite(["models", str(old)], cwd=tmp_path)
    assert r.returncode == 0
    assert r.stderr.decode().splitlines() == [f"facelite models: warning: {old}: no weights checksum in its metadata "
                                              "(exported by an older facelite or another tool): corruption cannot be "
                                              "detected; export it again, or stamp it with python -m facelite.models "
                                              "--stamp FILE"]
    r = _python("import sys; sys.argv[1:] = ['--stamp', sys.argv[1]]; import runpy; "
                "runpy.run_module('facelite.models', run_name='__main__')", str(old), cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FaceDetector(model=old, input_size=160)  # stamped: no warning


# --------------------------------------------------------------------------- 7: library noise on standard error


def _damaged_files(folder: Path) -> list[Path]:
    import cv2

    img = cv2.resize(cv2.imread(str(data_path("astronaut.jpg"))), (96, 96))
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    dht = jpeg.find(b"\xff\xc4")
    files = {
        "stray.jpg": jpeg[:dht] + b"\x00\x11\x22" + jpeg[dht:],  # libjpeg: "Corrupt JPEG data: 3 extraneous bytes"
        "cut-scan.jpg": jpeg[: len(jpeg) * 2 // 3] + b"\xff\xd9",  # libjpeg: "premature end of data segment"
    }
    png = bytearray(cv2.imencode(".png", img)[1].tobytes())
    png[png.find(b"IDAT") + 60] ^= 0xFF  # libpng: "IDAT: CRC error" / zlib errors
    files["idat.png"] = bytes(png)
    tiff = cv2.imencode(".tiff", img)[1].tobytes()
    files["cut.tiff"] = tiff[: len(tiff) // 2]  # libtiff through OpenCV's logger
    out = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out.append(folder / name)
    return out


def test_image_library_messages_stay_off_stderr(random_model_path, tmp_path):
    (tmp_path / "in").mkdir()
    _damaged_files(tmp_path / "in")
    r = _facelite(["detect", str(tmp_path / "in"), "--model", str(random_model_path), "--input-size", "160",
                   "--threads", "1", "--workers", "2", "--score-threshold", "0.99", "-q"], cwd=tmp_path)
    lines = r.stderr.decode(errors="replace").splitlines()
    noise = [line for line in lines if not line.startswith("facelite detect: ")]
    assert noise == []  # before: 5 lines from libjpeg (2), libpng (1) and libtiff (2)
    assert any("skipped" in line for line in lines)  # facelite's own messages stay
    assert lines[-1].startswith("facelite detect: ") and "images" in lines[-1]


def test_python_messages_during_a_decode_are_not_lost(capfd):
    """While descriptor 2 is silenced for a decode, Python's sys.stderr still reaches the terminal."""
    import sys
    import threading

    from facelite.quiet import decoder_messages_silenced, separate_python_stderr

    with separate_python_stderr():
        with decoder_messages_silenced():
            print("from python", file=sys.stderr, flush=True)
            os.write(2, b"from C\n")  # what libjpeg does
            t = threading.Thread(target=lambda: print("from a thread", file=sys.stderr, flush=True))
            t.start()
            t.join()
        os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "from python" in err and "from a thread" in err and "after" in err and "from C" not in err


# --------------------------------------------------------------------------- the fuzzing command


def test_fuzz_100_files(tmp_path):
    """``python -m benchmarks.fuzz`` on 100 files: every file is detected or a documented error."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--files", "100", "--chunk", "50", "--seed", "1",
                        "--json", str(tmp_path / "fuzz.json"), "--quiet"],
                       cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, (r.stdout.decode()[-2000:], r.stderr.decode()[-2000:])
    summary = json.loads((tmp_path / "fuzz.json").read_text())
    o = summary["outcomes"]
    assert o["other"] == o["crash"] == o["hang"] == 0 and o["detected"] + o["documented"] == 100
    assert o["detected"] > 10 and o["documented"] > 10  # both paths were exercised
    assert summary["stderr_lines"] == 0 and summary["peak_rss_mb"] < 1024
    assert "| documented error (ImageLoadError) |" in r.stdout.decode()


@pytest.mark.slow
def test_a_genuine_200_megapixel_jpeg_decodes_at_the_default_limit(tmp_path):
    """16330 x 12250 (200 MP): accepted by default; the decode's peak memory stays near 1.2 GB."""
    make = """
import sys, cv2, numpy as np
small = cv2.imread(sys.argv[1])
big = cv2.resize(small, (16330, 12250), interpolation=cv2.INTER_LINEAR)
ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
buf.tofile(sys.argv[2])
"""
    photo = tmp_path / "200mp.jpg"
    r = _python(make, str(data_path("astronaut.jpg")), str(photo), timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    probe = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from facelite.imageio import load_image
image = load_image(sys.argv[1])
print(image.shape, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    r = _python(probe, str(photo), timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    shape, peak_mb = r.stdout.decode().rsplit(")", 1)
    assert shape + ")" == "(12250, 16330, 3)"
    assert float(peak_mb) < 1500  # measured 1230 MB: the 600 MB image and the decoder's copy
