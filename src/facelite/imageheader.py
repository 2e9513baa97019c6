"""Image file headers, read without decoding a pixel (pure Python, no OpenCV): the format, the
stored size and the decoder's memory, checked against the pixel limit before anything is
decoded. :mod:`facelite.imageio` decodes; this module decides whether it may."""

from __future__ import annotations

import struct

__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "ImageHeader",
    "ImageLoadError",
    "check_image_header",
    "check_pixels",
    "checked_header",
    "format_of",
    "read_image_header",
    "read_image_size",
    "truncation",
]

DEFAULT_MAX_PIXELS = 250_000_000
"""Default limit on width x height of an image file (250 megapixels: a 200-megapixel phone photo
passes; decoding one of 200 megapixels peaks at about 1.2 GB of memory)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
"""File extensions that ``facelite detect`` picks up when it walks a directory."""


class ImageLoadError(ValueError):
    """An image file could not be loaded; the message says why (and names the file)."""


# --------------------------------------------------------------------------- headers

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_SIGNATURE = b"\xff\x4f\xff\x51"  # SOC, then SIZ
_SUN_MAGIC = b"\x59\xa6\x6a\x95"
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})

FORMATS = ("JPEG", "PNG", "WebP", "GIF", "BMP", "TIFF", "JPEG 2000", "PNM", "PAM", "PFM", "Sun raster",
           "Radiance HDR", "AVIF")
"""The formats :func:`load_image` reads: each one's image size is read from its header before decoding."""

DECODE_BYTES_PER_PIXEL = 4
"""The memory budget of decoding: at most ``DECODE_BYTES_PER_PIXEL x max_pixels`` bytes of decoded
samples (1 GB at the default limit). 8-bit colour images (3 bytes per pixel, 4 with alpha) are
limited by their pixel count alone; 16-bit, float, JPEG 2000 (OpenJPEG keeps 4 bytes per sample)
and progressive JPEG (libjpeg keeps every coefficient) images by this budget."""


class _BadHeader(Exception):
    """The header of a recognised format cannot be parsed; the message says what is wrong."""


class ImageHeader:
    """What the header of an encoded image says, read without decoding its pixels.

    Attributes:
        format: one of :data:`FORMATS`.
        width, height: the stored size in pixels (before any EXIF rotation).
        decode_bytes: an estimate of the bytes the decoder holds for the pixels (its output and
            any whole-image buffers of its own), for the memory budget.
    """

    __slots__ = ("decode_bytes", "format", "height", "max_density", "width")

    def __init__(self, format: str, width: int, height: int, bytes_per_pixel: float) -> None:
        self.format, self.width, self.height = format, int(width), int(height)
        self.decode_bytes = int(max(self.width, 0) * max(self.height, 0) * bytes_per_pixel)
        self.max_density: float | None = None  # most pixels per file byte complete data can give

    def __repr__(self) -> str:
        return f"ImageHeader({self.format!r}, {self.width}, {self.height}, decode_bytes={self.decode_bytes})"


