import struct
import zlib

import cv2
import numpy as np
import pytest

from facelite.imageio import ImageLoadError, decode_image, load_image, read_image_size, to_bgr
from facelite.paths import data_path


def _jpeg(image, quality=95):
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def _exif_app1(orientation):
    """A minimal big-endian EXIF APP1 segment with one IFD0 entry: Orientation (0x0112)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_loads_sample_as_bgr_uint8():
    img = load_image(data_path("astronaut.jpg"))
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    # the suit is orange: in BGR order red > green > blue
    b, g, r = img[400, 100].astype(int)
    assert r > g > b


def test_missing_directory_empty_and_not_an_image(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("just some text, not pixels\n")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(tmp_path / "notes.jpg")
    assert issubclass(ImageLoadError, ValueError)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_jpeg(tmp_path, keep):
    data = data_path("astronaut.jpg").read_bytes()
    f = tmp_path / "cut.jpg"
    f.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageLoadError, match="truncated JPEG"):
        load_image(f)
    # a JPEG cut by only its last 2 bytes (the EOI marker) is caught too
    f.write_bytes(data[:-2])
    with pytest.raises(ImageLoadError, match="truncated JPEG"):
        load_image(f)
    # trailing bytes after a complete JPEG are harmless
    f.write_bytes(data + b"\x00" * 16)
    assert load_image(f).shape == (512, 512, 3)


def test_truncated_png_and_webp():
    img = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    png = cv2.imencode(".png", img)[1].tobytes()
    with pytest.raises(ImageLoadError, match="truncated PNG"):
        decode_image(png[: len(png) // 2])
    with pytest.raises(ImageLoadError, match="truncated PNG"):
        decode_image(png[:-12])  # IEND chunk missing
    webp = cv2.imencode(".webp", img)[1].tobytes()
    with pytest.raises(ImageLoadError, match="truncated WebP"):
        decode_image(webp[: len(webp) - 10])
    np.testing.assert_array_equal(decode_image(png), img)


def test_header_sizes_of_each_format():
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in (".jpg", ".png", ".webp", ".bmp", ".tiff"):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert read_image_size(data) == (53, 37), ext
    assert read_image_size(b"hello") is None


def test_pixel_limit_checked_before_decoding(tmp_path):
    # only a PNG signature and an IHDR announcing 100000 x 100000 pixels: no pixel data at all,
    # so the error can only come from the header check (before any decoding or truncation check)
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    f = tmp_path / "bomb.png"
    f.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr)
    with pytest.raises(ImageLoadError, match=r"100000x100000 = 10000.0 megapixels, over the limit of 250 megapixels"):
        load_image(f)
    # the limit is configurable
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(data_path("astronaut.jpg"), max_pixels=512 * 512 - 1)
    assert load_image(data_path("astronaut.jpg"), max_pixels=512 * 512).shape == (512, 512, 3)
    assert load_image(data_path("astronaut.jpg"), max_pixels=None).shape == (512, 512, 3)


def test_zero_size_header():
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0))
    with pytest.raises(ImageLoadError, match="zero size"):
        decode_image(b"\x89PNG\r\n\x1a\n" + ihdr + _png_chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "orientation, shape, red_corner",
    [(1, (10, 20), (0, 0)), (3, (10, 20), (-1, -1)), (6, (20, 10), (0, 0)), (8, (20, 10), (-1, -1))],
)
def test_exif_orientation_is_applied(tmp_path, orientation, shape, red_corner):
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = (0, 0, 255)  # left half red, stored 20 wide x 10 high
    data = _jpeg(img)
    f = tmp_path / f"o{orientation}.jpg"
    f.write_bytes(data[:2] + _exif_app1(orientation) + data[2:])
    out = load_image(f)
    assert out.shape[:2] == shape
    assert out[red_corner][2] > 200 and out[red_corner][0] < 50  # red where the rotation puts it


def test_grey_rgba_16bit_files_become_bgr_uint8(tmp_path):
    grey = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) % 256
    cv2.imwrite(str(tmp_path / "grey.png"), grey.astype(np.uint8))
    g = load_image(tmp_path / "grey.png")
    assert g.shape == (48, 64, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g[:, :, 0], grey)
    np.testing.assert_array_equal(g[:, :, 2], grey)

    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = 0  # fully transparent: the colour is kept (alpha dropped)
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    a = load_image(tmp_path / "rgba.png")
    assert a.shape == (8, 8, 3)
    np.testing.assert_array_equal(a[0, 0], (10, 20, 30))

    deep = np.full((6, 7, 3), (0, 32896, 65535), np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    d = load_image(tmp_path / "deep.png")
    assert d.dtype == np.uint8
    np.testing.assert_array_equal(d[0, 0], (0, 128, 255))


def test_to_bgr_conversions():
    bgr = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert to_bgr(bgr) is bgr  # nothing to do: no copy
    np.testing.assert_array_equal(to_bgr(bgr[:, :, ::-1], order="RGB"), bgr)
    grey = bgr[:, :, 1].copy()
    for g in (grey, grey[:, :, None]):
        out = to_bgr(g)
        assert out.shape == (5, 6, 3)
        np.testing.assert_array_equal(out[:, :, 0], grey)
    rgba = np.dstack([bgr[:, :, ::-1], np.full((5, 6), 255, np.uint8)])
    np.testing.assert_array_equal(to_bgr(rgba, order="RGB"), bgr)
    np.testing.assert_array_equal(to_bgr(np.dstack([bgr, np.zeros((5, 6), np.uint8)])), bgr)
    half = np.dstack([np.full((2, 2, 3), 200, np.uint8), np.full((2, 2), 128, np.uint8)])
    blended = to_bgr(half, alpha="blend", background=(0, 0, 0))
    np.testing.assert_array_equal(blended, np.full((2, 2, 3), 100, np.uint8))  # 200 * 128/255 = 100.4
    np.testing.assert_array_equal(to_bgr(np.full((2, 2), 65535, np.uint16)), np.full((2, 2, 3), 255, np.uint8))
    np.testing.assert_array_equal(to_bgr(np.full((2, 2, 3), 0.5, np.float32)), np.full((2, 2, 3), 128, np.uint8))
    strided = np.zeros((10, 10, 3), np.uint8)[::2, ::2]
    out = to_bgr(strided)
    assert out.flags.c_contiguous and out.shape == (5, 5, 3)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (np.zeros((4, 4, 3, 1), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 3), np.int32), "unsupported pixel type"),
        ([[1, 2], [3, 4]], "NumPy array"),
    ],
)
def test_to_bgr_rejects(bad, msg):
    with pytest.raises(ValueError, match=msg):
        to_bgr(bad)


def test_to_bgr_bad_options():
    img = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="order"):
        to_bgr(img, order="RGBA")
    with pytest.raises(ValueError, match="alpha"):
        to_bgr(img, alpha="keep")
