"""``FaceDetector``: model file + preprocessing + network + decoding + NMS.

Run-time data flow (NumPy, OpenCV and ONNX Runtime only; torch is never imported)::

    image (H x W x 3 uint8 BGR) -> preprocess (resize longer side to input_size,
    pad bottom/right, normalise) -> backend (scores, box deltas, landmark deltas per
    anchor) -> score filter -> decode the survivors against the anchors of the
    model's own spec -> NMS -> scale back to original pixels and clip the boxes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import numpy as np

from .anchors import anchors_for
from .codec import decode_boxes, decode_landmarks
from .face import Face
from .imageio import DEFAULT_MAX_PIXELS, load_image
from .models import PRECISIONS, ResolvedModel, resolve_model
from .nms import nms_ranked
from .nms import top_k as top_k_indices
from .preprocess import Letterbox, letterbox_geometry, preprocess, preprocess_batch
from .runtime import Backend, load_backend
from .spec import ModelSpec
from .tiling import MAX_TILE_OVERLAP, WHOLE_IMAGE_FACE, TilePass, merge_tile_passes, tile_grid
from .voting import vote

__all__ = ["FaceDetector", "as_bgr_image"]

PRECISION_METADATA_KEY = "facelite.precision"
"""Optional ONNX metadata key with the weights' precision (``float32`` / ``int8``)."""

DEFAULT_INPUT_SIZE = 640
"""Longer side of the network input when ``input_size`` is not given."""

_TO_BGR_HINT = "convert it with facelite.imageio.to_bgr(image)"


