"""Tiled detection: the tile grid, the merge rules, and the detector on images with known faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelite import FaceDetector, load_image
from facelite.nms import box_iou
from facelite.paths import data_path
from facelite.tiling import TilePass, merge_tile_passes, tile_grid

# the sample image's face, in its pixels, and a crop around it with context
SAMPLE_FACE = (176.0, 56.0, 274.0, 178.0)
CONTEXT = (140, 16, 310, 220)  # x0, y0, x1, y1


def _pass(region, boxes, scores):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32)
    lmk = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :], 5, axis=1)
    return TilePass(region, boxes, scores, lmk)


# --------------------------------------------------------------------------- grid


def test_tile_grid_covers_the_image_with_the_overlap():
    tiles = tile_grid(1000, 1500, 640, 0.25)  # stride 480
    assert tiles.tolist() == [
        [0, 0, 640, 640], [480, 0, 1120, 640], [860, 0, 1500, 640],
        [0, 360, 640, 1000], [480, 360, 1120, 1000], [860, 360, 1500, 1000],
    ]
    covered = np.zeros((1000, 1500), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()


def test_tile_grid_small_sides_and_bad_arguments():
    assert tile_grid(300, 2000, 640, 0.0).tolist() == [[0, 0, 640, 300], [640, 0, 1280, 300], [1280, 0, 1920, 300],
                                                      [1360, 0, 2000, 300]]
    assert tile_grid(500, 400, 640, 0.25).tolist() == [[0, 0, 400, 500]]
    with pytest.raises(ValueError, match="overlap"):
        tile_grid(1000, 1000, 640, 0.8)
    with pytest.raises(ValueError, match="tile"):
        tile_grid(1000, 1000, 0, 0.25)


# --------------------------------------------------------------------------- merge rules


def test_merge_drops_faces_cut_by_inner_tile_edges_but_not_by_the_image_border():
    size = (1000, 1000)
    whole = _pass((0, 0, 1000, 1000), np.zeros((0, 4)), [])
    # the left tile sees part of a face at its inner edge x = 640 (too little overlap with the
    # whole face for NMS to remove it), and a face at the image border x = 0
    left = _pass((0, 0, 640, 640), [[615, 95, 640, 145], [0, 300, 30, 330], [200, 200, 230, 230]], [0.9, 0.8, 0.7])
    right = _pass((360, 0, 1000, 640), [[230, 100, 290, 140]], [0.95])  # the first face, whole
    b, s, _ = merge_tile_passes([whole, left, right], size, 0.4, 750, edge_margin=2.0, tile_face_limit=100.0)
    assert s.tolist() == pytest.approx([0.95, 0.8, 0.7])
    assert b.tolist() == [[590, 100, 650, 140], [0, 300, 30, 330], [200, 200, 230, 230]]


def test_merge_keeps_one_of_duplicates_and_moves_tile_landmarks_to_image_pixels():
    size = (800, 1200)
    a = _pass((0, 0, 640, 640), [[500, 300, 540, 340]], [0.8])
    b = _pass((480, 0, 1120, 640), [[21, 301, 61, 341]], [0.9])
    whole = _pass((0, 0, 1200, 800), np.zeros((0, 4)), [])
    boxes, scores, lmk = merge_tile_passes([whole, a, b], size, 0.4, 750, 2.0, 100.0)
    assert scores.tolist() == pytest.approx([0.9])
    assert boxes.tolist() == [[501, 301, 541, 341]]
    assert lmk[0, 0].tolist() == [521, 321]


def test_merge_leaves_large_faces_and_their_parts_to_the_whole_image_pass():
    size = (2000, 2000)
    whole = _pass((0, 0, 2000, 2000), [[700, 200, 1100, 700]], [0.99])
    tile = _pass((480, 0, 1120, 640), [
        [300, 250, 400, 330],   # inside the whole-image face: a part of it, dropped
        [20, 500, 60, 540],     # a small face elsewhere, kept
        [100, 100, 260, 300],   # side 160 >= the limit: left to the whole-image pass, dropped
    ], [0.9, 0.6, 0.95])
    boxes, scores, _ = merge_tile_passes([whole, tile], size, 0.4, 750, 2.0, tile_face_limit=150.0)
    assert scores.tolist() == pytest.approx([0.99, 0.6])
    assert boxes.tolist() == [[700, 200, 1100, 700], [500, 500, 540, 540]]
    # a part scoring higher than the large face is not explained by it and stays
    tile = _pass((480, 0, 1120, 640), [[300, 250, 400, 330]], [0.995])
    _, scores, _ = merge_tile_passes([whole, tile], size, 0.4, 750, 2.0, 150.0)
    assert scores.tolist() == pytest.approx([0.995, 0.99])


# --------------------------------------------------------------------------- the detector


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return load_image(data_path())


def _crowd(sample: np.ndarray, positions: list[tuple[int, int]], size=(1536, 2048), factor=0.4):
    """A smooth canvas with the sample face shrunk by ``factor`` pasted at ``positions``; the
    faces' boxes in canvas pixels."""
    x0, y0, x1, y1 = CONTEXT
    small = cv2.resize(sample[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    canvas = np.dstack([60 + 100 * xx / w, 90 + 60 * yy / h, np.full((h, w), 120.0)]).astype(np.uint8)
    truth = []
    fx0, fy0, fx1, fy1 = SAMPLE_FACE
    for x, y in positions:
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        truth.append([x + (fx0 - x0) * factor, y + (fy0 - y0) * factor, x + (fx1 - x0) * factor, y + (fy1 - y0) * factor])
    return canvas, np.array(truth, np.float32)


def test_tiles_find_small_faces_a_single_pass_misses_each_once(sample):
    # 40-px faces in a 2048-px image: 6 px at input 320, 40 px in a 320-px tile. Some straddle
    # tile edges (tiles start every 240 px: 0, 240, 480, ...), one touches the image border.
    positions = [(100, 100), (300, 200), (700, 470), (1200, 900), (1980, 1450), (0, 700)]
    canvas, truth = _crowd(sample, positions)
    single = FaceDetector(input_size=320, threads=1)
    tiled = FaceDetector(input_size=320, threads=1, tile_size=320)
    assert len(single.detect(canvas)) == 0
    boxes, scores, lmk = tiled.detect_arrays(canvas)
    assert len(boxes) == len(truth)
    iou = box_iou(truth, boxes)
    assert (iou.max(axis=1) > 0.6).all() and (iou.max(axis=0) > 0.6).all()
    assert (scores > 0.9).all()
    # landmarks in canvas pixels, inside their faces
    matched = truth[iou.argmax(axis=0)]
    assert ((lmk >= matched[:, None, :2]) & (lmk <= matched[:, None, 2:])).all()
    assert tiled.last_timings["network_ms"] > 0


def test_tiles_keep_a_large_face_single(sample):
    # the sample enlarged 4x: the face (about 400 px) spans several 640-px tiles
    big = cv2.resize(sample, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    single = FaceDetector(threads=1).detect_arrays(big)
    tiled = FaceDetector(threads=1, tile_size=640).detect_arrays(big)
    assert len(single[0]) == len(tiled[0]) == 1
    np.testing.assert_allclose(tiled[0], single[0], atol=1e-3)
    np.testing.assert_allclose(tiled[2], single[2], atol=1e-3)


def test_an_image_within_one_tile_is_detected_as_without_tiles(sample):
    plain = FaceDetector(threads=1, score_threshold=0.02)
    tiled = FaceDetector(threads=1, score_threshold=0.02, tile_size=640)
    for a, b in zip(plain.detect_arrays(sample), tiled.detect_arrays(sample)):
        np.testing.assert_array_equal(a, b)


def test_detect_batch_with_tiles_equals_detect(sample):
    canvas, _ = _crowd(sample, [(100, 100), (700, 470)], size=(800, 1000))
    tiled = FaceDetector(input_size=320, threads=1, tile_size=320)
    batch = tiled.detect_batch_arrays([canvas, sample, canvas], batch_size=2)
    for image, got in zip([canvas, sample, canvas], batch):
        for a, b in zip(tiled.detect_arrays(image), got):
            np.testing.assert_array_equal(a, b)
    assert len(batch[0][0]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile_size": 16}, "tile_size"),
        ({"tile_size": 320.5}, "tile_size"),
        ({"tile_size": 640, "tile_overlap": 0.9}, "tile_overlap"),
        ({"tile_size": 640, "tile_overlap": -0.1}, "tile_overlap"),
    ],
)
def test_bad_tile_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaceDetector(**kwargs)


# --------------------------------------------------------------------------- command line


def test_detect_command_with_tiles_records_them_and_finds_the_small_faces(sample, tmp_path, capsys):
    import json

    from facelite.cli import main

    canvas, truth = _crowd(sample, [(100, 100), (700, 470), (1200, 900)])
    path = tmp_path / "crowd.png"
    cv2.imwrite(str(path), canvas)
    out = tmp_path / "faces.json"
    args = ["detect", str(path), "--input-size", "320", "--threads", "1", "--json", str(out), "-q"]
    assert main(args) == 0
    plain = json.loads(out.read_text())[0]
    assert plain["faces"] == [] and "tile" not in plain
    assert main([*args, "--tile", "320", "--tile-overlap", "0.3"]) == 0
    tiled = json.loads(out.read_text())[0]
    assert tiled["tile"] == {"size": 320, "overlap": 0.3}
    boxes = np.array([f["box"] for f in tiled["faces"]], np.float32)
    assert len(boxes) == 3 and (box_iou(truth, boxes).max(axis=1) > 0.6).all()
    assert main([*args, "--tile", "8"]) == 1
    assert "tile_size must be an integer >= 32, got 8" in capsys.readouterr().err
