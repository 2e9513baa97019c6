"""Small files whose headers announce huge images (decompression bombs), one per format facelite reads.

Used by the tests (the pixel limit must refuse each of them before decoding) and by
``python -m benchmarks.fuzz`` (as seeds for header edits). Every file is a real, small image
encoded by OpenCV whose size fields were then rewritten, or, where OpenCV cannot write the
format (BigTIFF, PAM, Sun raster, Radiance HDR), a hand-written header.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["BOMBS", "encode_small", "make_bomb"]


def encode_small(ext: str, channels: int = 3, size: tuple[int, int] = (64, 48), params: tuple[int, ...] = ()) -> bytes:
    """A small real image (``size`` = width, height) encoded by OpenCV as ``ext`` (``params``: its encoder's)."""
    w, h = size
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, channels), dtype=np.uint8), (5, 5), 0)
    if channels == 1 and img.ndim == 3:
        img = img[:, :, 0]
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok, ext
    return buf.tobytes()


def _jpeg_stray_byte(side: int = 30000) -> bytes:
    """A JPEG whose frame header says ``side`` x ``side`` (3 channels), with a stray byte before its
    SOF marker (libjpeg skips it with a warning; a strict header parser loses its way)."""
    data = bytearray(encode_small(".jpg"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    return bytes(data[:sof]) + b"\x00" + bytes(data[sof:])


def _jpeg_fill_bytes(side: int = 30000) -> bytes:
    """Fill bytes (0xFF repeated) before the SOF marker: allowed by the standard."""
    data = bytearray(encode_small(".jpg"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, side, side)
    return bytes(data[:sof]) + b"\xff\xff\xff" + bytes(data[sof:])


def _jp2(side: int = 30000, codestream_only: bool = False) -> bytes:
    """A grey JPEG 2000 (jp2 box or raw codestream) of a black image whose SIZ (and ihdr) say
    ``side`` x ``side``, one tile: about 230 bytes that OpenJPEG decodes (to black) in full."""
    ok, buf = cv2.imencode(".jp2", np.zeros((48, 64), np.uint8))
    data = bytearray(buf.tobytes())
    if not codestream_only:
        ihdr = data.find(b"ihdr")
        struct.pack_into(">II", data, ihdr + 4, side, side)
    siz = data.find(b"\xff\x51")
    # Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz
    struct.pack_into(">II", data, siz + 6, side, side)
    struct.pack_into(">II", data, siz + 22, side, side)
    sot = data.find(b"\xff\x90")
    struct.pack_into(">I", data, sot + 6, 0)  # tile-part length 0: up to the end of the codestream
    if codestream_only:
        return bytes(data[data.find(b"\xff\x4f\xff\x51"):])
    return bytes(data)


def _bigtiff(side: int = 30000, rows: int = 1000) -> bytes:
    """A BigTIFF of ``side`` x ``side`` black 8-bit grey pixels in Deflate strips of ``rows`` rows,
    all strips pointing at the same compressed bytes (a few tens of KB in all)."""
    import zlib

    strip = zlib.compress(bytes(side * rows), 9)
    n = -(-side // rows)
    entries = [  # tag, type (3 SHORT, 4 LONG, 16 LONG8), count, value or offset
        (256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 16, n, 0), (277, 3, 1, 1), (278, 4, 1, rows), (279, 16, n, 0),
    ]
    ifd_size = 8 + 20 * len(entries) + 8
    offsets_at = 16 + ifd_size
    counts_at = offsets_at + 8 * n
    data_at = counts_at + 8 * n
    out = b"II+\x00" + struct.pack("<HHQ", 8, 0, 16) + struct.pack("<Q", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = offsets_at
        elif tag == 279:
            value = counts_at
        out += struct.pack("<HHQQ", tag, typ, count, value)
    out += struct.pack("<Q", 0)
    out += struct.pack(f"<{n}Q", *([data_at] * n)) + struct.pack(f"<{n}Q", *([len(strip)] * n))
    return out + strip


def _tiff(side: int = 30000) -> bytes:
    data = bytearray(encode_small(".tiff"))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        tag, typ = struct.unpack_from("<HH", data, ifd + 2 + 12 * i)
        if tag in (256, 257):
            struct.pack_into("<HHII", data, ifd + 2 + 12 * i, tag, 4, 1, side)
    return bytes(data)


def _png(side: int = 30000) -> bytes:
    import zlib

    data = bytearray(encode_small(".png"))
    struct.pack_into(">II", data, 16, side, side)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _webp(side: int = 16383) -> bytes:
    data = bytearray(encode_small(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 80)))  # lossy: VP8
    struct.pack_into("<HH", data, 26, side, side)  # VP8 key frame size (14 bits)
    return bytes(data)


def _bmp(side: int = 30000) -> bytes:
    data = bytearray(encode_small(".bmp"))
    struct.pack_into("<ii", data, 18, side, side)
    return bytes(data)


def _gif(side: int = 65535) -> bytes:
    data = bytearray(encode_small(".gif"))
    struct.pack_into("<HH", data, 6, side, side)
    return bytes(data)


def _ppm(side: int = 30000) -> bytes:
    return f"P6\n{side} {side}\n255\n".encode() + b"\x80" * 4096


def _pam(side: int = 30000) -> bytes:
    return f"P7\nWIDTH {side}\nHEIGHT {side}\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n".encode() + b"\x80" * 4096


def _pfm(side: int = 30000) -> bytes:
    return f"PF\n{side} {side}\n-1.0\n".encode() + b"\x00" * 4096


def _sunraster(side: int = 30000) -> bytes:
    return struct.pack(">8I", 0x59A66A95, side, side, 24, side * side * 3, 1, 0, 0) + b"\x80" * 4096


def _hdr(side: int = 30000) -> bytes:
    return f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {side} +X {side}\n".encode() + b"\x80" * 4096


def _avif(side: int = 30000) -> bytes:
    """An AVIF whose image spatial extents (``ispe``) say ``side`` x ``side``."""
    data = bytearray(encode_small(".avif"))
    at = data.find(b"ispe")
    struct.pack_into(">II", data, at + 8, side, side)
    return bytes(data)


BOMBS: dict[str, Callable[[], bytes]] = {
    "jpeg-stray-byte": _jpeg_stray_byte,
    "jpeg-fill-bytes": _jpeg_fill_bytes,
    "png": _png,
    "webp": _webp,
    "bmp": _bmp,
    "gif": _gif,
    "tiff": _tiff,
    "bigtiff": _bigtiff,
    "jp2": _jp2,
    "j2k-codestream": lambda: _jp2(codestream_only=True),
    "ppm": _ppm,
    "pam": _pam,
    "pfm": _pfm,
    "sunraster": _sunraster,
    "hdr": _hdr,
    "avif": _avif,
}
"""Name -> maker of a bomb file (bytes)."""


def make_bomb(name: str) -> bytes:
    """The bytes of the bomb ``name`` (a key of :data:`BOMBS`)."""
    return BOMBS[name]()


if __name__ == "__main__":  # python -m benchmarks.bombs DIR: write them all
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bombs")
    out.mkdir(parents=True, exist_ok=True)
    ext = {"jpeg-stray-byte": "jpg", "jpeg-fill-bytes": "jpg", "j2k-codestream": "j2k", "bigtiff": "tif",
           "sunraster": "ras"}
    for name, make in BOMBS.items():
        (out / f"{name}.{ext.get(name, name)}").write_bytes(make())
        print(out / f"{name}.{ext.get(name, name)}")
