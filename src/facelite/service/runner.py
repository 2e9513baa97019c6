"""Serving the app with uvicorn, with the connection limits uvicorn lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``), but it waits forever for
the headers of a request (a connection that sends nothing, or a header a byte at a time,
"slowloris"), and its own refusals (invalid HTTP, ``limit_concurrency``) are plain text.
:class:`GuardedH11Protocol` closes a connection whose request headers are not complete
``header_timeout_s`` after it opened or after its previous answer, answers the requests of
connections beyond ``max_connections`` with a JSON 503, and invalid HTTP with a JSON 400. The body has its own deadline (:func:`~.limits.read_body`).
SIGTERM and SIGINT stop the server gracefully: it stops accepting, lets the requests in
progress finish (up to ``GRACEFUL_SHUTDOWN_S``), then the detector threads end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import Limits

__all__ = ["GuardedH11Protocol", "make_server", "serve"]

GRACEFUL_SHUTDOWN_S = 30
MAX_HEADER_BYTES = 16 * 1024


async def _too_many_connections(scope, receive, send) -> None:
    body = json.dumps({"error": "too many connections; try again shortly"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": body})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers (``header_timeout_s``),
    a cap on connections (``max_connections``: the requests of the connections beyond it are
    answered 503) and JSON for its 400 answer to invalid HTTP."""

    header_timeout_s: float = 10.0
    max_connections: int = 1000
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._app = self.app
        self._arm_header_timer()

    def handle_events(self) -> None:
        self.app = _too_many_connections if len(self.connections) > self.max_connections else self._app
        super().handle_events()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's headers are due from now

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": f"invalid HTTP request: {msg}"}).encode()
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        in_request = self.cycle is not None and not self.cycle.response_complete
        if not in_request and not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM/SIGINT that stopped it gracefully is not raised again
    afterwards (uvicorn does, so the process would die of it instead of exiting with 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def make_server(app, host: str, port: int, limits: Limits, quiet: bool = False) -> uvicorn.Server:
    """A :class:`uvicorn.Server` for ``app`` with the service's connection limits (not started:
    ``server.run()`` in the main thread handles SIGTERM/SIGINT; a test may run it in a thread
    and stop it with ``server.should_exit = True``)."""
    protocol = type("FaceliteH11Protocol", (GuardedH11Protocol,),
                    {"header_timeout_s": limits.header_timeout_s, "max_connections": limits.max_connections})
    config = uvicorn.Config(
        app, host=host, port=port, http=protocol, loop="asyncio", lifespan="on",
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  (used as a float)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        log_level="warning", access_log=not quiet, server_header=False, proxy_headers=False,
    )
    return _Server(config)


def serve(app, host: str, port: int, limits: Limits, quiet: bool = False,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(url)`` is called once listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    h, p = sock.getsockname()[:2]
    server = make_server(app, host, p, limits, quiet)
    if ready is not None:
        ready(f"http://{'[' + h + ']' if ':' in str(h) else h}:{p}")
    server.run(sockets=[sock])
