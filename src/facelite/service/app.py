"""The FastAPI application of ``facelite serve``: endpoints, errors as JSON, API key, the page.

Endpoints (the JSON of ``/detect`` is the record ``facelite detect --json`` writes for one
image, without ``path``; boxes ``[x1, y1, x2, y2]`` and landmarks ``[x, y]`` are in pixels of
the uploaded image, continuous coordinates with the origin at the top-left corner of the
top-left pixel; landmarks in the order left eye, right eye, nose, left mouth corner, right
mouth corner, as seen in the image):

- ``GET /``: the web page (``static/``); ``GET /docs``, ``GET /openapi.json``: the API.
- ``GET /health``: model, settings and limits. ``GET /models``: the models a request may ask for.
- ``GET /metrics``: Prometheus text format (:mod:`.metrics`).
- ``POST /detect`` (JSON), ``POST /annotate`` (image with faces drawn), ``POST /anonymize``
  (faces blurred/pixelated/filled): the image as the raw body or as the file part of a
  ``multipart/form-data`` form; ``?model= &precision= &input_size= &score_threshold=``
  choose the detection for that request.

Every 4xx/5xx answer is ``{"error": "..."}``. The image is checked (format, pixel count from
the header) and decoded in the detector pool's threads, never on the event loop.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from swagger_ui_bundle import swagger_ui_path

from ..detector import FaceDetector
from ..imageio import ImageLoadError, decode_image
from ..models import available_models
from .limits import ACCEPTED_FORMATS, BodyBudget, Limits, RequestError, check_image, read_body
from .metrics import CONTENT_TYPE_LATEST, Metrics, MetricsMiddleware
from .pool import DetectorPool, DetectRequest, PoolBusy
from .upload import IMAGE_FORMATS, encode_image, image_from_body

__all__ = ["ServiceSettings", "create_app"]

API_KEY_HEADER = "X-API-Key"
STATIC_DIR = resources.files("facelite.service") / "static"
IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image (JPEG, PNG, WebP, BMP or TIFF) as the raw body, or a form whose file part is the image.",
        "content": {
            **{mime: {"schema": {"type": "string", "format": "binary"}} for mime in ACCEPTED_FORMATS.values()},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}},
        },
    }
}
ERRORS = {code: {"description": text, "content": {"application/json": {"example": {"error": "..."}}}}
          for code, text in [(400, "bad image or parameter"), (401, "API key missing or wrong"),
                             (408, "body too slow"), (413, "body or image too large"),
                             (415, "image format not accepted"), (503, "busy: every detector and the queue are full")]}


Model = Annotated[str | None, Query(description="model name (GET /models); default: the server's")]
Precision = Annotated[Literal["float32", "int8"] | None, Query(description="default: the server's")]
InputSize = Annotated[int | None, Query(description="longer side of the network input, pixels; default: the server's")]
Threshold = Annotated[float | None, Query(ge=0.0, le=1.0, description="minimum face score; default: the server's")]
Format = Annotated[Literal["jpeg", "jpg", "png"], Query(description="answer image format")]
Margin = Annotated[float, Query(ge=0.0, le=2.0, description="grown around each face box, fraction of its size")]


@dataclass
class ServiceSettings:
    """What a service is built from.

    Attributes:
        detectors: one ready detector per worker (same model and settings): the defaults of a
            request (model, precision, input size, score threshold) are theirs, and their NMS,
            minimum face size, tiles and thread count apply to every model a request asks for.
        limits: see :class:`~facelite.service.limits.Limits`.
        api_key: when set, ``/detect``, ``/annotate``, ``/anonymize``, ``/models`` and
            ``/metrics`` need it (header ``X-API-Key`` or ``Authorization: Bearer``).
    """

    detectors: list[FaceDetector]
    limits: Limits = field(default_factory=Limits)
    api_key: str | None = None

    @property
    def workers(self) -> int:
        return len(self.detectors)


def _model_factory(first: FaceDetector) -> Callable[[str, str], FaceDetector]:
    """Detectors like ``first`` for other models: shipped ones by name; the server's own model
    (given by path) under its name and precision."""
    own = (first.name, first.precision or "float32")

    def make(model: str, precision: str) -> FaceDetector:
        source = first.model_info.path if (model, precision) == own and not first.model_info.shipped else model
        return FaceDetector(model=source, precision=precision, input_size=first.input_size,
                            score_threshold=first.score_threshold, nms_threshold=first.nms_threshold,
                            threads=first.threads, top_k=first.top_k, keep_top_k=first.keep_top_k,
                            max_image_pixels=None, min_face_size=first.min_face_size,
                            tile_size=first.tile_size, tile_overlap=first.tile_overlap)

    return make


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(settings: ServiceSettings) -> FastAPI:
    """The ASGI application (serve it with :func:`facelite.service.runner.serve` or any ASGI server)."""
    if not settings.detectors:
        raise ValueError("the service needs at least one detector")
    first = settings.detectors[0]
    limits = settings.limits
    pool = DetectorPool(_model_factory(first), settings.workers, limits.queue, preload=settings.detectors)
    budget = BodyBudget(limits.max_buffered_bytes)
    metrics = Metrics(lambda: pool.in_flight)
    default_precision = first.precision or "float32"
    models = [{"name": n, "precision": p} for n, p, present in available_models() if present]
    if not any(m["name"] == first.name and m["precision"] == default_precision for m in models):
        models.insert(0, {"name": first.name, "precision": default_precision})
    allowed = {(m["name"], m["precision"]) for m in models}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()  # after uvicorn has let the requests in progress finish

    app = FastAPI(title="facelite", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Face and 5-landmark detection. Boxes [x1, y1, x2, y2] and landmarks [x, y] are "
                              "in pixels of the uploaded image (left eye, right eye, nose, left and right mouth "
                              "corner, as seen in the image). Every error is {\"error\": \"...\"}.")
    app.state.pool = pool
    app.state.metrics = metrics
    app.state.budget = budget

    # ------------------------------------------------------------------ errors as JSON

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.headers)

    @app.exception_handler(PoolBusy)
    async def busy(_: Request, exc: PoolBusy) -> JSONResponse:
        metrics.busy.inc()
        return _error(503, f"busy: {exc}; try again shortly", {"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = "no such endpoint; see GET /docs"
        elif exc.status_code == 405:
            message = f"method not allowed; this endpoint takes {exc.headers.get('Allow', '?') if exc.headers else '?'}"
        return _error(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            name = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{name}: {err.get('msg', 'invalid')} (got {err.get('input')!r})")
        return _error(400, "; ".join(parts))

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> Response:
        return _error(400, "the client closed the connection during the upload")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # uvicorn logs the traceback (the exception is raised again after this answer)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ helpers

    def check_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER)
        auth = request.headers.get("Authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise RequestError(HTTPStatus.UNAUTHORIZED,
                               f"this server needs an API key: send it in the {API_KEY_HEADER} header",
                               {"WWW-Authenticate": "Bearer"})

    def detect_request(model: str | None, precision: str | None, input_size: int | None,
                       score_threshold: float | None) -> DetectRequest:
        m = model or first.name
        p = precision or (default_precision if m == first.name else "float32")
        if (m, p) not in allowed:
            choices = ", ".join(f"{a}/{b}" for a, b in sorted(allowed))
            raise RequestError(HTTPStatus.BAD_REQUEST, f"model {m}/{p} is not served here; choose one of {choices}")
        size = first.input_size if input_size is None else input_size
        if not 32 <= size <= limits.max_input_size:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"input_size must be in [32, {limits.max_input_size}], got {size}")
        threshold = first.score_threshold if score_threshold is None else score_threshold
        return DetectRequest(m, p, size, threshold)

    async def handle(request: Request, req: DetectRequest, work: Callable) -> Response:
        check_key(request)
        body, reserved = await read_body(request.stream(), request.headers.get("content-length"), limits, budget)
        try:
            content_type = request.headers.get("content-type", "")
            payload, mime = await pool.run(_work, pool, req, body, content_type, limits.max_pixels, work)
        finally:
            budget.give(reserved)
        return Response(payload, media_type=mime)

    # ------------------------------------------------------------------ endpoints

    @app.post("/detect", openapi_extra=IMAGE_BODY, responses=ERRORS, summary="Faces and landmarks as JSON")
    async def detect(request: Request, model: Model = None, precision: Precision = None, input_size: InputSize = None,
                     score_threshold: Threshold = None) -> Response:
        """``{"width", "height", "faces": [{"box", "score", "landmarks"}], "model", "input_size", "timings_ms"}``."""
        req = detect_request(model, precision, input_size, score_threshold)
        return await handle(request, req, ("json",))

    @app.post("/annotate", openapi_extra=IMAGE_BODY, responses=ERRORS, summary="The image with the faces drawn",
              response_class=Response)
    async def annotate(request: Request, model: Model = None, precision: Precision = None,
                       input_size: InputSize = None, score_threshold: Threshold = None,
                       format: Format = "jpeg") -> Response:
        req = detect_request(model, precision, input_size, score_threshold)
        return await handle(request, req, ("annotate", format))

    @app.post("/anonymize", openapi_extra=IMAGE_BODY, responses=ERRORS, summary="The image with every face hidden",
              response_class=Response)
    async def anonymize(request: Request, model: Model = None, precision: Precision = None,
                        input_size: InputSize = None, score_threshold: Threshold = None, format: Format = "jpeg",
                        method: Literal["blur", "pixelate", "fill"] = "blur",
                        shape: Literal["ellipse", "box"] = "ellipse",
                        margin: Margin = 0.15) -> Response:
        req = detect_request(model, precision, input_size, score_threshold)
        return await handle(request, req, ("anonymize", format, method, shape, margin))

    @app.get("/health", summary="Model, settings and limits")
    async def health() -> dict:
        return {
            "status": "ok",
            "model": first.model_record(),
            "input_size": first.input_size,
            "score_threshold": first.score_threshold,
            "nms_threshold": first.nms_threshold,
            "min_face_size": first.min_face_size,
            "tile_size": first.tile_size,
            "tile_overlap": first.tile_overlap,
            "workers": pool.workers,
            "max_body_bytes": limits.max_body_bytes,
            "limits": limits.record(),
            "api_key_required": settings.api_key is not None,
            "images_in_flight": pool.in_flight,
        }

    @app.get("/models", summary="Models a request may choose", responses=ERRORS)
    async def list_models(request: Request) -> dict:
        check_key(request)
        return {
            "default": {"name": first.name, "precision": default_precision, "input_size": first.input_size,
                        "score_threshold": first.score_threshold},
            "models": models,
            "input_size": {"min": 32, "max": limits.max_input_size},
            "formats": list(ACCEPTED_FORMATS),
        }

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response, responses=ERRORS)
    async def prometheus(request: Request) -> Response:
        check_key(request)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"), media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        # Swagger UI from the swagger-ui-bundle package, not FastAPI's default CDN: works offline
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="facelite API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.mount("/docs-static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _work(pool: DetectorPool, req: DetectRequest, body: bytes, content_type: str, max_pixels: int,
          work: tuple) -> tuple[bytes, str]:
    """In a pool thread: the image out of the body, its checks, decoding, detection, the answer."""
    data = image_from_body(body, content_type)
    check_image(data, max_pixels)  # format and pixel count from the header, before decoding
    try:
        image = decode_image(data, max_pixels=max_pixels, name="the uploaded image")
    except ImageLoadError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None
    faces, timings, detector = pool.detect(req, image)
    kind = work[0]
    if kind == "json":
        record = {
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "faces": [f.to_dict() for f in faces],
            "model": detector.model_record(),
            "input_size": req.input_size,
            **detector.tile_record(),
            "timings_ms": timings,
        }
        return json.dumps(record).encode(), "application/json"
    if kind == "annotate":
        from ..draw import draw_faces

        return encode_image(draw_faces(image, faces), work[1])
    from ..anonymize import anonymize

    _, fmt, method, shape, margin = work
    assert fmt in IMAGE_FORMATS
    return encode_image(anonymize(image, faces, method, shape=shape, margin=margin, inplace=True), fmt)
