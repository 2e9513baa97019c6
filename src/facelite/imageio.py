"""Safe image loading and explicit colour conversions.

Everything facelite feeds to a network is an ``H x W x 3`` ``uint8`` array in **BGR**
order (OpenCV's convention), C-contiguous. :func:`load_image` produces exactly that
from a file, and :func:`to_bgr` converts other arrays (grey, RGB, RGBA/BGRA, 16-bit,
float) explicitly; :class:`facelite.FaceDetector` refuses anything else instead of
guessing.

Loading is defensive: missing files, directories, empty files, unknown formats,
truncated JPEG/PNG/WebP/GIF files and images whose header announces more than
``max_pixels`` pixels (decompression bombs: the size is read from the header *before*
the pixels are decoded, for JPEG, PNG, WebP, GIF, BMP and TIFF) all raise
:class:`ImageLoadError` with a message that says what is wrong. The EXIF orientation
tag is applied, so the array is the image as a viewer shows it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "decode_image",
    "load_image",
    "read_image_size",
    "to_bgr",
]

DEFAULT_MAX_PIXELS = 50_000_000
"""Default limit on width x height of an image file (50 megapixels)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
"""File extensions that ``facelite detect`` picks up when it walks a directory."""


class ImageLoadError(ValueError):
    """An image file could not be loaded; the message says why (and names the file)."""


# --------------------------------------------------------------------------- headers

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"