def format_of(data: bytes) -> str | None:
    """The format (one of :data:`FORMATS`, or "PNM" / "PAM" / "PFM") from the first bytes, else ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == _PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:12] == _JP2_SIGNATURE or data[:4] == _J2K_SIGNATURE:
        return "JPEG 2000"
    if data[:1] == b"P" and len(data) >= 3 and data[2:3].isspace():
        kind = data[1:2]
        if kind in b"123456" and kind:
            return "PNM"
        if kind == b"7":
            return "PAM"
        if kind in (b"F", b"f"):
            return "PFM"
    if data[:4] == _SUN_MAGIC:
        return "Sun raster"
    if data[:10] == b"#?RADIANCE" or data[:6] == b"#?RGBE":
        return "Radiance HDR"
    if data[4:8] == b"ftyp" and _is_avif(data):
        return "AVIF"
    return None


def _is_avif(data: bytes) -> bool:
    (size,) = struct.unpack_from(">I", data, 0)
    brands = data[8:12] + data[16 : min(max(size, 16), 256)]
    return any(brands[i : i + 4] in (b"avif", b"avis") for i in range(0, len(brands) - 3, 4))


def _jpeg(data: bytes) -> ImageHeader:
    """The first frame header, found as libjpeg finds it: bytes other than 0xFF between markers are
    skipped (libjpeg warns "extraneous bytes before marker" and goes on), as are fill bytes."""
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] != 0xFF:  # stray bytes
            pos += 1
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise _BadHeader("truncated JPEG (no frame header)")
        marker = data[pos]
        pos += 1
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stuffed zero, TEM, RSTn, SOI
            continue
        if marker in (0xD9, 0xDA):
            raise _BadHeader("corrupt JPEG (image data before a frame header)")
        if pos + 2 > n:
            raise _BadHeader("truncated JPEG (no frame header)")
        (length,) = struct.unpack_from(">H", data, pos)
        if marker in _SOF_MARKERS:
            if pos + 8 > n:
                raise _BadHeader("truncated JPEG frame header")
            h, w, nf = struct.unpack_from(">HHB", data, pos + 3)
            samples = float(max(nf, 1))
            factors = [data[pos + 9 + 3 * i] for i in range(nf) if pos + 9 + 3 * i < n]
            if factors and len(factors) == nf:
                hv = [(f >> 4) * (f & 15) for f in factors]
                if max(hv) > 0:
                    samples = sum(x / max(hv) for x in hv)
            out = 1 if nf == 1 else 3  # OpenCV's result: grey or BGR
            # progressive: libjpeg keeps all coefficients (2 bytes per sample) until the last scan
            per_pixel = out + (2 * samples if marker in _PROGRESSIVE_SOF else 0)
            header = ImageHeader("JPEG", w, h, per_pixel)
            # libjpeg pads missing entropy-coded data (with a warning), so a tiny file can "decode"
            # to a huge grey image. Complete data needs about a bit per 8x8 block and component
            # with Huffman coding (a flat 200 MP image: 64 pixels a byte), less with arithmetic coding.
            header.max_density = 16384.0 if 0xC9 <= marker <= 0xCF else 1024.0
            return header
        pos += length


def _png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR" or len(data) < 26:
        raise _BadHeader("corrupt PNG (no IHDR chunk first)")
    w, h, depth, colour = struct.unpack_from(">IIBB", data, 16)
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
    return ImageHeader("PNG", w, h, channels * (2 if depth == 16 else 1))


def _webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return ImageHeader("WebP", w & 0x3FFF, h & 0x3FFF, 3)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 4)
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", w, h, 4)
    raise _BadHeader("corrupt WebP (no VP8, VP8L or VP8X header)")


def _gif(data: bytes) -> ImageHeader:
    """The logical screen, grown to the first frame's rectangle if that reaches beyond it."""
    w, h, flags = struct.unpack_from("<HHB", data, 6)
    pos, n = 13 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0), len(data)
    try:
        while pos < n:
            kind = data[pos]
            if kind == 0x21:  # extension: label, then sub-blocks
                pos += 2
                while pos < n and data[pos]:
                    pos += data[pos] + 1
                pos += 1
            elif kind == 0x2C:
                left, top, fw, fh = struct.unpack_from("<HHHH", data, pos + 1)
                w, h = max(w, left + fw), max(h, top + fh)
                break
            else:
                break
    except struct.error:
        pass
    return ImageHeader("GIF", w, h, 4)


def _bmp(data: bytes) -> ImageHeader:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER
        w, h, _planes, bits = struct.unpack_from("<HHHH", data, 18)
    elif header >= 40:
        w, h, _planes, bits = struct.unpack_from("<iiHH", data, 18)
    else:
        raise _BadHeader(f"corrupt BMP (info header of {header} bytes)")
    return ImageHeader("BMP", abs(w), abs(h), 4 if bits == 32 else 3)


