"""Prometheus metrics of the service (``GET /metrics``, text format 0.0.4).

- ``facelite_requests_total{method, path, status}``: answered requests;
- ``facelite_errors_total{path, status}``: those answered 4xx/5xx;
- ``facelite_request_duration_seconds{path}``: time from the request's headers to the end of
  its answer (histogram);
- ``facelite_images_in_flight``: images admitted to the detector pool (running or queued);
- ``facelite_busy_total``: requests refused with 503 because the pool was full.

``path`` is the route (``/detect``, ...) or ``other``, so unknown URLs cannot grow the label set.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]

KNOWN_PATHS = frozenset({"/", "/detect", "/annotate", "/anonymize", "/health", "/models", "/metrics",
                         "/openapi.json", "/docs"})


class Metrics:
    """The service's metrics, in a registry of their own (several apps in one process stay apart)."""

    def __init__(self, in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("facelite_requests", "Answered HTTP requests", ["method", "path", "status"],
                                registry=self.registry)
        self.errors = Counter("facelite_errors", "Requests answered with a 4xx or 5xx status", ["path", "status"],
                              registry=self.registry)
        self.latency = Histogram("facelite_request_duration_seconds", "Request duration (headers to answer)",
                                 ["path"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.in_flight = Gauge("facelite_images_in_flight", "Images admitted to the detector pool (running or queued)",
                               registry=self.registry)
        self.in_flight.set_function(in_flight)
        self.busy = Counter("facelite_busy", "Requests refused with 503 because every detector was busy",
                            registry=self.registry)

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        label = path if path in KNOWN_PATHS else ("/static" if path.startswith("/static/") else "other")
        self.requests.labels(method, label, str(status)).inc()
        if status >= 400:
            self.errors.labels(label, str(status)).inc()
        self.latency.labels(label).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware: counts every HTTP request with the status it was answered."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(scope["method"], scope["path"], status, time.perf_counter() - t0)
