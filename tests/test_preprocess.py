import numpy as np
import pytest

from facelite.preprocess import Letterbox, letterbox_geometry, preprocess, preprocess_batch
from facelite.spec import ModelSpec, default_spec


def _reference(image, spec, box):
    import cv2

    rh, rw = box.resized_size
    r = image if (rh, rw) == image.shape[:2] else cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    if spec.channel_order == "RGB":
        r = r[:, :, ::-1]
    ref = np.zeros((1, 3, *box.padded_size), np.float32)
    norm = (r.astype(np.float32) - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    ref[0, :, :rh, :rw] = norm.transpose(2, 0, 1)
    return ref


def test_geometry_longer_side_and_padding():
    b = letterbox_geometry(720, 1280, 640, 32)
    assert b == Letterbox((720, 1280), (360, 640), (384, 640))
    b = letterbox_geometry(1280, 720, 640, 32)
    assert b.resized_size == (640, 360) and b.padded_size == (640, 384)
    b = letterbox_geometry(333, 500, 320, 32)
    assert b.resized_size == (213, 320) and b.padded_size == (224, 320)
    assert b.scale == pytest.approx(320 / 500)
    with pytest.raises(ValueError):
        letterbox_geometry(0, 10, 640, 32)


def test_known_point_maps_back_exactly():
    b = letterbox_geometry(100, 200, 640, 32)  # scale 3.2
    np.testing.assert_array_equal(b.to_network(np.array([50.0, 25.0])), [160.0, 80.0])
    np.testing.assert_array_equal(b.to_original(np.array([160.0, 80.0])), [50.0, 25.0])
    # with a rounded resize, the image's far corner still maps to the resized corner exactly
    b = letterbox_geometry(333, 500, 640, 32)
    assert b.resized_size == (426, 640)
    np.testing.assert_allclose(b.to_original(np.array([640.0, 426.0])), [500.0, 333.0], rtol=1e-7)
    # boxes (..., 4) and landmark sets (..., 5, 2) round-trip
    boxes = np.array([[10.0, 20.0, 300.0, 320.0]], np.float32)
    np.testing.assert_allclose(b.to_original(b.to_network(boxes)), boxes, rtol=1e-6)
    pts = np.random.default_rng(0).uniform(0, 300, (3, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(b.to_original(b.to_network(pts)), pts, rtol=1e-6)
    with pytest.raises(ValueError):
        b.to_original(np.zeros((2, 3)))


def test_pixels_land_where_the_mapping_says():
    image = np.zeros((200, 400, 3), np.uint8)
    image[50:70, 100:120] = 255  # a white square, corners (100, 50) - (120, 70)
    spec = ModelSpec()
    tensor, box = preprocess(image, spec, 640)  # scale 1.6 -> square at (160, 80) - (192, 112)
    x1, y1, x2, y2 = box.to_network(np.array([100.0, 50.0, 120.0, 70.0]))
    assert (x1, y1, x2, y2) == (160.0, 80.0, 192.0, 112.0)
    white = (255 - spec.mean[0]) / spec.std[0]
    black = (0 - spec.mean[0]) / spec.std[0]
    assert tensor[0, 0, 82:110, 162:190] == pytest.approx(white)
    assert tensor[0, 0, 70:78, 150:200] == pytest.approx(black)


@pytest.mark.parametrize("alpha", [0.35, 1.0])
@pytest.mark.parametrize("shape", [(720, 1280), (1280, 720), (100, 37), (512, 512), (300, 500)])
def test_tensor_matches_reference(alpha, shape):
    spec = default_spec(alpha)
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tensor, box = preprocess(image, spec, 640)
    assert tensor.dtype == np.float32 and tensor.flags.c_contiguous
    assert tensor.shape == (1, 3, *box.padded_size)
    assert all(s % spec.pad_multiple == 0 for s in box.padded_size)
    assert max(box.resized_size) == 640
    assert 2 * 640 >= max(shape)  # (shrinking by more than 2x averages: see the tests below)
    np.testing.assert_allclose(tensor, _reference(image, spec, box), atol=1e-5)


@pytest.mark.parametrize("shape", [(768, 1024), (683, 1024), (1365, 1024), (2000, 3001), (5, 1000), (1, 999)])
@pytest.mark.parametrize("size", [320, 256, 100])
def test_shrinking_more_than_2x_is_close_to_area_averaging(shape, size):
    import cv2

    from facelite.preprocess import _resize

    # a smooth image with some texture: the halvings + bilinear stay within a few grey levels of
    # INTER_AREA (the full box filter), and never move the content
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 20 * np.sin((xx + yy) / 9.0)
    image = np.clip(np.stack([base, base[::-1], 255 - base], -1), 0, 255).astype(np.uint8)
    box = letterbox_geometry(*shape, size, 32)
    rh, rw = box.resized_size
    got = _resize(image, box)
    assert got.shape == (rh, rw, 3) and got.dtype == np.uint8
    ref = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA)
    diff = np.abs(got.astype(np.float32) - ref)
    if min(rh, rw) > 4:
        assert diff.mean() < 3.0 and np.percentile(diff, 99) < 16


def test_shrinking_more_than_2x_keeps_the_geometry():
    image = np.zeros((1000, 1600, 3), np.uint8)
    image[400:480, 700:820] = 255  # corners (700, 400) - (820, 480)
    spec = ModelSpec()
    for size in (320, 200, 100):  # factors 5, 8, 16
        tensor, box = preprocess(image, spec, size)
        x1, y1, x2, y2 = box.to_network(np.array([700.0, 400.0, 820.0, 480.0]))
        plane = tensor[0, 0, : box.resized_size[0], : box.resized_size[1]] > 0  # brighter than mid-grey
        ys, xs = np.nonzero(plane)
        # the bright area's edges in the network input lie within a pixel of where the mapping says
        assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
        assert abs(ys.min() - y1) <= 1 and abs(ys.max() + 1 - y2) <= 1


def test_bgr_spec_and_padding_is_zero():
    spec = ModelSpec(channel_order="BGR", mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0))
    image = np.full((50, 100, 3), (10, 20, 30), np.uint8)
    tensor, box = preprocess(image, spec, 100)
    assert box.padded_size == (64, 128)
    np.testing.assert_allclose(tensor[0, :, 0, 0], [10 - 104, 20 - 117, 30 - 123])
    assert not tensor[0, :, 50:, :].any() and not tensor[0, :, :, 100:].any()


def test_batch_shares_one_tensor():
    spec = ModelSpec()
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (200, 100, 3), dtype=np.uint8)
    batch, boxes = preprocess_batch([a, b], spec, 320)
    assert batch.shape == (2, 3, 320, 320)
    for i, im in enumerate((a, b)):
        single, box = preprocess(im, spec, 320)
        assert boxes[i].resized_size == box.resized_size and boxes[i].padded_size == (320, 320)
        h, w = single.shape[2:]
        np.testing.assert_array_equal(batch[i, :, :h, :w], single[0])
        assert not batch[i, :, h:, :].any() and not batch[i, :, :, w:].any()
    with pytest.raises(ValueError):
        preprocess_batch([], spec, 320)
