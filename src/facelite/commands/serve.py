"""``facelite serve``: the detector as an HTTP service (JSON faces, annotated or anonymised images)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from ._common import add_model_options, positive_int

HELP = "serve the detector over HTTP (POST an image, get faces as JSON)"

DESCRIPTION = """\
Serve the detector over HTTP until Ctrl-C or SIGTERM. Send an image as the request body or
as a form's file part:

  curl --data-binary @photo.jpg http://127.0.0.1:8080/detect
  curl -F image=@photo.jpg http://127.0.0.1:8080/detect
  curl --data-binary @photo.jpg 'http://127.0.0.1:8080/anonymize?method=pixelate' -o out.jpg

Endpoints: GET /health (model and settings), POST /detect (JSON: width, height,
faces with box [x1, y1, x2, y2], score and 5 landmarks in pixels of the image
sent), POST /annotate (JPEG with the faces drawn; ?format=png), POST /anonymize
(faces blurred; ?method=blur|pixelate|fill, ?shape=ellipse|box, ?margin=).
?score_threshold= raises the threshold for one request. Bad input is answered
with a status 4xx and {"error": "..."}; the server keeps running. It listens on
127.0.0.1 unless --host says otherwise (0.0.0.0 for every interface: there is no
authentication, put it behind a proxy on a network you do not trust).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: %(default)s)")
    add_model_options(p)
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="detectors serving requests at once; with N > 1 each gets --threads or "
                        "cores / N threads (default: %(default)s)")
    p.add_argument("--max-body-mb", type=positive_int, default=32, metavar="MB",
                   help="refuse uploads larger than this (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..server import DetectionService, serve
    from ._common import build_detector

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.workers > 1 and args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    detectors = [build_detector(args) for _ in range(args.workers)]
    detector = detectors[0]
    service = DetectionService(detectors, max_body_bytes=args.max_body_mb * 1024 * 1024)

    def ready(url: str) -> None:
        workers = f", {args.workers} workers x {args.threads} threads" if args.workers > 1 else ""
        print(f"facelite serve: {detector.name} ({detector.precision}, input {detector.input_size}{workers}) "
              f"listening on {url}  (Ctrl-C stops)", file=sys.stderr, flush=True)

    def stop(signum, frame):  # SIGTERM (docker stop, systemd, kill) ends it like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(service, args.host, args.port, quiet=args.quiet, ready=ready)
    except OSError as exc:
        if exc.strerror is None:
            raise
        raise RuntimeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        print("facelite serve: stopped", file=sys.stderr)
    return 0
