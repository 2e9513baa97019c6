"""A small HTTP service around one :class:`~facelite.detector.FaceDetector` (``facelite serve``).

Standard library only (:mod:`http.server`), so the run-time dependencies stay numpy,
onnxruntime and OpenCV. Endpoints:

- ``GET /health``: ``{"status": "ok", "model": ..., "input_size": ..., "score_threshold": ...}``.
- ``POST /detect``: the image in the request body, either raw (``curl --data-binary @a.jpg``)
  or as the file part of a ``multipart/form-data`` form (``curl -F image=@a.jpg``). Answers
  the same JSON record as ``facelite detect --json`` for one image, without ``path``: boxes
  ``[x1, y1, x2, y2]`` and landmarks ``[x, y]`` in pixels of the uploaded image (left eye,
  right eye, nose, left mouth corner, right mouth corner, as seen in the image).
- ``POST /annotate``: the image with boxes, scores and landmarks drawn (JPEG, or PNG with
  ``?format=png``).
- ``POST /anonymize``: the image with every face blurred (``?method=blur|pixelate|fill``,
  ``&shape=ellipse|box``, ``&margin=0.15``), JPEG or PNG.

Every POST takes ``?score_threshold=`` to raise (never lower) the server's threshold for that
request. Errors answer ``{"error": "..."}`` with 400 (not an image, truncated, too many pixels,
bad parameter), 404, 405, 411 (no Content-Length) or 413 (body over the limit). Requests are
served by one thread each; images decode in parallel, and each of the service's detectors
runs one image at a time (``facelite serve --workers N``: N detectors).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from .detector import FaceDetector
from .face import Face
from .imageio import decode_image

__all__ = ["DetectionService", "RequestError", "make_server"]

log = logging.getLogger("facelite.serve")

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
IMAGE_FORMATS = {"jpeg": (".jpg", "image/jpeg"), "jpg": (".jpg", "image/jpeg"), "png": (".png", "image/png")}


class RequestError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Detection:
    """One served image: ``image`` H x W x 3 uint8 BGR as decoded, ``faces`` in its pixels."""

    image: np.ndarray
    faces: list[Face]
    timings_ms: dict[str, float]


def _settings(d: FaceDetector) -> tuple:
    """What the detectors of one service must share."""
    return (d.model_info.sha256, d.input_size, d.score_threshold, d.nms_threshold, d.min_face_size,
            d.tile_size, d.tile_overlap)


class DetectionService:
    """What the HTTP handler calls: decoding, detection, output encoding.

    Args:
        detector: the detector requests use, or several alike (same model and settings): each
            runs one image at a time, so N detectors serve up to N requests at once (on a
            many-core server, N single-threaded detectors give more images per second than one
            using every core).
        max_body_bytes: requests with a larger body are refused (413) before it is read.
    """

    def __init__(self, detector: FaceDetector | Sequence[FaceDetector],
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
        pool = [detector] if isinstance(detector, FaceDetector) else list(detector)
        if not pool:
            raise ValueError("DetectionService needs at least one detector")
        first = pool[0]
        for d in pool[1:]:
            if _settings(d) != _settings(first):
                raise ValueError("the detectors of one service must have the same model and settings")
        self.detector = first
        self.workers = len(pool)
        self.max_body_bytes = max_body_bytes
        self._idle: queue.SimpleQueue[FaceDetector] = queue.SimpleQueue()
        for d in pool:
            self._idle.put(d)

    def info(self) -> dict:
        d = self.detector
        return {
            "status": "ok",
            "model": d.model_record(),
            "input_size": d.input_size,
            "score_threshold": d.score_threshold,
            "nms_threshold": d.nms_threshold,
            "min_face_size": d.min_face_size,
            "tile_size": d.tile_size,
            "tile_overlap": d.tile_overlap,
            "workers": self.workers,
            "max_body_bytes": self.max_body_bytes,
        }

    def detect(self, data: bytes, score_threshold: float | None = None) -> Detection:
        """Decode ``data`` (any format OpenCV reads; grey, alpha and 16-bit images converted to
        8-bit BGR) and detect; ``score_threshold`` drops faces below it after detection."""
        try:
            image = decode_image(data, max_pixels=self.detector.max_image_pixels, name="the uploaded image")
        except ValueError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        detector = self._idle.get()  # waits while every detector is busy
        try:  # a detector runs one image at a time; its last_timings belong to this run
            faces = detector.detect(image)
            timings = dict(detector.last_timings)
        finally:
            self._idle.put(detector)
        if score_threshold is not None:
            faces = [f for f in faces if f.score >= score_threshold]
        return Detection(image, faces, {k: round(v, 3) for k, v in timings.items()})

    def record(self, det: Detection) -> dict:
        """The JSON answer of ``/detect`` (the record ``facelite detect --json`` writes, less ``path``)."""
        info = self.info()
        return {
            "width": int(det.image.shape[1]),
            "height": int(det.image.shape[0]),
            "faces": [f.to_dict() for f in det.faces],
            "model": info["model"],
            "input_size": info["input_size"],
            **self.detector.tile_record(),
            "timings_ms": det.timings_ms,
        }


def encode_image(image: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """``image`` encoded as ``fmt`` (jpeg/jpg/png) -> (bytes, MIME type)."""
    ext, mime = IMAGE_FORMATS[fmt]
    ok, buf = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [])
    if not ok:
        raise RuntimeError(f"could not encode the answer as {fmt}")
    return buf.tobytes(), mime


def image_from_body(body: bytes, content_type: str) -> bytes:
    """The image bytes of a request body: the body itself, or for ``multipart/form-data`` the
    part named ``image`` (else the first part that carries a file name, else the first part)."""
    if not body:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no body: send the image bytes or a form with an image file")
    if not content_type.lower().startswith("multipart/"):
        return body
    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "malformed multipart body (no boundary or no parts)")
    parts = list(msg.iter_parts())
    if not parts:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the multipart form has no parts")

    def pick():
        for p in parts:
            if p.get_param("name", header="content-disposition") == "image":
                return p
        for p in parts:
            if p.get_filename():
                return p
        return parts[0]

    data = pick().get_payload(decode=True)
    if not data:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the form's image part is empty")
    return data


def _query(path: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return parts.path.rstrip("/") or "/", query


def _float_param(query: dict[str, str], name: str, lo: float, hi: float) -> float | None:
    if name not in query:
        return None
    try:
        value = float(query[name])
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name} must be a number in [{lo:g}, {hi:g}], got {query[name]!r}")
    return value


def _choice_param(query: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = query.get(name, default).lower()
    if value not in choices:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{name} must be one of {', '.join(choices)}, got {query[name]!r}")
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "facelite"
    service: DetectionService  # set on the subclass make_server builds
    quiet = False

    # ------------------------------------------------------------------ routing

    def do_GET(self) -> None:
        path, _ = _query(self.path)
        if path in ("/", "/health"):
            self._json(HTTPStatus.OK, self.service.info() | ({"endpoints": ENDPOINTS} if path == "/" else {}))
        elif path in POST_ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST with an image", allow="POST")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see GET /")

    def do_POST(self) -> None:
        path, query = _query(self.path)
        route = POST_ROUTES.get(path)
        if route is None:
            self._discard(self._content_length() or 0, 1 << 20)
            if path in ("/", "/health"):
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes GET", allow="GET")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no endpoint {path}; see GET /")
            return
        try:
            body = self._read_body()
            threshold = _float_param(query, "score_threshold", self.service.detector.score_threshold, 1.0)
            status, payload, mime = route(self, image_from_body(body, self.headers.get("Content-Type", "")), query,
                                          threshold)
        except RequestError as exc:
            self._error(exc.status, str(exc))
            return
        except Exception as exc:  # the service must answer and keep serving; the details go to the log
            log.exception("%s %s failed", self.command, self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}: {exc}")
            return
        self._send(status, payload, mime)

    def _detect(self, data: bytes, query: dict[str, str], threshold: float | None):
        det = self.service.detect(data, threshold)
        return HTTPStatus.OK, json.dumps(self.service.record(det)).encode(), "application/json"

    def _annotate(self, data: bytes, query: dict[str, str], threshold: float | None):
        from .draw import draw_faces

        fmt = _choice_param(query, "format", tuple(IMAGE_FORMATS), "jpeg")
        det = self.service.detect(data, threshold)
        payload, mime = encode_image(draw_faces(det.image, det.faces), fmt)
        return HTTPStatus.OK, payload, mime

    def _anonymize(self, data: bytes, query: dict[str, str], threshold: float | None):
        from .anonymize import METHODS, SHAPES, anonymize

        fmt = _choice_param(query, "format", tuple(IMAGE_FORMATS), "jpeg")
        method = _choice_param(query, "method", METHODS, "blur")
        shape = _choice_param(query, "shape", SHAPES, "ellipse")
        margin = _float_param(query, "margin", 0.0, 2.0)
        det = self.service.detect(data, threshold)
        out = anonymize(det.image, det.faces, method, shape=shape, margin=0.15 if margin is None else margin,
                        inplace=True)
        payload, mime = encode_image(out, fmt)
        return HTTPStatus.OK, payload, mime

    # ------------------------------------------------------------------ I/O

    def _content_length(self) -> int | None:
        """The Content-Length header: None when absent, -1 when not a non-negative integer."""
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            length = int(raw)
        except ValueError:
            return -1
        return length if length >= 0 else -1

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "chunked uploads are not supported: send a Content-Length")
        length = self._content_length()
        if length is None:
            self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the request needs a Content-Length header")
        if length < 0:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {self.headers['Content-Length']!r}")
        if length > self.service.max_body_bytes:
            # read up to 8x the limit, so that a client which sends it all before reading gets
            # the 413 instead of a broken pipe
            self._discard(length, 8 * self.service.max_body_bytes)
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(length))
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes")
        return body

    def _too_large(self, length: int) -> str:
        return f"the body has {length} bytes; this server takes at most {self.service.max_body_bytes}"

    def _discard(self, length: int, cap: int) -> None:
        """Read and drop a refused request's body of ``length`` bytes (``-1``: unknown) if it is
        at most ``cap``, so the connection stays usable; else mark the connection to close."""
        if not 0 <= length <= cap:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue`` (curl sends it for large uploads): refuse an oversized body
        before the client sends it."""
        length = self._content_length() or 0
        if self.command == "POST" and length > self.service.max_body_bytes:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large(length))
            return False
        return super().handle_expect_100()

    def _send(self, status: HTTPStatus, payload: bytes, mime: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-").title(), v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _json(self, status: HTTPStatus, obj: dict, **headers: str) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json", **headers)

    def _error(self, status: HTTPStatus, message: str, **headers: str) -> None:
        self._json(status, {"error": message}, **headers)

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            log.info("%s %s", self.address_string(), format % args)


