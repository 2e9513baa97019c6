"""``facelite serve``: a real server on a free port, the shipped model, real HTTP requests."""

import http.client
import json
import threading
import uuid

import cv2
import numpy as np
import pytest
from test_detector import ASTRONAUT_BOX

from facelite import FaceDetector, load_image
from facelite.cli import main
from facelite.nms import box_iou
from facelite.paths import data_path
from facelite.server import DetectionService, image_from_body, make_server


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(threads=1)


@pytest.fixture(scope="module")
def server(detector):
    srv = make_server(DetectionService(detector, max_body_bytes=2_000_000), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def jpeg():
    return data_path("astronaut.jpg").read_bytes()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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


def test_detect_answers_what_the_library_finds(server, detector, jpeg):
    status, ctype, body = request(server, "POST", "/detect", jpeg, {"Content-Type": "image/jpeg"})
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


def test_multipart_form_upload_and_png_and_grey_images(server, jpeg):
    body, headers = multipart("image", "astronaut.jpg", jpeg, extra={"note": "ignored"})
    status, _, answer = request(server, "POST", "/detect", body, headers)
    assert status == 200 and len(json.loads(answer)["faces"]) == 1
    grey = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    png16 = cv2.imencode(".png", grey.astype(np.uint16) * 257)[1].tobytes()
    status, _, answer = request(server, "POST", "/detect", png16)
    assert status == 200 and len(json.loads(answer)["faces"]) == 1


def test_score_threshold_per_request_only_raises_it(server, jpeg):
    status, _, body = request(server, "POST", "/detect?score_threshold=1.0", jpeg)
    assert status == 200 and json.loads(body)["faces"] == []
    status, _, body = request(server, "POST", "/detect?score_threshold=0.1", jpeg)
    assert status == 400 and "score_threshold" in json.loads(body)["error"]


def test_annotate_and_anonymize_return_images_of_the_same_size(server, jpeg):
    original = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    status, ctype, body = request(server, "POST", "/annotate?format=png", jpeg)
    assert status == 200 and ctype == "image/png"
    drawn = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == original.shape
    status, ctype, body = request(server, "POST", "/anonymize?method=fill&shape=box&margin=0&format=png", jpeg)
    assert status == 200 and ctype == "image/png"
    filled = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_BOX)
    assert filled[y1 + 10 : y2 - 10, x1 + 10 : x2 - 10].max() == 0  # the face is black
    assert np.array_equal(filled[:40], original[:40])  # above the face: untouched
    status, ctype, _ = request(server, "POST", "/anonymize", jpeg)
    assert status == 200 and ctype == "image/jpeg"


@pytest.mark.parametrize(
    "path, body, headers, status, message",
    [
        ("/detect", b"", {}, 400, "no body"),
        ("/detect", b"not an image at all", {}, 400, "not an image file"),
        ("/detect", None, {}, 411, "Content-Length"),
        ("/detect", b"x" * 2_000_001, {}, 413, "at most 2000000"),
        ("/annotate?format=gif", b"x", {}, 400, "format must be one of"),
        ("/anonymize?method=smudge", b"x", {}, 400, "method must be one of"),
        ("/anonymize?margin=abc", b"x", {}, 400, "margin must be a number"),
        ("/nothing", b"x", {}, 404, "no endpoint"),
        ("/health", b"x", {}, 405, "takes GET"),
    ],
)
def test_bad_requests_get_a_clear_error_and_the_server_goes_on(server, jpeg, path, body, headers, status, message):
    if body is None:  # a POST without Content-Length, sent by hand
        conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
        conn.putrequest("POST", path)
        conn.endheaders()
        r = conn.getresponse()
        got_status, got = r.status, r.read()
        conn.close()
    else:
        got_status, _, got = request(server, "POST", path, body, headers)
    assert got_status == status
    assert message in json.loads(got)["error"]
    assert request(server, "POST", "/detect", jpeg)[0] == 200  # still serving


@pytest.mark.parametrize("expect", [False, True])
def test_a_huge_announced_body_is_refused_before_it_is_sent(server, expect):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
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