_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}  # BYTE, SHORT, LONG, LONG8


def _tiff(data: bytes) -> ImageHeader:
    """The first directory (the page OpenCV decodes); classic TIFF and BigTIFF. A tag given more
    than once counts with its largest value (libtiff keeps one of them; the estimate must hold
    whichever), and a tile or strip buffer larger than a row of the image counts on top."""
    end = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack_from(end + "Q", data, 8)
        (count,) = struct.unpack_from(end + "Q", data, ifd)
        first, step, count_fmt, value_size = ifd + 8, 20, "Q", 8
    else:
        (ifd,) = struct.unpack_from(end + "I", data, 4)
        (count,) = struct.unpack_from(end + "H", data, ifd)
        first, step, count_fmt, value_size = ifd + 2, 12, "I", 4
    if count > 4096:
        raise _BadHeader(f"corrupt TIFF ({count} directory entries)")
    found: dict[int, int] = {}
    for i in range(count):
        at = first + step * i
        tag, typ, n = struct.unpack_from(end + "HH" + count_fmt, data, at)
        if tag not in (256, 257, 258, 277, 322, 323) or typ not in _TIFF_TYPES or n < 1:
            continue
        fmt = _TIFF_TYPES[typ]
        at_value = at + 4 + struct.calcsize(count_fmt)
        if struct.calcsize(fmt) * n > value_size:  # the values are elsewhere: read the first one there
            (at_value,) = struct.unpack_from(end + ("Q" if big else "I"), data, at_value)
        (value,) = struct.unpack_from(end + fmt, data, at_value)
        found[tag] = max(found.get(tag, 0), value)
    if 256 not in found or 257 not in found:
        raise _BadHeader("corrupt TIFF (no image width or height in the first directory)")
    bits = max(found.get(258, 8), 8)
    channels = max(found.get(277, 1), 1)
    per_pixel = max(channels, 3) * bits / 8
    header = ImageHeader("TIFF", found[256], found[257], per_pixel)
    tile = found.get(322, 0) * found.get(323, 0) * max(channels, 4) * bits / 8
    header.decode_bytes += int(tile)
    return header


def _j2k_codestream(data: bytes, at: int) -> ImageHeader:
    """Size and components from the SIZ segment of a codestream starting at ``at`` (what OpenJPEG decodes)."""
    if data[at : at + 4] != _J2K_SIGNATURE:
        raise _BadHeader("corrupt JPEG 2000 (no SIZ marker at the start of the codestream)")
    x, y, x0, y0 = struct.unpack_from(">IIII", data, at + 8)
    (components,) = struct.unpack_from(">H", data, at + 40)
    if components > 4:
        raise _BadHeader(f"JPEG 2000 with {components} components (facelite reads 1 to 4)")
    # OpenJPEG holds every sample as a 32-bit integer, then OpenCV converts to 8 or 16 bits
    return ImageHeader("JPEG 2000", max(x - x0, 0), max(y - y0, 0), 4 * max(components, 1) + 3)


def _jp2(data: bytes) -> ImageHeader:
    if data[:4] == _J2K_SIGNATURE:
        return _j2k_codestream(data, 0)
    pos, n = 0, len(data)
    ihdr: tuple[int, int] | None = None
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if length == 1:
            (length,) = struct.unpack_from(">Q", data, pos + 8)
            head = 16
        elif length == 0:
            length = n - pos
        if kind == b"jp2h":
            sub, stop = pos + head, min(pos + length, n)
            while sub + 8 <= stop:
                sub_length, sub_kind = struct.unpack_from(">I4s", data, sub)
                if sub_kind == b"ihdr":
                    h, w = struct.unpack_from(">II", data, sub + 8)
                    ihdr = (w, h)
                if sub_length < 8:
                    break
                sub += sub_length
        if kind == b"jp2c":
            header = _j2k_codestream(data, pos + head)
            if ihdr is not None and ihdr[0] * ihdr[1] > header.width * header.height:
                header.width, header.height = ihdr
            return header
        if length < head:
            break
        pos += length
    raise _BadHeader("corrupt JPEG 2000 (no codestream box)")