def _format_of(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None  # corrupt marker stream
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF_MARKERS:
            if pos + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", data, pos + 5)
            return w, h
        pos += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(end + "I", data, 4)
        (count,) = struct.unpack_from(end + "H", data, ifd)
        found: dict[int, int] = {}
        for i in range(count):
            tag, typ, _n = struct.unpack_from(end + "HHI", data, ifd + 2 + 12 * i)
            if tag in (256, 257):
                fmt = end + ("H" if typ == 3 else "I")
                (found[tag],) = struct.unpack_from(fmt, data, ifd + 2 + 12 * i + 8)
        return (found[256], found[257]) if len(found) == 2 else None
    except (struct.error, KeyError):
        return None


def read_image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an encoded image, without decoding its pixels.

    Understands JPEG, PNG, WebP, GIF, BMP and TIFF; returns ``None`` for other formats or
    a header it cannot parse. The size is the stored one (before any EXIF rotation).
    """
    fmt = _format_of(data)
    try:
        if fmt == "jpeg":
            return _jpeg_size(data)
        if fmt == "png" and data[12:16] == b"IHDR":
            return struct.unpack_from(">II", data, 16)
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "gif":
            return struct.unpack_from("<HH", data, 6)
        if fmt == "bmp":
            w, h = struct.unpack_from("<ii", data, 18)
            return abs(w), abs(h)
        if fmt == "tiff":
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def _truncation(data: bytes, fmt: str | None) -> str | None:
    """A reason string if the encoded image is visibly cut short, else ``None``."""
    if fmt == "jpeg":
        # Entropy-coded data byte-stuffs 0xFF, so 0xFFD9 after the last start-of-scan is the real end.
        if data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 2):
            return "truncated JPEG (no end-of-image marker after the image data)"
    elif fmt == "png":
        if data.rfind(_PNG_IEND) < 0:
            return "truncated PNG (no IEND chunk)"
    elif fmt == "webp":
        (riff_size,) = struct.unpack_from("<I", data, 4)
        if len(data) < riff_size + 8:
            return f"truncated WebP ({len(data)} of {riff_size + 8} bytes)"
    elif fmt == "gif":
        if data.rstrip(b"\x00")[-1:] != b";":
            return "truncated GIF (no trailer)"
    return None


# --------------------------------------------------------------------------- loading


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{what}: image has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"{what}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:g} megapixels (max_pixels={max_pixels}); raise max_pixels if it is genuine"
        )


def decode_image(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (file contents) to an ``H x W x 3`` ``uint8`` BGR array.

    The same checks and conversions as :func:`load_image`; ``name`` is used in error messages.

    Raises:
        ImageLoadError: empty data, unknown format, truncated file, too many pixels,
            or the decoder failed.
    """
    if len(data) == 0:
        raise ImageLoadError(f"{name}: empty file (0 bytes)")
    fmt = _format_of(data)
    size = read_image_size(data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels, name)  # before decoding: decompression bombs
    reason = _truncation(data, fmt)
    if reason:
        raise ImageLoadError(f"{name}: {reason}")
    try:
        # ANYCOLOR|ANYDEPTH keeps grey and 16 bits (converted below) and applies EXIF
        # orientation (IMREAD_UNCHANGED would not); alpha is dropped by the decoder.
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise ImageLoadError(f"{name}: the decoder failed: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        kind = f"unreadable {fmt.upper()} data" if fmt else "not an image file OpenCV can read (unknown format)"
        raise ImageLoadError(f"{name}: {kind}")
    _check_pixels(image.shape[1], image.shape[0], max_pixels, name)
    try:
        return to_bgr(image)
    except ValueError as exc:
        raise ImageLoadError(f"{name}: {exc}") from None


def load_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an ``H x W x 3`` ``uint8`` **BGR** array, C-contiguous.

    The EXIF orientation is applied (the result is upright as a viewer shows it). Grey,
    16-bit and alpha images are converted (alpha is dropped, 16 bits scaled to 8).

    Args:
        path: the image file (JPEG, PNG, WebP, BMP, TIFF, GIF, ... anything OpenCV decodes).
        max_pixels: refuse images with more than this many pixels (width x height),
            checked from the file header before decoding where the format allows;
            ``None`` disables the limit.

    Raises:
        ImageLoadError: (a ``ValueError``) the file is missing, a directory, empty, not an
            image, truncated, too large, or could not be decoded.
    """
    p = Path(path)
    if not p.exists():
        raise ImageLoadError(f"{p}: no such file")
    if p.is_dir():
        raise ImageLoadError(f"{p}: is a directory, not an image file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return decode_image(data, max_pixels=max_pixels, name=str(p))


# --------------------------------------------------------------------------- conversion


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.ascontiguousarray(cv2.convertScaleAbs(image, alpha=1.0 / 257.0))  # 65535 -> 255, rounded
    if image.dtype in (np.float16, np.float32, np.float64):
        return np.clip(image.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(
        f"unsupported pixel type {image.dtype}: expected uint8, uint16, or float in [0, 1]"
    )


def to_bgr(
    image: np.ndarray,
    *,
    order: str = "BGR",
    alpha: str = "drop",
    background: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Convert an image array explicitly to ``H x W x 3`` ``uint8`` BGR, C-contiguous.

    Args:
        image: ``H x W`` or ``H x W x 1`` (grey), ``H x W x 3`` (colour) or ``H x W x 4``
            (colour + alpha). Pixel type ``uint8``; ``uint16`` (scaled by 255/65535,
            rounded); or float in [0, 1] (scaled by 255, clipped).
        order: channel order of a colour input: ``"BGR"`` (OpenCV, default) or ``"RGB"``
            (Pillow, matplotlib, most other libraries). For 4 channels the alpha is last
            either way (BGRA / RGBA).
        alpha: for 4-channel input, ``"drop"`` ignores the alpha channel, ``"blend"``
            composites the colour over ``background`` (BGR, 0..255) using the alpha.
        background: BGR background colour for ``alpha="blend"``.

    Returns:
        The converted array. When ``image`` already is a C-contiguous ``uint8`` BGR array it
        is returned itself, not copied.

    Raises:
        ValueError: an unsupported shape, channel count, pixel type, ``order`` or ``alpha``.
    """
    if order not in ("BGR", "RGB"):
        raise ValueError(f"order must be 'BGR' or 'RGB', got {order!r}")
    if alpha not in ("drop", "blend"):
        raise ValueError(f"alpha must be 'drop' or 'blend', got {alpha!r}")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a NumPy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"expected an H x W, H x W x 1, H x W x 3 or H x W x 4 image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    channels = 1 if image.ndim == 2 else image.shape[2]

    if channels == 4 and alpha == "blend":
        a = _to_uint8(image[:, :, 3]).astype(np.float32)[:, :, None] / 255.0
        colour = _to_uint8(image[:, :, :3]).astype(np.float32)
        bg = np.asarray(background, dtype=np.float32)
        if bg.shape != (3,):
            raise ValueError(f"background must be 3 values (B, G, R), got {background!r}")
        if order == "RGB":
            bg = bg[::-1]
        image = np.clip(colour * a + bg * (1.0 - a) + 0.5, 0, 255).astype(np.uint8)
        channels = 3
    else:
        image = _to_uint8(image)

    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        code = cv2.COLOR_RGBA2BGR if order == "RGB" else cv2.COLOR_BGRA2BGR
        return cv2.cvtColor(np.ascontiguousarray(image), code)
    if order == "RGB":
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(image)
