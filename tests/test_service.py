"""``facelite serve``: the FastAPI service on a real uvicorn server (loopback, free port), the
shipped model, real HTTP requests, and every limit reached for real."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'facelite[serve]'")
pytest.importorskip("uvicorn", reason="the service needs the serve extra: pip install 'facelite[serve]'")

from serve_util import running_server, small_limits
from test_detector import ASTRONAUT_BOX

from facelite import FaceDetector, load_image
from facelite.nms import box_iou
from facelite.paths import data_path
from facelite.service import Limits, ServiceSettings


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(threads=1)


@pytest.fixture(scope="module")
def server(detector):
    with running_server(ServiceSettings([detector], small_limits())) as srv:
        yield srv


@pytest.fixture(scope="module")
def jpeg():
    return data_path("astronaut.jpg").read_bytes()


def request(port, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def multipart(field, filename, data, extra=None):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (extra or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds it took."""
    sock.settimeout(limit_s)
    t0 = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - t0


# ---------------------------------------------------------------------- answers


def test_detect_answers_what_the_library_finds(server, detector, jpeg):
    status, ctype, body = request(server.port, "POST", "/detect", jpeg, {"Content-Type": "image/jpeg"})
    assert status == 200 and ctype == "application/json"
    rec = json.loads(body)
    assert (rec["width"], rec["height"]) == (512, 512)
    assert rec["model"]["name"] == "mobilenetv2-0.35" and rec["input_size"] == 640
    expected = detector.detect(load_image(data_path("astronaut.jpg")))
    assert len(rec["faces"]) == len(expected) == 1
    got = rec["faces"][0]
    assert np.allclose(got["box"], expected[0].box, atol=0.01)
    assert np.allclose(got["landmarks"], expected[0].landmarks, atol=0.01)
    assert box_iou(np.array([got["box"]]), np.array([ASTRONAUT_BOX]))[0, 0] > 0.7
    assert set(rec["timings_ms"]) == {"preprocess_ms", "network_ms", "postprocess_ms", "total_ms"}


def test_multipart_form_upload_and_16_bit_grey_png(server, jpeg):
    body, headers = multipart("image", "astronaut.jpg", jpeg, extra={"note": "ignored"})
    status, _, answer = request(server.port, "POST", "/detect", body, headers)
    assert status == 200 and len(json.loads(answer)["faces"]) == 1
    grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    png16 = cv2.imencode(".png", grey.astype(np.uint16) * 257)[1].tobytes()
    status, _, answer = request(server.port, "POST", "/detect", png16)
    assert status == 200 and len(json.loads(answer)["faces"]) == 1


def test_a_request_chooses_model_precision_input_size_and_threshold(server, jpeg):
    status, _, body = request(server.port, "POST", "/detect?model=mobilenetv2-1.0&precision=int8&input_size=320", jpeg)
    rec = json.loads(body)
    assert status == 200 and rec["model"]["name"] == "mobilenetv2-1.0" and rec["model"]["precision"] == "int8"
    assert rec["input_size"] == 320 and len(rec["faces"]) == 1
    assert box_iou(np.array([rec["faces"][0]["box"]]), np.array([ASTRONAUT_BOX]))[0, 0] > 0.6
    status, _, body = request(server.port, "POST", "/detect?score_threshold=1.0", jpeg)
    assert status == 200 and json.loads(body)["faces"] == []
    # the chosen settings were for that request only: the default answer is unchanged
    status, _, body = request(server.port, "POST", "/detect", jpeg)
    rec = json.loads(body)
    assert rec["input_size"] == 640 and rec["model"]["name"] == "mobilenetv2-0.35" and len(rec["faces"]) == 1
    status, _, body = request(server.port, "POST", "/detect?model=../../etc/passwd", jpeg)
    assert status == 400 and "not served here" in json.loads(body)["error"]


def test_annotate_and_anonymize_return_images_of_the_same_size(server, jpeg):
    original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    status, ctype, body = request(server.port, "POST", "/annotate?format=png", jpeg)
    assert status == 200 and ctype == "image/png"
    drawn = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == original.shape and not np.array_equal(drawn, original)
    status, ctype, body = request(server.port, "POST", "/anonymize?method=fill&shape=box&margin=0&format=png", jpeg)
    assert status == 200 and ctype == "image/png"
    filled = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_BOX)
    assert filled[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10].max() == 0  # the face is black
    assert np.array_equal(filled[:40], original[:40])  # above the face: untouched
    status, ctype, _ = request(server.port, "POST", "/anonymize", jpeg)
    assert status == 200 and ctype == "image/jpeg"