def _tokens(data: bytes, count: int, start: int) -> tuple[list[bytes], int]:
    """``count`` whitespace-separated tokens of a PNM header (``#`` comments skipped) from ``start``;
    returns them and the offset just after the last one."""
    out: list[bytes] = []
    pos, n = start, len(data)
    while len(out) < count:
        while pos < n and (data[pos : pos + 1].isspace() or data[pos] == 0x23):
            if data[pos] == 0x23:  # comment to the end of the line
                while pos < n and data[pos] not in (0x0A, 0x0D):
                    pos += 1
            else:
                pos += 1
        begin = pos
        while pos < n and not data[pos : pos + 1].isspace() and data[pos] != 0x23:
            pos += 1
        if pos == begin:
            raise _BadHeader("truncated header")
        out.append(data[begin:pos])
    return out, pos


def _number(token: bytes, what: str) -> int:
    if not token.isdigit() or len(token) > 10:
        raise _BadHeader(f"corrupt header ({what} {token[:20]!r} is not a number)")
    return int(token)


_PNM_NAMES = {b"1": "PBM", b"4": "PBM", b"2": "PGM", b"5": "PGM", b"3": "PPM", b"6": "PPM"}


def _pnm(data: bytes) -> tuple[ImageHeader, int]:
    """PBM / PGM / PPM (P1-P6); also returns the number of pixel bytes a binary file needs (0: ASCII)."""
    kind = data[1] - 0x30
    tokens, end = _tokens(data, 2 if kind in (1, 4) else 3, 2)
    w, h = _number(tokens[0], "width"), _number(tokens[1], "height")
    maxval = _number(tokens[2], "maximum value") if len(tokens) > 2 else 1
    sample = 2 if maxval > 255 else 1
    need = {4: (w + 7) // 8 * h, 5: w * h * sample, 6: w * h * 3 * sample}.get(kind, 0)
    return ImageHeader(_PNM_NAMES[data[1:2]], w, h, 3 * sample), end + 1 + need


def _pam(data: bytes) -> tuple[ImageHeader, int]:
    fields: dict[bytes, bytes] = {}
    pos, n = 3, len(data)
    while True:
        stop = data.find(b"\n", pos)
        if stop < 0:
            raise _BadHeader("truncated header (no ENDHDR)")
        line = data[pos:stop].strip()
        pos = stop + 1
        if line == b"ENDHDR":
            break
        if line and not line.startswith(b"#"):
            key, _, value = line.partition(b" ")
            key, value = key.upper(), value.strip()
            if key in fields and value.isdigit() and fields[key].isdigit():  # given twice: count the larger
                value = max(value, fields[key], key=int)
            fields[key] = value
        if pos >= n:
            raise _BadHeader("truncated header (no ENDHDR)")
    try:
        w, h = _number(fields[b"WIDTH"], "width"), _number(fields[b"HEIGHT"], "height")
        depth, maxval = _number(fields[b"DEPTH"], "depth"), _number(fields[b"MAXVAL"], "maximum value")
    except KeyError as exc:
        raise _BadHeader(f"corrupt header (no {exc.args[0].decode()})") from None
    sample = 2 if maxval > 255 else 1
    return ImageHeader("PAM", w, h, max(depth, 3) * sample), pos + w * h * depth * sample


def _pfm(data: bytes) -> tuple[ImageHeader, int]:
    tokens, end = _tokens(data, 3, 2)
    w, h = _number(tokens[0], "width"), _number(tokens[1], "height")
    channels = 3 if data[1:2] == b"F" else 1
    return ImageHeader("PFM", w, h, 4 * 3), end + 1 + w * h * channels * 4


def _sun(data: bytes) -> ImageHeader:
    w, h, depth = struct.unpack_from(">III", data, 4)
    return ImageHeader("Sun raster", w, h, 4 if depth == 32 else 3)


def _hdr(data: bytes) -> ImageHeader:
    import re

    stop = data.find(b"\n\n", 0, 65536)
    if stop < 0:
        raise _BadHeader("truncated header (no blank line after it)")
    line = data[stop + 2 : stop + 2 + 64].split(b"\n", 1)[0]
    m = re.fullmatch(rb"\s*([-+][XY])\s+(\d{1,10})\s+([-+][XY])\s+(\d{1,10})\s*", line)
    if not m or m.group(1)[1:] == m.group(3)[1:]:
        raise _BadHeader(f"corrupt header (resolution line {line[:40]!r})")
    a, b = int(m.group(2)), int(m.group(4))
    w, h = (b, a) if m.group(1)[1:] == b"Y" else (a, b)
    return ImageHeader("Radiance HDR", w, h, 12)  # decoded as 32-bit float RGB


def _avif(data: bytes) -> ImageHeader:
    """The largest ``ispe`` (image spatial extents) property in the file (a grid's is its whole size)."""
    best: tuple[int, int] | None = None
    pos = data.find(b"ispe", 0, 1 << 20)
    while pos >= 4:
        if pos + 16 <= len(data):
            w, h = struct.unpack_from(">II", data, pos + 8)
            if best is None or w * h > best[0] * best[1]:
                best = (w, h)
        pos = data.find(b"ispe", pos + 4, 1 << 20)
    if best is None:
        raise _BadHeader("corrupt AVIF (no image size property)")
    return ImageHeader("AVIF", best[0], best[1], 6)


def _parse(data: bytes) -> tuple[ImageHeader, int | None]:
    """The header of ``data`` and, where the format fixes it, the byte count a complete file needs."""
    fmt = format_of(data)
    if fmt is None:
        raise _BadHeader("unknown format")
    try:
        if fmt == "PNM":
            return _pnm(data)
        if fmt == "PAM":
            return _pam(data)
        if fmt == "PFM":
            return _pfm(data)
        parser = {"JPEG": _jpeg, "PNG": _png, "WebP": _webp, "GIF": _gif, "BMP": _bmp, "TIFF": _tiff,
                  "JPEG 2000": _jp2, "Sun raster": _sun, "Radiance HDR": _hdr, "AVIF": _avif}[fmt]
        return parser(data), None
    except struct.error:
        raise _BadHeader(f"truncated or corrupt {fmt} header") from None


def read_image_header(data: bytes) -> ImageHeader | None:
    """The :class:`ImageHeader` of an encoded image, without decoding its pixels; ``None`` for an
    unknown format or a header that cannot be parsed."""
    try:
        return _parse(data)[0]
    except _BadHeader:
        return None


def read_image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an encoded image, without decoding its pixels.

    Understands every format of :data:`FORMATS`; returns ``None`` for other formats or a header
    it cannot parse. The size is the stored one (before any EXIF rotation).
    """
    header = read_image_header(data)
    return None if header is None else (header.width, header.height)


def truncation(data: bytes, fmt: str | None, need: int | None) -> str | None:
    """A reason string if the encoded image is visibly cut short, else ``None``."""
    if fmt == "JPEG":
        # Entropy-coded data byte-stuffs 0xFF, so 0xFFD9 after the last start-of-scan is the real end.
        if data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 2):
            return "truncated JPEG (no end-of-image marker after the image data)"
    elif fmt == "PNG":
        if data.rfind(_PNG_IEND) < 0:
            return "truncated PNG (no IEND chunk)"
    elif fmt == "WebP":
        (riff_size,) = struct.unpack_from("<I", data, 4)
        if len(data) < riff_size + 8:
            return f"truncated WebP ({len(data)} of {riff_size + 8} bytes)"
    elif fmt == "GIF":
        if data.rstrip(b"\x00")[-1:] != b";":
            return "truncated GIF (no trailer)"
    elif fmt in ("PNM", "PAM", "PFM") and need is not None:
        label = _PNM_NAMES.get(data[1:2], fmt)
        if data[1:2] in b"123" and data[1:2] and not data[need - 1 :].strip():  # ASCII: no pixel values at all
            return f"truncated {label} (header only, no pixel values)"
        if need > len(data):
            return f"truncated {label} ({len(data)} of {need} bytes)"
    return None


# --------------------------------------------------------------------------- loading


def check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Raise :class:`ImageLoadError` (naming ``what``) for a zero size or more than ``max_pixels`` pixels."""
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"{what}: image has zero size ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"{what}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:g} megapixels (max_pixels={max_pixels}); raise max_pixels if it is genuine"
        )


