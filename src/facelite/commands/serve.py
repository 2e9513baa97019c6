"""``facelite serve``: the detector as an HTTP service with a web page (the ``serve`` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..service.limits import Limits
from ._common import add_model_options, default_workers, positive_int

HELP = "serve the detector over HTTP, with a web page (needs the serve extra)"

DESCRIPTION = """\
Serve the detector over HTTP until Ctrl-C or SIGTERM (requests in progress finish). Open
http://127.0.0.1:8080/ for the web page (images, webcam, anonymisation), /docs for the API.
Send an image as the request body or as a form's file part:

  curl --data-binary @photo.jpg http://127.0.0.1:8080/detect
  curl -F image=@photo.jpg 'http://127.0.0.1:8080/detect?input_size=320&score_threshold=0.7'
  curl --data-binary @photo.jpg 'http://127.0.0.1:8080/anonymize?method=pixelate' -o out.jpg

Endpoints: GET / (page), GET /health, GET /models, GET /metrics (Prometheus), GET /docs,
GET /openapi.json, POST /detect (JSON: width, height, faces with box [x1, y1, x2, y2],
score and 5 landmarks in pixels of the image sent), POST /annotate (JPEG with the faces
drawn; ?format=png), POST /anonymize (?method=blur|pixelate|fill, ?shape=ellipse|box,
?margin=). ?model= ?precision= ?input_size= ?score_threshold= choose the detection for one
request. Errors are {"error": "..."} with a 4xx/5xx status. It listens on 127.0.0.1 unless
--host says otherwise; beyond loopback set an API key (--api-key or FACELITE_API_KEY) and
put it behind a reverse proxy for TLS.
"""

API_KEY_ENV = "FACELITE_API_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: %(default)s)")
    add_model_options(p)
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="images detected at once (N detector threads); each gets --threads or cores / N "
                        "network threads (default: the cores, at most 4)")
    d = Limits()  # the defaults are the service's own (standard library only: no extra needed for --help)
    p.add_argument("--queue", type=positive_int, default=d.queue, metavar="N",
                   help="images waiting for a detector; one more is answered 503 at once (default: %(default)s)")
    p.add_argument("--max-body-mb", type=positive_int, default=d.max_body_bytes // 2**20, metavar="MB",
                   help="refuse uploads larger than this, 413 (default: %(default)s)")
    p.add_argument("--max-pixels", type=positive_int, default=d.max_pixels, metavar="N",
                   help="refuse images of more than N pixels (width x height, read from the header "
                        "before decoding), 413 (default: %(default)s)")
    p.add_argument("--max-input-size", type=positive_int, default=d.max_input_size, metavar="PX",
                   help="largest ?input_size= a request may ask for (default: %(default)s)")
    p.add_argument("--max-connections", type=positive_int, default=d.max_connections, metavar="N",
                   help="connections at once; beyond it requests are answered 503 (default: %(default)s)")
    p.add_argument("--header-timeout", type=float, default=d.header_timeout_s, metavar="S",
                   help="close a connection whose request headers are not complete after S seconds "
                        "(default: %(default)s)")
    p.add_argument("--body-timeout", type=float, default=d.body_timeout_s, metavar="S",
                   help="a body must arrive within S seconds, else 408 (default: %(default)s)")
    p.add_argument("--keep-alive", type=float, default=d.keep_alive_s, metavar="S",
                   help="close idle keep-alive connections after S seconds (default: %(default)s)")
    p.add_argument("--api-key", default=None,
                   help=f"require this key (header X-API-Key or Authorization: Bearer) on /detect, "
                        f"/annotate, /anonymize, /models, /metrics; default: ${API_KEY_ENV} if set")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        print(f"facelite serve: the service needs the serve extra ({exc.name} is missing): "
              "pip install 'facelite[serve]'", file=sys.stderr)
        return 2
    from ..service import ServiceSettings, create_app
    from ..service.runner import serve
    from ._common import build_detector

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    limits = Limits(max_body_bytes=args.max_body_mb * 1024 * 1024, max_pixels=args.max_pixels,
                    header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                    keep_alive_s=args.keep_alive, max_connections=args.max_connections, queue=args.queue,
                    max_input_size=args.max_input_size)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.workers is None:  # single-threaded detectors side by side: 2x the images/s of one 2-thread detector on 2 busy cores
        args.workers = default_workers()
    if args.workers > 1 and args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    detectors = [build_detector(args) for _ in range(args.workers)]
    detector = detectors[0]
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    app = create_app(ServiceSettings(detectors, limits, api_key))

    def ready(url: str) -> None:
        workers = f", {args.workers} workers x {args.threads} threads" if args.workers > 1 else ""
        key = ", API key required" if api_key else ""
        print(f"facelite serve: {detector.name} ({detector.precision}, input {detector.input_size}{workers}{key}) "
              f"listening on {url}  (page: {url}/, API: {url}/docs; Ctrl-C stops)", file=sys.stderr, flush=True)

    try:
        serve(app, args.host, args.port, limits, quiet=args.quiet, ready=ready)
    except OSError as exc:
        if exc.strerror is None:
            raise
        raise RuntimeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    print("facelite serve: stopped", file=sys.stderr)
    return 0