def test_health_models_openapi_docs_page_and_metrics(server, jpeg):
    status, _, body = request(server.port, "GET", "/health")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["limits"]["max_body_bytes"] == 2_000_000
    models = json.loads(request(server.port, "GET", "/models")[2])
    assert {"name": "mobilenetv2-1.0", "precision": "int8"} in models["models"]
    assert models["default"]["name"] == "mobilenetv2-0.35"
    spec = json.loads(request(server.port, "GET", "/openapi.json")[2])
    assert {"/detect", "/annotate", "/anonymize", "/health", "/models", "/metrics"} <= set(spec["paths"])
    assert "image/jpeg" in spec["paths"]["/detect"]["post"]["requestBody"]["content"]
    status, ctype, body = request(server.port, "GET", "/docs")
    assert status == 200 and b"openapi.json" in body
    # offline: the API page's scripts come from this server, never from a CDN
    assets = re.findall(rb'(?:src|href)="([^"]+)"', body)
    assert assets and all(a.startswith(b"/docs-static/") for a in assets), assets
    for asset in assets:
        assert request(server.port, "GET", asset.decode())[0] == 200
    status, ctype, body = request(server.port, "GET", "/")
    assert status == 200 and ctype.startswith("text/html") and b"app.js" in body
    for name in ("app.js", "style.css"):
        assert request(server.port, "GET", f"/static/{name}")[0] == 200
    request(server.port, "POST", "/detect", jpeg)
    request(server.port, "POST", "/detect", b"junk")
    status, ctype, body = request(server.port, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and ctype.startswith("text/plain")
    ok = re.search(r'facelite_requests_total\{method="POST",path="/detect",status="200"\} (\d+)', text)
    bad = re.search(r'facelite_errors_total\{path="/detect",status="400"\} (\d+)', text)
    assert ok and int(float(ok.group(1))) >= 1 and bad and int(float(bad.group(1))) >= 1
    assert 'facelite_request_duration_seconds_bucket{le="0.005",path="/detect"}' in text
    assert "facelite_images_in_flight 0.0" in text


# ---------------------------------------------------------------------- refusals, all JSON


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        ("POST", "/detect", b"", 400, "no body"),
        ("POST", "/detect", b"not an image at all", 400, "not an image file"),
        ("POST", "/detect", b"\xff\xd8\xff\xe0" + b"\x00" * 50, 400, "cannot read the size"),
        ("POST", "/detect", b"x" * 2_000_001, 413, "at most 2000000"),
        ("POST", "/detect", b"GIF89a" + b"\x00" * 40, 415, "GIF images are not accepted"),
        ("POST", "/detect", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 40, 415, "JPEG2000 images are not accepted"),
        ("POST", "/detect", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, 415, "not accepted"),
        ("POST", "/annotate?format=gif", b"x", 400, "format"),
        ("POST", "/anonymize?method=smudge", b"x", 400, "method"),
        ("POST", "/anonymize?margin=abc", b"x", 400, "margin"),
        ("POST", "/detect?input_size=5000", b"x", 400, "input_size must be in [32, 1920]"),
        ("POST", "/nothing", b"x", 404, "no such endpoint"),
        ("GET", "/detect", None, 405, "takes POST"),
        ("PUT", "/detect", b"x", 405, "takes POST"),
        ("DELETE", "/health", None, 405, "takes GET"),
        ("POST", "/health", b"x", 405, "takes GET"),
    ],
)
def test_bad_requests_get_a_json_error_and_the_server_goes_on(server, jpeg, method, path, body, status, message):
    got_status, ctype, got = request(server.port, method, path, body)
    assert got_status == status and ctype == "application/json"
    assert message in json.loads(got)["error"]
    assert request(server.port, "POST", "/detect", jpeg)[0] == 200  # still serving


def _png_bomb(w: int, h: int) -> bytes:
    ihdr = struct.pack(">II5B", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"
            + b"\0\0\0\0IEND\xaeB`\x82")