DENSITY_CHECK_PIXELS = 16_000_000
"""Images above this size are checked for having enough file bytes for their size (JPEG: at most
1024 pixels a byte, 16384 with arithmetic coding), as part of the pixel limit."""


def _check_header(header: ImageHeader, max_pixels: int | None, what: str, size: int) -> None:
    check_pixels(header.width, header.height, max_pixels, what)
    pixels = header.width * header.height
    if (max_pixels is not None and header.max_density is not None and pixels > DENSITY_CHECK_PIXELS
            and pixels > header.max_density * size):
        raise ImageLoadError(
            f"{what}: a {header.width}x{header.height} {header.format} image in {size} bytes ({pixels / size:.0f} pixels "
            f"a byte, complete data gives at most {header.max_density:.0f}): damaged, or a decompression bomb"
        )
    if max_pixels is not None and header.decode_bytes > DECODE_BYTES_PER_PIXEL * max_pixels:
        raise ImageLoadError(
            f"{what}: decoding this {header.width}x{header.height} {header.format} image needs about "
            f"{header.decode_bytes / 1e6:.0f} MB, over the limit of {DECODE_BYTES_PER_PIXEL * max_pixels / 1e6:.0f} MB "
            f"({DECODE_BYTES_PER_PIXEL} bytes x max_pixels={max_pixels}); raise max_pixels if it is genuine"
        )


