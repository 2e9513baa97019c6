"""Tiled detection of small faces in large images.

At ``input_size`` 640 a 6000-pixel photograph is shrunk almost tenfold, and a face 60 pixels
wide becomes 6 pixels, below the smallest anchor. Tiled detection runs the network on
overlapping square tiles of the original image (each tile resized so its side is
``input_size``: a tile of ``input_size`` pixels is seen at full resolution) plus once on the
whole image, and merges the results:

- a tile's detection at least ``WHOLE_IMAGE_FACE`` pixels high and wide *in the whole-image
  pass's network input* is dropped: the whole-image pass finds such faces, and judges them
  with more context than a tile (at full resolution, texture on clothes or hands seen up close
  can pass for a large face);
- a tile's detection that touches one of the tile's *inner* edges (an edge that is not the
  image border) is a face cut by the tile and is dropped: any face no larger than the overlap
  lies whole inside a neighbouring tile, and larger ones are found by the whole-image pass;
- a detection mostly inside a larger, at least as confident detection of another pass is a
  part of that face (an eye and a nose seen up close) and is dropped;
- what is left goes through the usual NMS.

All coordinates here are continuous pixel coordinates of the original image (origin at the
top-left corner of the top-left pixel), boxes xyxy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nms import nms

__all__ = ["MAX_TILE_OVERLAP", "WHOLE_IMAGE_FACE", "TilePass", "merge_tile_passes", "tile_grid"]

MAX_TILE_OVERLAP = 0.75
"""Largest allowed overlap between neighbouring tiles, as a fraction of the tile side."""

WHOLE_IMAGE_FACE = 64.0
"""Faces at least this many network-input pixels high and wide in the whole-image pass are
taken from that pass only. WIDER FACE dev AP (Easy / Medium / Hard) of mobilenetv2-0.35 at
input 640 with 640-pixel tiles, by this limit: 32: 0.872 / 0.850 / 0.714; 48: 0.881 / 0.854 /
0.714; 64: 0.883 / 0.855 / 0.714 (without tiles: 0.882 / 0.825 / 0.560)."""

CONTAINED_FRACTION = 0.7
"""A box with at least this fraction of its area inside a larger box of another pass is a part of it."""

PART_SIZE_RATIO = 2.0
"""...provided the larger box's shorter side is at least this many times the box's."""


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets along one axis: every ``stride`` pixels, the last tile ending at ``length``."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, stride), length - tile]


def tile_grid(height: int, width: int, tile: int, overlap: float) -> np.ndarray:
    """The tiles that cover an image.

    Args:
        height, width: image size in pixels.
        tile: tile side in pixels (a side of the image shorter than that gets one tile as long
            as the image).
        overlap: neighbouring tiles share at least ``round(overlap * tile)`` pixels, in
            ``[0, MAX_TILE_OVERLAP]``; the last tile of a row or column is moved back to end at
            the image border, so it may share more.

    Returns:
        int64 (T, 4) tiles ``x0, y0, x1, y1`` (pixel ranges ``[x0, x1) x [y0, y1)``), row by row.
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1 pixel, got {tile}")
    if not 0.0 <= overlap <= MAX_TILE_OVERLAP:
        raise ValueError(f"overlap must be in [0, {MAX_TILE_OVERLAP}], got {overlap}")
    stride = max(1, tile - round(overlap * tile))
    xs, ys = _starts(width, tile, stride), _starts(height, tile, stride)
    return np.array(
        [(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs], dtype=np.int64
    ).reshape(-1, 4)


@dataclass(frozen=True)
class TilePass:
    """One network pass of a tiled detection.

    Attributes:
        region: ``(x0, y0, x1, y1)`` of the pass in original-image pixels (the whole image for
            the whole-image pass).
        boxes: float32 (K, 4) xyxy, scores float32 (K,), landmarks float32 (K, 5, 2): the pass's
            detections in pixels of its region (boxes clipped to the region).
    """

    region: tuple[int, int, int, int]
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray


def _cut_by_inner_edge(p: TilePass, image_size: tuple[int, int], margin: float) -> np.ndarray:
    """(K,) bool: the box reaches within ``margin`` pixels of an edge of the region that is not
    an image border."""
    x0, y0, x1, y1 = p.region
    h, w = image_size
    b = p.boxes
    cut = np.zeros(len(b), dtype=bool)
    if x0 > 0:
        cut |= b[:, 0] <= margin
    if y0 > 0:
        cut |= b[:, 1] <= margin
    if x1 < w:
        cut |= b[:, 2] >= (x1 - x0) - margin
    if y1 < h:
        cut |= b[:, 3] >= (y1 - y0) - margin
    return cut


def _parts_of_larger_faces(boxes: np.ndarray, scores: np.ndarray, pass_ids: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(N,) bool: the box lies mostly inside a larger box of another pass with a score at least as high."""
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    big = np.flatnonzero(side >= PART_SIZE_RATIO * max(float(side.min(initial=np.inf)), 0.0))
    part = np.zeros(len(boxes), dtype=bool)
    if len(big) == 0:
        return part
    bb, bs, bside, bpass = boxes[big], scores[big], side[big], pass_ids[big]
    for start in range(0, len(boxes), chunk):
        sl = slice(start, start + chunk)
        b = boxes[sl]
        iw = np.minimum(b[:, None, 2], bb[None, :, 2]) - np.maximum(b[:, None, 0], bb[None, :, 0])
        ih = np.minimum(b[:, None, 3], bb[None, :, 3]) - np.maximum(b[:, None, 1], bb[None, :, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        explains = (
            (inter >= CONTAINED_FRACTION * area[sl, None])
            & (bside[None, :] >= PART_SIZE_RATIO * side[sl, None])
            & (bs[None, :] >= scores[sl, None])
            & (bpass[None, :] != pass_ids[sl, None])
        )
        part[sl] = explains.any(axis=1)
    return part


def merge_tile_passes(
    passes: list[TilePass],
    image_size: tuple[int, int],
    nms_threshold: float,
    keep_top_k: int,
    edge_margin: float,
    tile_face_limit: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge the passes of a tiled detection into one result.

    Args:
        passes: the whole-image pass and the tile passes (see :class:`TilePass`).
        image_size: ``(height, width)`` of the original image.
        nms_threshold: IoU above which the lower-scoring of two boxes is dropped.
        keep_top_k: at most this many faces are returned.
        edge_margin: a tile's box within this many pixels of an inner tile edge counts as cut.
        tile_face_limit: a tile's box whose shorter side is at least this many pixels is
            dropped (the whole-image pass is trusted with such faces).

    Returns:
        ``boxes`` float32 (K, 4) xyxy, ``scores`` float32 (K,), ``landmarks`` float32 (K, L, 2),
        in original-image pixels, highest score first.
    """
    boxes, scores, lmks, ids = [], [], [], []
    h, w = image_size
    for i, p in enumerate(passes):
        keep = ~_cut_by_inner_edge(p, image_size, edge_margin)
        if p.region != (0, 0, w, h):
            keep &= np.minimum(p.boxes[:, 2] - p.boxes[:, 0], p.boxes[:, 3] - p.boxes[:, 1]) < tile_face_limit
        dx, dy = p.region[:2]
        offset = np.array([dx, dy], dtype=np.float32)
        boxes.append(p.boxes[keep] + np.tile(offset, 2))
        scores.append(p.scores[keep])
        lmks.append(p.landmarks[keep] + offset)
        ids.append(np.full(int(keep.sum()), i))
    b = np.concatenate(boxes).astype(np.float32, copy=False)
    s = np.concatenate(scores).astype(np.float32, copy=False)
    pts = np.concatenate(lmks).astype(np.float32, copy=False)
    pass_ids = np.concatenate(ids)
    if len(b):
        whole = ~_parts_of_larger_faces(b, s, pass_ids)
        b, s, pts = b[whole], s[whole], pts[whole]
    keep = nms(b, s, nms_threshold, keep_top_k=keep_top_k)
    return b[keep], s[keep], pts[keep]