def _patched(ext: str, patch) -> bytes:
    data = bytearray(cv2.imencode(ext, np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    patch(data)
    return bytes(data)


def _jpeg_bomb(data: bytearray) -> None:
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60000, 60000)


def _tiff_bomb() -> bytes:
    entries = struct.pack("<HHII", 256, 4, 1, 100_000) + struct.pack("<HHII", 257, 4, 1, 100_000)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\0\0\0\0"


BOMBS = {
    "png": lambda: _png_bomb(30000, 30000),
    "jpeg": lambda: _patched(".jpg", _jpeg_bomb),
    "webp": lambda: b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0\0\0\0"
    + (16383).to_bytes(3, "little") * 2,
    "bmp": lambda: _patched(".bmp", lambda d: struct.pack_into("<ii", d, 18, 40000, 40000)),
    "tiff": _tiff_bomb,
}


@pytest.mark.parametrize("fmt", sorted(BOMBS))
def test_a_decompression_bomb_is_refused_from_its_header_at_once(server, jpeg, fmt):
    bomb = BOMBS[fmt]()
    assert len(bomb) < 1000
    t0 = time.monotonic()
    status, ctype, body = request(server.port, "POST", "/detect", bomb)
    assert time.monotonic() - t0 < 1.0
    assert status == 413 and ctype == "application/json"
    assert "megapixels; this server takes at most 4 megapixels" in json.loads(body)["error"]


@pytest.mark.parametrize("expect", [False, True])
def test_a_huge_announced_body_is_refused_before_it_is_sent(server, expect):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/detect")
        conn.putheader("Content-Length", str(10**10))
        if expect:
            conn.putheader("Expect", "100-continue")
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 413 and "at most 2000000" in json.loads(r.read())["error"]
        assert r.getheader("Connection") == "close"
    finally:
        conn.close()


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"POST /detect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 500_000
        try:
            for _ in range(6):  # 3 MB, over the 2 MB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, _ = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 413") and b"the most this server takes" in data


# ---------------------------------------------------------------------- slow clients


def test_300_silent_or_half_header_connections_neither_block_others_nor_stay_open(server, jpeg):
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
    socks[0].sendall(b"POST /detect HTTP/1.1\r\nHost: t\r\n")  # and never the end of the headers
    t_open = time.monotonic()
    try:
        for method, path, body in (("GET", "/health", None), ("POST", "/detect", jpeg)):
            t0 = time.monotonic()
            assert request(server.port, method, path, body, timeout=5)[0] == 200  # others are served meanwhile
            assert time.monotonic() - t0 < 1.0
        closed_after: list[float] = []
        pending = {s.fileno(): s for s in socks}
        while pending and time.monotonic() - t_open < 6:
            ready, _, _ = select.select(list(pending), [], [], 0.2)
            for fd in ready:
                assert pending.pop(fd).recv(1024) == b""  # closed without an answer
                closed_after.append(time.monotonic() - t_open)
        assert not pending and 0.8 < min(closed_after) and max(closed_after) < 4.0  # header timeout 1 s
    finally:
        for s in socks:
            s.close()


def test_a_stalled_body_gets_408_after_the_body_timeout(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"POST /detect HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        data, seconds = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 408") and b'"error"' in data and b"within 1 s" in data
    assert 0.8 < seconds < 3.5


def test_an_idle_keep_alive_connection_is_closed(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        data, seconds = read_until_closed(sock, 10)
    assert data.startswith(b"HTTP/1.1 200") and seconds < 3.5


def test_invalid_http_gets_a_json_400(server):
    sock = socket.create_connection(("127.0.0.1", server.port))
    with sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data, _ = read_until_closed(sock, 5)
    assert data.startswith(b"HTTP/1.1 400") and b'{"error": "invalid HTTP request' in data


# ---------------------------------------------------------------------- capacity


def test_a_request_beyond_the_queue_gets_503_at_once(detector, jpeg):
    """1 worker, queue 1: with the worker held and one image waiting, the next is refused."""
    with running_server(ServiceSettings([detector], small_limits(queue=1))) as srv:
        pool = srv.app.state.pool
        release = threading.Event()
        held = asyncio.run_coroutine_threadsafe(pool.run(release.wait, 30), srv.loop)
        waiting: list[int] = []
        t = threading.Thread(target=lambda: waiting.append(request(srv.port, "POST", "/detect", jpeg)[0]))
        try:
            deadline = time.monotonic() + 10
            while pool.in_flight < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            t.start()
            while pool.in_flight < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert pool.in_flight == 2
            t0 = time.monotonic()
            status, ctype, body = request(srv.port, "POST", "/detect", jpeg)
            assert time.monotonic() - t0 < 0.5
            assert status == 503 and "busy" in json.loads(body)["error"]
        finally:
            release.set()
            held.result(10)
            t.join(30)
        assert waiting == [200]  # the queued image was served once the worker was free
        metrics = request(srv.port, "GET", "/metrics")[2].decode()
        assert "facelite_busy_total 1.0" in metrics


def test_connections_beyond_the_cap_are_answered_503(detector, jpeg):
    with running_server(ServiceSettings([detector], small_limits(max_connections=3, header_timeout_s=10))) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        time.sleep(0.2)
        try:
            status, ctype, body = request(srv.port, "GET", "/health")
            assert status == 503 and "too many connections" in json.loads(body)["error"]
        finally:
            for s in idle:
                s.close()
        time.sleep(0.2)
        assert request(srv.port, "GET", "/health")[0] == 200


def test_the_api_key_is_required_when_set(detector, jpeg):
    with running_server(ServiceSettings([detector], small_limits(), api_key="s3cret")) as srv:
        status, _, body = request(srv.port, "POST", "/detect", jpeg)
        assert status == 401 and "API key" in json.loads(body)["error"]
        assert request(srv.port, "POST", "/detect", jpeg, {"X-API-Key": "wrong"})[0] == 401
        assert request(srv.port, "GET", "/metrics")[0] == 401
        assert request(srv.port, "POST", "/detect", jpeg, {"X-API-Key": "s3cret"})[0] == 200
        assert request(srv.port, "POST", "/detect", jpeg, {"Authorization": "Bearer s3cret"})[0] == 200
        assert request(srv.port, "GET", "/health")[0] == 200  # for load balancers
        assert request(srv.port, "GET", "/")[0] == 200  # the page asks for the key itself


# ---------------------------------------------------------------------- the command


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(data_path("astronaut.jpg").parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_sigterm_lets_the_request_in_progress_finish(jpeg):
    proc = subprocess.Popen([sys.executable, "-m", "facelite", "serve", "--port", "0", "--threads", "1", "-q"],
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stderr.readline()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert m, line
        port = int(m.group(1))
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        with sock:
            head = f"POST /detect HTTP/1.1\r\nHost: t\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            sock.sendall(head + jpeg[:1000])
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert proc.poll() is None  # still finishing the request
            sock.sendall(jpeg[1000:])
            data, _ = read_until_closed(sock, 20)
        assert data.startswith(b"HTTP/1.1 200")
        assert len(json.loads(data.split(b"\r\n\r\n", 1)[1])["faces"]) == 1
        assert proc.wait(20) == 0
        assert "stopped" in proc.stderr.read()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_without_the_extra_says_what_to_install():
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from facelite.cli import main; sys.exit(main(['serve']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "facelite serve: the service needs the serve extra (fastapi is missing): pip install 'facelite[serve]'"]


def test_serve_help_needs_no_extra_and_shows_the_service_limits():
    """The command line's defaults are :class:`Limits`' own (one definition), read without FastAPI."""
    code = ("import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"
            "from facelite.cli import main\ntry:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('cv2', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "(default: 1920)" in " ".join(proc.stdout.split())
    assert proc.stdout.splitlines()[-1] == "[]"  # --help stays fast: no OpenCV, no ONNX Runtime
    from facelite.cli import build_parser

    args = build_parser().parse_args(["serve"])
    d = Limits()
    assert (args.queue, args.max_body_mb * 2**20, args.max_pixels, args.max_input_size, args.max_connections,
            args.header_timeout, args.body_timeout, args.keep_alive) == (
        d.queue, d.max_body_bytes, d.max_pixels, d.max_input_size, d.max_connections,
        d.header_timeout_s, d.body_timeout_s, d.keep_alive_s)