def check_image_header(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str = "<bytes>") -> ImageHeader:
    """Read the header of an encoded image and apply the checks :func:`decode_image` makes before
    decoding (known format, readable header, size within ``max_pixels`` and the memory budget).

    Raises:
        ImageLoadError: empty data, unknown format, unreadable header, or too large.
    """
    if len(data) == 0:
        raise ImageLoadError(f"{name}: empty file (0 bytes)")
    return checked_header(data, max_pixels, name)[0]


def checked_header(data: bytes, max_pixels: int | None, name: str) -> tuple[ImageHeader, int | None, str]:
    """The header of ``data`` checked against ``max_pixels`` and the decoder's memory budget, the byte count a
    complete file needs (or ``None``) and the format's name for messages; :class:`ImageLoadError` otherwise."""
    fmt = format_of(data)
    if fmt is None:
        raise ImageLoadError(
            f"{name}: not an image file facelite can read (unknown format; it reads {', '.join(FORMATS)})"
        )
    label = _PNM_NAMES.get(data[1:2], fmt) if fmt == "PNM" else fmt
    try:
        header, need = _parse(data)
    except _BadHeader as exc:
        # the size must be known before decoding: a header that cannot be read is not decoded
        reason = str(exc)
        if label not in reason:
            reason = reason.replace(" header", f" {label} header", 1) if " header" in reason else f"{label}: {reason}"
        raise ImageLoadError(f"{name}: {reason}") from None
    _check_header(header, max_pixels, name, len(data))  # before decoding: decompression bombs
    return header, need, label