def test_truncated_jpeg_is_refused(server, jpeg):
    status, _, body = request(server, "POST", "/detect", jpeg[: len(jpeg) // 2])
    assert status == 400 and "truncated" in json.loads(body)["error"]


def test_health_and_index_and_wrong_method(server):
    status, _, body = request(server, "GET", "/health")
    info = json.loads(body)
    assert status == 200 and info["status"] == "ok" and info["model"]["name"] == "mobilenetv2-0.35"
    assert len(info["model"]["sha256"]) == 12
    status, _, body = request(server, "GET", "/")
    assert status == 200 and "POST /detect" in json.loads(body)["endpoints"]
    status, _, body = request(server, "GET", "/detect")
    assert status == 405 and "POST" in json.loads(body)["error"]


def test_concurrent_requests_all_get_their_own_answer(server, jpeg):
    small = cv2.imencode(".jpg", cv2.resize(cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1), (256, 256)))[1].tobytes()
    answers: dict[int, dict] = {}

    def send(i):
        answers[i] = json.loads(request(server, "POST", "/detect", jpeg if i % 2 else small)[2])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == list(range(6))
    for i, rec in answers.items():
        assert rec["width"] == (512 if i % 2 else 256) and len(rec["faces"]) == 1


def test_a_pool_of_detectors_serves_requests_side_by_side(jpeg):
    class Counting(FaceDetector):
        calls = 0

        def detect(self, image):
            type(self).calls += 1
            self.uses = getattr(self, "uses", 0) + 1
            return super().detect(image)

    pool = [Counting(threads=1) for _ in range(2)]
    service = DetectionService(pool)
    assert service.info()["workers"] == 2
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(service.detect(jpeg))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and all(len(a.faces) == 1 for a in answers)
    assert Counting.calls == 8 and sum(d.uses for d in pool) == 8
    with pytest.raises(ValueError, match="same model and settings"):
        DetectionService([pool[0], FaceDetector(threads=1, input_size=320)])
    with pytest.raises(ValueError, match="same model and settings"):
        DetectionService([pool[0], FaceDetector(threads=1, tile_size=640)])
    with pytest.raises(ValueError, match="at least one"):
        DetectionService([])


def test_a_tiled_service_says_so_in_health_and_records(jpeg):
    plain = DetectionService(FaceDetector(threads=1))
    tiled = DetectionService(FaceDetector(threads=1, tile_size=320, tile_overlap=0.5))
    assert (plain.info()["tile_size"], tiled.info()["tile_size"], tiled.info()["tile_overlap"]) == (None, 320, 0.5)
    assert "tile" not in plain.record(plain.detect(jpeg))
    record = tiled.record(tiled.detect(jpeg))
    assert record["tile"] == {"size": 320, "overlap": 0.5} and len(record["faces"]) == 1


def test_keep_alive_connection_serves_several_requests(server, jpeg):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    try:
        for _ in range(3):
            conn.request("POST", "/detect", body=jpeg)
            r = conn.getresponse()
            assert r.status == 200 and len(json.loads(r.read())["faces"]) == 1
    finally:
        conn.close()


def test_multipart_parsing_picks_the_image_part():
    body, headers = multipart("file", "a.bin", b"\x00\xffIMAGE\r\n--notaboundary", extra={"comment": "hi"})
    assert image_from_body(body, headers["Content-Type"]) == b"\x00\xffIMAGE\r\n--notaboundary"
    with pytest.raises(ValueError, match="malformed multipart"):
        image_from_body(b"garbage", "multipart/form-data")


def test_serve_command_reports_a_port_in_use(detector, capsys):
    srv = make_server(DetectionService(detector), "127.0.0.1", 0, quiet=True)
    try:
        port = srv.server_address[1]
        assert main(["serve", "--port", str(port), "--threads", "1"]) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        srv.server_close()
    assert main(["serve", "--port", "70000"]) == 1


def test_serve_command_answers_and_stops_cleanly_on_sigterm(jpeg):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "facelite.cli", "serve", "--port", "0", "--threads", "1",
                             "--precision", "int8", "--input-size", "320", "--workers", "2"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()  # the "listening on http://127.0.0.1:PORT" line
        assert "listening on http://127.0.0.1:" in line and "int8, input 320, 2 workers x 1 threads" in line, line
        port = int(line.split("listening on http://127.0.0.1:")[1].split()[0])
        status, _, body = request(port, "POST", "/detect", jpeg)
        assert status == 200 and len(json.loads(body)["faces"]) == 1
        proc.send_signal(signal.SIGTERM)
        t0 = time.time()
        rc = proc.wait(timeout=20)
        rest = proc.stderr.read()
        assert rc == 0 and "stopped" in rest and time.time() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