def as_bgr_image(image: object, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Validate an image argument; load it when it is a path.

    Returns:
        ``H x W x 3`` uint8 BGR, C-contiguous (the input itself when it already is).

    Raises:
        ValueError: anything else, with what was expected and how to convert it.
        facelite.imageio.ImageLoadError: a path that cannot be loaded (a ``ValueError`` too).
    """
    if image is None:
        raise ValueError(
            "image is None: expected an H x W x 3 uint8 BGR array or a file path "
            "(cv2.imread returns None for unreadable files; facelite.load_image says why)"
        )
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels=max_pixels)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an H x W x 3 uint8 BGR NumPy array or a file path, got {type(image).__name__}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"expected an H x W x 3 BGR image, got a grey image of shape {image.shape}; {_TO_BGR_HINT}")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(
            f"expected an H x W x 3 BGR image, got 4 channels (shape {image.shape}); "
            "convert it with facelite.imageio.to_bgr(image, order='BGR' or 'RGB', alpha='drop' or 'blend')"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 BGR image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels (0..255), got {image.dtype}; {_TO_BGR_HINT}")
    return np.ascontiguousarray(image)


def _check_unit(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_pixels(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a number of pixels >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class FaceDetector:
    """Detect faces and 5 landmarks.

    Args:
        model: a shipped model name (``"mobilenetv2-0.35"``, ``"mobilenetv2-1.0"``) or the path
            of any ``.onnx`` written by :func:`facelite.export.onnx.export_onnx`.
        precision: ``"float32"`` or ``"int8"`` (shipped models only).
        input_size: the image is resized so its longer side is this many pixels (>= 32; it is
            padded up to a multiple of the model's ``pad_multiple``, so any value works).
            Default 640; for a fixed-shape TFLite file, the file's side when that is smaller
            (a larger ``input_size`` than the file takes is refused).
        score_threshold: keep detections with score >= this, in [0, 1].
        nms_threshold: IoU above which a lower-scoring overlapping box is suppressed, in [0, 1].
        threads: CPU threads for the network; ``None`` = ONNX Runtime's default (all cores),
            ``1`` = strictly single-threaded.
        top_k: at most this many candidates (highest scores) enter NMS.
        keep_top_k: at most this many faces are returned per image.
        max_image_pixels: limit on width x height for images given as file paths
            (``None``: no limit); see :func:`facelite.imageio.load_image`.
        min_face_size: drop faces whose box, as returned (original-image pixels, clipped to
            the image), is narrower or lower than this many pixels; ``0`` keeps all.
        tile_size: tiled detection for small faces in large images (see :mod:`facelite.tiling`):
            an image whose longer side exceeds this many pixels is also cut into overlapping
            square tiles of this side, each run at ``input_size`` (``tile_size == input_size``
            sees the image at full resolution), and the tiles' faces are merged with those of
            the whole image. ``None`` (default): one pass over the whole image.
        tile_overlap: neighbouring tiles share this fraction of the tile side, in
            ``[0, 0.75]``; faces up to about that many pixels are always found whole in a
            tile, larger ones by the whole-image pass.
        landmark_voting: each face's landmarks are the score-weighted mean of those of the
            candidates NMS merged into it (:func:`facelite.voting.vote`): more accurate than the
            kept candidate's alone. ``False``: the kept candidate's landmarks (the paper's decoding).
        box_voting: the same for each face's box: higher AP (+0.1 to +0.8 point on the dev
            split). ``False``: the kept candidate's box. Scores are never changed.

    One detector may be shared by several threads: ONNX Runtime runs their calls in parallel
    (the TFLite backend one at a time). ``last_timings`` then holds the timings of whichever
    call finished last; give each thread its own detector to read them per call.

    Attributes:
        spec: the model's :class:`~facelite.spec.ModelSpec`, read from the model file.
        model_info: the resolved model file (path, name, precision, SHA-256).
        last_timings: milliseconds spent in ``preprocess_ms``, ``network_ms`` and
            ``postprocess_ms`` (plus ``total_ms``) by the last ``detect*`` call; for
            :meth:`detect_batch` the sums over all images, for a tiled detection the sums
            over its passes.

    Raises:
        ValueError: invalid arguments (an unknown model name lists the available ones).
        facelite.models.ModelNotFoundError: the model file is missing.
        facelite.models.ModelChecksumError: a shipped model file is corrupt.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "mobilenetv2-0.35",
        precision: str = "float32",
        input_size: int | None = None,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        threads: int | None = None,
        top_k: int = 5000,
        keep_top_k: int = 750,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        min_face_size: float = 0.0,
        tile_size: int | None = None,
        tile_overlap: float = 0.25,
        landmark_voting: bool = True,
        box_voting: bool = True,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if input_size is not None:
            input_size = _check_count("input_size", input_size, 32)
            if input_size > 8192:
                raise ValueError(f"input_size must be <= 8192, got {input_size}")
        self.score_threshold = _check_unit("score_threshold", score_threshold)
        self.nms_threshold = _check_unit("nms_threshold", nms_threshold)
        self.top_k = _check_count("top_k", top_k)
        self.keep_top_k = _check_count("keep_top_k", keep_top_k)
        if threads is not None:
            _check_count("threads", threads)
        self.threads = threads
        if max_image_pixels is not None:
            _check_count("max_image_pixels", max_image_pixels)
        self.max_image_pixels = max_image_pixels
        self.min_face_size = _check_pixels("min_face_size", min_face_size)
        if tile_size is not None:
            _check_count("tile_size", tile_size, 32)
        self.tile_size = tile_size
        self.tile_overlap = _check_unit("tile_overlap", tile_overlap)
        if self.tile_overlap > MAX_TILE_OVERLAP:
            raise ValueError(f"tile_overlap must be in [0, {MAX_TILE_OVERLAP}], got {tile_overlap!r}")
        for name, value in (("landmark_voting", landmark_voting), ("box_voting", box_voting)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        self.landmark_voting = landmark_voting
        self.box_voting = box_voting
        self.model_info: ResolvedModel = resolve_model(model, precision)
        self.backend: Backend = load_backend(self.model_info.path, threads=threads)
        self.spec: ModelSpec = self.backend.spec
        fixed = getattr(self.backend, "input_hw", None)  # TFLite: the file's (H, W)
        largest = min(fixed) if fixed else None
        if input_size is None:
            input_size = min(DEFAULT_INPUT_SIZE, largest) if largest else DEFAULT_INPUT_SIZE
        elif largest and input_size > largest:
            raise ValueError(f"input_size {input_size} is larger than {self.model_info.path.name} takes "
                             f"({fixed[0]}x{fixed[1]}: TFLite files have a fixed input shape); use at most {largest}")
        self.input_size: int = input_size
        self.last_timings: dict[str, float] = {}

    @classmethod
    def for_budget(
        cls,
        budget_ms: float,
        input_sizes: tuple[int, ...] = (320, 640),
        threads: int | None = None,
        images: list[str | os.PathLike[str]] | None = None,
        statistic: str = "median",
        **detector_options: object,
    ) -> FaceDetector:
        """The most accurate shipped configuration (width, precision, input size) whose time per
        image on this machine is within ``budget_ms`` (see :func:`facelite.budget.pick`; the
        measurement takes a few seconds the first time and is cached per machine and version).

        Args:
            budget_ms: milliseconds per image, end to end (``statistic``: median or p90).
            input_sizes: input sizes to consider (320 and/or 640).
            threads: the ONNX Runtime thread count to measure and to run with.
            images: image files to time on (default: the bundled sample image).
            detector_options: other constructor arguments (``score_threshold``, ...).

        Raises:
            ValueError: no configuration fits; the message names the fastest and its time.
        """
        from .budget import pick

        result = pick(budget_ms, input_sizes=input_sizes, threads=threads, images=images, statistic=statistic)
        if result.chosen is None:
            f = result.fastest
            raise ValueError(f"no shipped configuration runs within {budget_ms:g} ms ({statistic}) on this machine; "
                             f"the fastest is {f.label} at {f.median_ms:.1f} ms median, {f.p90_ms:.1f} ms p90")
        return cls(**result.chosen.detector_options(), threads=threads, **detector_options)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict:
        """Everything but the loaded network, which cannot be pickled; unpickling loads it again
        (for process pools started by "spawn", and other processes or machines)."""
        state = self.__dict__.copy()
        del state["backend"]
        state["last_timings"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        """Load the network again: a shipped model from this installation by name (checksum
        verified), a model given by path from that path, which must still hold the same file."""
        state.setdefault("landmark_voting", True)  # pickled by a version without them
        state.setdefault("box_voting", True)
        self.__dict__.update(state)
        info: ResolvedModel = state["model_info"]
        model = info.name if info.shipped and info.name else info.path
        self.model_info = resolve_model(model, info.precision or "float32")
        if self.model_info.sha256 != info.sha256:
            raise ValueError(f"{self.model_info.path} is not the model file the detector was made with "
                             f"(SHA-256 {self.model_info.sha256[:12]}..., expected {info.sha256[:12]}...)")
        self.backend = load_backend(self.model_info.path, threads=self.threads)

    # ------------------------------------------------------------------ description

    @property
    def name(self) -> str:
        """The shipped model name, or the spec's name for a model given by path."""
        return self.model_info.name or self.spec.name

    @property
    def precision(self) -> str | None:
        """``float32``/``int8`` for shipped models; from the file's metadata otherwise (``None`` if absent)."""
        return self.model_info.precision or self.backend.metadata.get(PRECISION_METADATA_KEY)

    def model_record(self) -> dict[str, str | None]:
        """What the JSON outputs (``facelite detect --json``, ``facelite video``, the HTTP service)
        record about the model: ``{"name", "precision", "sha256"}``, the SHA-256 cut to 12 hex digits."""
        return {"name": self.name, "precision": self.precision, "sha256": self.model_info.sha256[:12]}

    def tile_record(self) -> dict[str, dict[str, float]]:
        """What the JSON records add about tiled detection: ``{"tile": {"size", "overlap"}}`` when
        it is on, else nothing (so the records of a plain run stay as they were)."""
        return {"tile": {"size": self.tile_size, "overlap": self.tile_overlap}} if self.tile_size else {}

    def __repr__(self) -> str:
        return (
            f"FaceDetector(model={self.name!r}, precision={self.precision!r}, input_size={self.input_size}, "
            f"score_threshold={self.score_threshold}, nms_threshold={self.nms_threshold}, threads={self.threads}"
            + (f", min_face_size={self.min_face_size:g}" if self.min_face_size else "")
            + (f", tile_size={self.tile_size}, tile_overlap={self.tile_overlap:g}" if self.tile_size else "")
            + ("" if self.landmark_voting else ", landmark_voting=False")
            + ("" if self.box_voting else ", box_voting=False")
            + ")"
        )

    # ------------------------------------------------------------------ detection

    def detect(self, image: np.ndarray | str | os.PathLike[str]) -> list[Face]:
        """Faces in one image, highest score first.

        Args:
            image: ``H x W x 3`` uint8 BGR array (any strides), or an image file path.

        Returns:
            :class:`~facelite.face.Face` objects in original-image pixels: boxes clipped to the
            image, landmarks not clipped (a landmark of a face cut by the border may lie outside).
        """
        boxes, scores, lmks = self.detect_arrays(image)
        t = time.perf_counter()
        faces = _to_faces(boxes, scores, lmks)
        self._add_postprocess(time.perf_counter() - t)
        return faces

    def detect_arrays(self, image: np.ndarray | str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`detect`, as arrays (cheaper when there are many detections).

        Returns:
            ``boxes`` float32 (K, 4) xyxy, ``scores`` float32 (K,), ``landmarks`` float32 (K, 5, 2)
            ``(x, y)``, all in original-image pixels, sorted by score (highest first).
        """
        img = as_bgr_image(image, self.max_image_pixels)
        if self.tile_size is not None and max(img.shape[:2]) > self.tile_size:
            return self._detect_tiled(img, self.tile_size)
        result, timings = self._detect_one(img)
        self.last_timings = _timings(*timings)
        return result

    def _detect_one(
        self, img: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[float, float, float]]:
        """One network pass over a validated image: its result and (preprocess, network,
        postprocess) seconds."""
        t0 = time.perf_counter()
        tensor, box = preprocess(img, self.spec, self.input_size)
        t1 = time.perf_counter()
        scores, deltas, lmk = self.backend.run(tensor)
        t2 = time.perf_counter()
        result = self._postprocess(scores[0], deltas[0], lmk[0], box)
        t3 = time.perf_counter()
        return result, (t1 - t0, t2 - t1, t3 - t2)

    def _detect_tiled(self, img: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The whole image and its ``tile``-pixel tiles, merged (see :mod:`facelite.tiling`);
        ``last_timings`` holds the sums over all passes."""
        h, w = img.shape[:2]
        regions = [(0, 0, w, h)] + [tuple(int(v) for v in r) for r in tile_grid(h, w, tile, self.tile_overlap)]
        passes: list[TilePass] = []
        total = np.zeros(3)
        for x0, y0, x1, y1 in regions:
            (b, s, pts), timings = self._detect_one(img[y0:y1, x0:x1])
            passes.append(TilePass((x0, y0, x1, y1), b, s, pts))
            total += timings
        t = time.perf_counter()
        # two network pixels of a tile, in image pixels
        margin = 2.0 * max(1.0, tile / self.input_size)
        limit = WHOLE_IMAGE_FACE * max(h, w) / self.input_size
        result = merge_tile_passes(passes, (h, w), self.nms_threshold, self.keep_top_k, margin, limit)
        total[2] += time.perf_counter() - t
        self.last_timings = _timings(*(float(v) for v in total))
        return result

    def detect_batch(
        self, images: Iterable[np.ndarray | str | os.PathLike[str]], batch_size: int = 8
    ) -> list[list[Face]]:
        """Faces in several images, running the network on up to ``batch_size`` images at once.

        Within a batch, the images whose network inputs have the same padded size run as one
        tensor; the others run in their own calls, never padded to a larger canvas, so every
        image gets what :meth:`detect` gives it. (Padding mixed sizes to one tensor cost more
        computation than it saved: 1.4x slower than one image at a time on 16 WIDER photos of
        various heights at input 640.) Paths are loaded one batch at a time. Returns one list
        per image, in order.
        """
        return [_to_faces(*r) for r in self.detect_batch_arrays(images, batch_size)]

    def detect_batch_arrays(
        self, images: Iterable[np.ndarray | str | os.PathLike[str]], batch_size: int = 8
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Like :meth:`detect_batch`, returning :meth:`detect_arrays`-style tuples."""
        batch_size = _check_count("batch_size", batch_size)
        if self.tile_size is not None:  # each image has its own tiles: one at a time
            tiled = []
            sums = _timings(0.0, 0.0, 0.0)
            for image in images:
                tiled.append(self.detect_arrays(image))
                for k in sums:
                    sums[k] += self.last_timings[k]
            self.last_timings = sums
            return tiled
        results: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        pre = net = post = 0.0
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal pre, net, post
            groups: dict[tuple[int, int], list[int]] = {}
            for i, im in enumerate(pending):
                size = letterbox_geometry(im.shape[0], im.shape[1], self.input_size, self.spec.pad_multiple)
                groups.setdefault(size.padded_size, []).append(i)
            done: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            for members in groups.values():
                t0 = time.perf_counter()
                tensor, boxes = preprocess_batch([pending[i] for i in members], self.spec, self.input_size)
                t1 = time.perf_counter()
                scores, deltas, lmk = self.backend.run(tensor)
                t2 = time.perf_counter()
                for j, (i, box) in enumerate(zip(members, boxes)):
                    done[i] = self._postprocess(scores[j], deltas[j], lmk[j], box)
                t3 = time.perf_counter()
                pre, net, post = pre + t1 - t0, net + t2 - t1, post + t3 - t2
            results.extend(done[i] for i in range(len(pending)))
            pending.clear()

        for image in images:
            pending.append(as_bgr_image(image, self.max_image_pixels))
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
        self.last_timings = _timings(pre, net, post)
        return results

    # ------------------------------------------------------------------ internals

    def _postprocess(
        self, scores: np.ndarray, deltas: np.ndarray, lmk: np.ndarray, box: Letterbox
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's raw outputs (N,), (N, 4), (N, 10) -> boxes, scores, landmarks in original pixels."""
        spec = self.spec
        anchors = anchors_for(spec, *box.padded_size)
        if len(anchors) != len(scores):
            raise RuntimeError(
                f"the model returned {len(scores)} predictions for a {box.padded_size[0]}x{box.padded_size[1]} "
                f"input, but its spec implies {len(anchors)} anchors: the model file and its metadata disagree"
            )
        idx = np.flatnonzero(scores >= self.score_threshold)  # filter before decoding anything
        if len(idx) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, spec.num_landmarks, 2), np.float32)
        # rank the candidates (score, then anchor order), at most top_k of them; NMS decodes the
        # boxes of as many of them as the first keep_top_k kept boxes depend on
        idx = idx[top_k_indices(scores[idx], self.top_k)]

        def ranked_boxes(start: int, stop: int) -> np.ndarray:
            i = idx[start:stop]
            return decode_boxes(deltas[i], anchors[i], spec.variances)

        voting = self.landmark_voting or self.box_voting
        # voting needs every candidate's box: decode them once, for NMS and the vote
        ranked = decode_boxes(deltas[idx], anchors[idx], spec.variances) if voting else ranked_boxes
        keep = nms_ranked(ranked, self.nms_threshold, keep_top_k=self.keep_top_k, count=len(idx))
        candidates, idx = idx, idx[keep]
        s = scores[idx]
        b = ranked[keep] if voting else decode_boxes(deltas[idx], anchors[idx], spec.variances)
        pts = None
        if voting and len(candidates) > len(idx):
            values = [ranked] if self.box_voting else []
            if self.landmark_voting:
                ca = anchors[candidates]
                values.append(decode_landmarks(lmk[candidates], ca, spec.variances).reshape(len(ca), -1))
            voted = vote(ranked, scores[candidates], np.concatenate(values, axis=1), keep, self.nms_threshold)
            if self.box_voting:
                b, voted = voted[:, :4], voted[:, 4:]
            if self.landmark_voting:
                pts = voted.reshape(len(idx), -1, 2)
        if pts is None:  # the kept candidates' own landmarks
            pts = decode_landmarks(lmk[idx], anchors[idx], spec.variances)
        b = box.to_original(b)
        pts = box.to_original(pts)
        h, w = box.original_size
        b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
        side = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        valid = (side > 0) & (side >= self.min_face_size)
        if not valid.all():
            b, s, pts = b[valid], s[valid], pts[valid]
        return b, s.astype(np.float32, copy=False), pts

    def _add_postprocess(self, seconds: float) -> None:
        if self.last_timings:
            self.last_timings["postprocess_ms"] += seconds * 1000.0
            self.last_timings["total_ms"] += seconds * 1000.0


def _timings(pre: float, net: float, post: float) -> dict[str, float]:
    return {
        "preprocess_ms": pre * 1000.0,
        "network_ms": net * 1000.0,
        "postprocess_ms": post * 1000.0,
        "total_ms": (pre + net + post) * 1000.0,
    }


def _to_faces(boxes: np.ndarray, scores: np.ndarray, lmks: np.ndarray) -> list[Face]:
    return [
        Face(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), score=float(s), landmarks=p)
        for b, s, p in zip(boxes.tolist(), scores.tolist(), lmks)
    ]
