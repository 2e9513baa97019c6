"""What the service refuses, and how: body size, image format and pixel count, timeouts.

Everything here is checked *before* work is spent: the announced ``Content-Length`` before the
body is read, the bytes read so far while it arrives (chunked uploads too), and the image size
from the file header before any pixel is decoded. The numbers live in :class:`Limits`; the
command line (``facelite serve --max-body-mb --max-pixels ...``) fills it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from http import HTTPStatus

from ..imageheader import DEFAULT_MAX_PIXELS, read_image_size

__all__ = [
    "ACCEPTED_FORMATS",
    "BodyBudget",
    "Limits",
    "RequestError",
    "check_image",
    "sniff_format",
]


class RequestError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with (the message
    becomes ``{"error": message}``)."""

    def __init__(self, status: HTTPStatus | int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = HTTPStatus(status)
        self.headers = headers or {}


@dataclass(frozen=True)
class Limits:
    """The service's limits (all enforced; see docs/SERVICE.md).

    Attributes:
        max_body_bytes: largest request body; a larger ``Content-Length`` is refused (413)
            before the body is read, and a chunked body is cut off when it passes it.
        max_pixels: largest ``width * height`` of an uploaded image, read from its header
            before decoding (413).
        max_buffered_bytes: request bodies held in memory at once, all connections together;
            a body that would pass it is refused with 503 (stalled uploads cannot fill memory).
        header_timeout_s: a connection must deliver a request's headers within this many
            seconds of opening (or of the previous answer), else it is closed.
        body_timeout_s: the whole body must arrive within this many seconds of the headers,
            else 408 and the connection is closed.
        keep_alive_s: an idle keep-alive connection is closed after this many seconds.
        max_connections: connections (and requests in progress) at once; beyond it a request is
            answered 503.
        queue: images waiting for a detector beyond the ``workers`` being processed; one more
            is answered 503 at once.
        max_input_size: largest per-request ``input_size``.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_buffered_bytes: int = 256 * 1024 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    queue: int = 16
    max_input_size: int = 1920

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")

    def record(self) -> dict[str, float | int]:
        """The limits as JSON (``GET /health``)."""
        return asdict(self)


ACCEPTED_FORMATS: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}
"""Formats the service decodes, by name -> MIME type: those whose size
:func:`facelite.imageio.read_image_size` reads from the header. GIF is refused (415): its
frames may be larger than the size in its header."""


def sniff_format(data: bytes) -> str | None:
    """The format of an encoded image from its first bytes (magic numbers), or ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[4:8] == b"ftyp":
        return "heif/avif/mp4"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2000"
    return None


def check_image(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """Refuse what the service must not decode; ``(format, width, height)`` of the rest.

    Raises:
        RequestError: 400 empty or not an image; 415 a format the service does not accept;
            400 a header whose size cannot be read; 413 more than ``max_pixels`` pixels.
    """
    if not data:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request has no body: send the image bytes or a form with an image file")
    fmt = sniff_format(data)
    if fmt is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the uploaded image: not an image file (unknown format)")
    if fmt not in ACCEPTED_FORMATS:
        raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"{fmt.upper()} images are not accepted; send one of {', '.join(f.upper() for f in ACCEPTED_FORMATS)}")
    size = read_image_size(data)
    if size is None:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the uploaded image: cannot read the size from its {fmt.upper()} header")
    width, height = size
    if width <= 0 or height <= 0:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the uploaded image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"the uploaded image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                           f"this server takes at most {max_pixels / 1e6:g} megapixels")
    return fmt, width, height


class BodyBudget:
    """Bytes of request bodies held in memory, all requests together (event-loop only, no lock).

    :meth:`take` reserves bytes or refuses with 503; :meth:`give` returns them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise RequestError(HTTPStatus.SERVICE_UNAVAILABLE,
                               "the server holds too many uploads at once; try again shortly",
                               {"Retry-After": "1", "Connection": "close"})
        self.used += n

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


async def read_body(receive_stream: AsyncIterator[bytes], content_length: str | None, limits: Limits, budget: BodyBudget) -> tuple[bytes, int]:
    """Read a request body under the limits; ``(body, bytes reserved in budget)``.

    The caller gives the reserved bytes back (``budget.give``) once it has done with the body.

    Raises:
        RequestError: 400 bad ``Content-Length``; 413 too large (announced or read);
            408 the body did not arrive within ``limits.body_timeout_s``; 503 budget exhausted.
    """
    if content_length is not None:
        try:
            announced = int(content_length)
        except ValueError:
            announced = -1
        if announced < 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {content_length!r}", {"Connection": "close"})
        if announced > limits.max_body_bytes:
            # up to 8x the limit the connection stays open and the server drops the body as it
            # arrives (within the header timeout), so that a client which sends it all before
            # reading gets the 413 instead of a broken pipe; beyond, the connection is closed
            close = {"Connection": "close"} if announced > 8 * limits.max_body_bytes else {}
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the body has {announced} bytes; this server takes at most {limits.max_body_bytes}",
                               close)
    chunks: list[bytes] = []
    taken = 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in receive_stream:
                if not chunk:
                    continue
                if taken + len(chunk) > limits.max_body_bytes:
                    raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                       f"the body has more than {limits.max_body_bytes} bytes, the most this server takes",
                                       {"Connection": "close"})
                budget.take(len(chunk))
                taken += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        budget.give(taken)
        raise RequestError(HTTPStatus.REQUEST_TIMEOUT,
                           f"the body did not arrive within {limits.body_timeout_s:g} s", {"Connection": "close"}) from None
    except BaseException:
        budget.give(taken)
        raise
    return b"".join(chunks), taken
