"""Safe image loading and explicit colour conversions.

Everything facelite feeds to a network is an ``H x W x 3`` ``uint8`` array in **BGR**
order (OpenCV's convention), C-contiguous. :func:`load_image` produces exactly that
from a file, and :func:`to_bgr` converts other arrays (grey, RGB, RGBA/BGRA, 16-bit,
float) explicitly; :class:`facelite.FaceDetector` refuses anything else instead of
guessing.

Loading is defensive: missing files, directories, empty files, unknown formats,
truncated JPEG/PNG/WebP/GIF/PNM files and images whose header announces more than
``max_pixels`` pixels (decompression bombs) all raise :class:`ImageLoadError` with a
message that says what is wrong. The size is read from the header *before* the pixels are
decoded, for every format facelite accepts (:data:`FORMATS`); a file whose header cannot be
parsed is refused, never decoded blind. docs/INPUT.md has the limits and what they cost. The EXIF orientation
tag is applied, so the array is the image as a viewer shows it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .imageheader import (
    DECODE_BYTES_PER_PIXEL,
    DEFAULT_MAX_PIXELS,
    FORMATS,
    IMAGE_EXTENSIONS,
    ImageHeader,
    ImageLoadError,
    check_image_header,
    check_pixels,
    checked_header,
    format_of,
    read_image_header,
    read_image_size,
    truncation,
)
from .quiet import decoder_messages_silenced as quiet_decoders

__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "ImageHeader",
    "ImageLoadError",
    "check_image_header",
    "decode_image",
    "load_image",
    "quiet_decoders",
    "read_image_header",
    "read_image_size",
    "to_bgr",
]

def decode_image(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (file contents) to an ``H x W x 3`` ``uint8`` BGR array.

    The same checks and conversions as :func:`load_image`; ``name`` is used in error messages.

    Raises:
        ImageLoadError: empty data, unknown format, truncated file, too many pixels,
            or the decoder failed.
    """
    if len(data) == 0:
        raise ImageLoadError(f"{name}: empty file (0 bytes)")
    header, need, label = checked_header(data, max_pixels, name)
    reason = truncation(data, format_of(data), need)
    if reason:
        raise ImageLoadError(f"{name}: {reason}")
    try:
        # ANYCOLOR|ANYDEPTH keeps grey and 16 bits (converted below) and applies EXIF
        # orientation (IMREAD_UNCHANGED would not); alpha is dropped by the decoder.
        with quiet_decoders():
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:
        raise ImageLoadError(f"{name}: the decoder failed: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageLoadError(f"{name}: unreadable {label} data")
    check_pixels(image.shape[1], image.shape[0], max_pixels, name)
    try:
        return to_bgr(image)
    except ValueError as exc:
        raise ImageLoadError(f"{name}: {exc}") from None


def load_image(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an ``H x W x 3`` ``uint8`` **BGR** array, C-contiguous.

    The EXIF orientation is applied (the result is upright as a viewer shows it). Grey,
    16-bit and alpha images are converted (alpha is dropped, 16 bits scaled to 8).

    Args:
        path: the image file, in one of :data:`FORMATS` (JPEG, PNG, WebP, BMP, TIFF, GIF,
            JPEG 2000, PBM/PGM/PPM/PAM/PFM, Sun raster, Radiance HDR, AVIF).
        max_pixels: refuse images with more than this many pixels (width x height), or whose
            decoding needs more than ``4 x max_pixels`` bytes (16-bit, float, JPEG 2000 and
            progressive JPEG files), read from the file header before decoding; ``None``
            disables the limit. The default, :data:`DEFAULT_MAX_PIXELS`, takes 200-megapixel photos.

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