POST_ROUTES = {"/detect": _Handler._detect, "/annotate": _Handler._annotate, "/anonymize": _Handler._anonymize}
ENDPOINTS = {
    "GET /health": "model and settings",
    "POST /detect": "image in the body (raw or multipart form) -> JSON faces; ?score_threshold=",
    "POST /annotate": "image -> annotated JPEG; ?format=png ?score_threshold=",
    "POST /anonymize": "image -> faces blurred; ?method=blur|pixelate|fill ?shape=ellipse|box ?margin= ?format=",
}


def make_server(service: DetectionService, host: str = "127.0.0.1", port: int = 8080,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A threading HTTP server bound to ``host:port`` (``port=0``: any free port, read it from
    ``server.server_address``); run it with ``serve_forever()`` and stop it with ``shutdown()``."""
    handler = type("FaceliteHandler", (_Handler,), {"service": service, "quiet": quiet})
    server_class = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address
        server_class = type("FaceliteServer6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server


def serve(service: DetectionService, host: str, port: int, quiet: bool = False,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C); ``ready(url)`` is called once listening."""
    server = make_server(service, host, port, quiet)
    h, p = server.server_address[:2]
    url = f"http://{'[' + h + ']' if ':' in str(h) else h}:{p}"
    if ready is not None:
        ready(url)
    t0 = time.time()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        log.info("stopped after %.0f s", time.time() - t0)
