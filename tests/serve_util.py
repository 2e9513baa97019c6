"""A real uvicorn server of the service on a free loopback port, in a thread (for the service
and browser tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from facelite.service import Limits, ServiceSettings, create_app
from facelite.service.runner import make_server


@dataclass
class RunningServer:
    port: int
    app: object
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_server(settings: ServiceSettings) -> Iterator[RunningServer]:
    """Serve ``settings`` on 127.0.0.1 until the block ends (then a graceful stop)."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    server = make_server(app, "127.0.0.1", port, settings.limits, quiet=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(port, app, loop)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        loop.close()
        sock.close()


def small_limits(**overrides) -> Limits:
    """Limits small enough for tests to reach quickly."""
    values = dict(max_body_bytes=2_000_000, max_pixels=4_000_000, header_timeout_s=1.0, body_timeout_s=1.0,
                  keep_alive_s=1.0, queue=1, max_connections=400)
    values.update(overrides)
    return Limits(**values)
