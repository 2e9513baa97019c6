"""Face detection over a Ray Data dataset: many cores, many machines (the ``ray`` extra).

``pip install 'facelite[ray]'`` adds Ray Data; the core package never imports it. Ray
schedules the work; facelite only supplies the per-actor function::

    import ray
    from facelite.distributed import detect_dataset

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    faces = detect_dataset(ds, concurrency=8, threads=1, model="mobilenetv2-1.0", precision="int8")
    faces.write_parquet("s3://bucket/faces/")

Each actor builds one :class:`~facelite.detector.FaceDetector` when it starts (the model is loaded
once per actor, from the facelite installed on that node: shipped models are verified against
their SHA-256, nothing is downloaded) and runs it on every image of the batches it is given.

Input rows need a ``path`` column (a string) and may have ``bytes`` (the encoded file, as
``ray.data.read_binary_files(..., include_paths=True)`` gives it: decoded in the actor with
:func:`facelite.imageio.decode_image`, EXIF orientation applied, exactly as ``facelite detect``
reads files) or ``image`` (an already decoded ``H x W x 3`` uint8 **RGB** array, as
``ray.data.read_images(..., include_paths=True)`` gives it; its decoder is PIL, whose pixels may
differ slightly from OpenCV's). With neither, the actor reads ``path`` itself: a URL (``s3://``,
``gs://``, ``hdfs://``, ``file://``) through ``pyarrow.fs``, a local path from its node's file
system (relative to ``base_dir``). A dataset of paths only has no read tasks; with
``read_binary_files``, leave the read tasks a CPU (``concurrency x threads`` below the cluster's
CPU count), or they wait for one forever.

Output columns (:func:`detect_dataset`): the input columns but ``bytes``/``image``, plus

- ``boxes``: float32 ``(K, 4)`` ``(x1, y1, x2, y2)`` in original-image pixels (continuous
  coordinates, origin at the top-left corner of the top-left pixel), clipped to the image;
- ``scores``: float32 ``(K,)``, highest first; ``landmarks``: float32 ``(K, 5, 2)`` ``(x, y)``:
  left eye, right eye, nose, left and right mouth corner (left/right as seen in the image);
- ``width``, ``height``: the image's size in pixels (0 when it could not be read);
- ``model``, ``precision``, ``checksum``: the model name, ``float32``/``int8`` and the model file's
  SHA-256 (hex);
- ``error``: ``""``, or why the image could not be read (then ``K = 0``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .detector import FaceDetector

__all__ = ["RAY_INSTALL", "FaceDetectorUDF", "detect_dataset", "require_ray"]

RAY_INSTALL = "pip install 'facelite[ray]'"
"""How to get Ray Data (the ``ray`` extra)."""

INPUT_COLUMNS = ("bytes", "image")
"""Input columns that hold the image itself; they are not passed on to the output."""


def require_ray() -> Any:
    """``ray`` with Ray Data importable, else an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # pandas and pyarrow: the data extra of Ray
    except ImportError as exc:
        raise ImportError(f"Ray Data is not installed: {RAY_INSTALL}") from exc
    return ray


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``s3://...``, ``gs://...``, ``file:///...``) rather than a local path."""
    return "://" in path


def _filesystem(url: str, cache: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(pyarrow file system, path in it)`` of a URL; one file system per scheme and host in ``cache``."""
    from urllib.parse import urlsplit

    import pyarrow.fs as pafs

    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    fs = cache.get(key) if cache is not None else None
    if fs is None:
        fs, path = pafs.FileSystem.from_uri(url)
        if cache is not None:
            cache[key] = fs
        return fs, path
    # as from_uri gives it: the host is part of the path for object stores (bucket/key), not for files
    return fs, parts.path if fs.type_name in ("local", "hdfs") else parts.netloc + parts.path


def _url_of(url: str, fs_path: str) -> str:
    """The URL of ``fs_path``, a path in the file system of ``url``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.netloc and (fs_path == parts.netloc or fs_path.startswith(parts.netloc + "/")):
        return f"{parts.scheme}://{fs_path}"  # s3://bucket/key: the path holds the bucket
    return f"{parts.scheme}://{parts.netloc}{fs_path}"  # file:///abs/path, hdfs://host:port/path


def read_url(url: str, cache: dict[str, Any] | None = None) -> bytes:
    """The bytes of the file at ``url`` (any URL ``pyarrow.fs.FileSystem.from_uri`` opens: ``s3://``,
    ``gs://``, ``hdfs://``, ``file://``); raises :class:`facelite.imageio.ImageLoadError` (a
    ValueError) as :func:`facelite.load_image` does for a local file."""
    import pyarrow.fs as pafs

    from .imageio import ImageLoadError

    try:
        fs, path = _filesystem(url, cache)
        kind = fs.get_file_info(path).type
        if kind not in (pafs.FileType.NotFound, pafs.FileType.Directory):
            with fs.open_input_stream(path) as f:
                return f.read()
    except (OSError, ValueError) as exc:  # pyarrow's I/O errors are OSErrors, a malformed URL a ValueError
        raise ImageLoadError(f"{url}: cannot read: {exc}") from None
    if kind == pafs.FileType.NotFound:
        raise ImageLoadError(f"{url}: no such file")
    raise ImageLoadError(f"{url}: is a directory, not an image file")


def list_url(url: str, extensions: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(file URL, name relative to url)`` of the files under the folder ``url`` whose names end
    with one of ``extensions`` (lower case), sorted by path; ``[(url, its file name)]`` when ``url``
    names a file.

    Raises:
        FileNotFoundError: nothing at ``url``.
    """
    import pyarrow.fs as pafs

    fs, root = _filesystem(url)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{url}: no such file or folder")
    if info.type == pafs.FileType.File:
        return [(url, root.rsplit("/", 1)[-1])]
    base = root.rstrip("/") + "/"
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = sorted(i.path for i in found if i.type == pafs.FileType.File and i.path.lower().endswith(extensions))
    return [(_url_of(url, f), f[len(base):] if f.startswith(base) else f.rsplit("/", 1)[-1]) for f in files]


def _column(values: list[Any]) -> np.ndarray:
    """One output column: numbers as a NumPy array of their own dtype; strings, bytes and arrays
    (possibly of different shapes) as an object array (a fixed-width ``S`` dtype would drop
    trailing zero bytes)."""
    if values and all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in values):
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


class FaceDetectorUDF:
    """The function class for ``Dataset.map_batches`` (``batch_format="numpy"``): one detector
    per actor, built when the actor starts; each call runs it on every row of a batch.

    Args:
        detector: a :class:`FaceDetector` to use (it is pickled to each actor and loads its model
            there once, checksum verified), or ``None`` to build one from ``detector_options``.
        keep_inputs: keep the ``bytes``/``image`` input columns in the output.
        base_dir: the folder relative local paths are read from (an actor's working directory is
            Ray's, not the driver's); ``None``: the actor's working directory.
        detector_options: ``FaceDetector`` arguments (``model``, ``precision``, ``input_size``,
            ``threads``, ...) when ``detector`` is None.
    """

    def __init__(self, detector: FaceDetector | None = None, keep_inputs: bool = False,
                 base_dir: str | None = None, **detector_options: Any) -> None:
        self.detector = self._load_detector(detector, detector_options)
        self.keep_inputs = keep_inputs
        self.base_dir = base_dir
        self._filesystems: dict[str, Any] = {}

    def _load_detector(self, detector: FaceDetector | None, options: dict[str, Any]) -> FaceDetector:
        """Called once, by the constructor."""
        from .detector import FaceDetector

        return detector if detector is not None else FaceDetector(**options)

    # ------------------------------------------------------------------ per row

    def read(self, path: str, data: bytes | None, image: np.ndarray | None) -> np.ndarray:
        """The row's image as ``H x W x 3`` uint8 BGR; raises :class:`facelite.imageio.ImageLoadError`
        (a ValueError) with ``facelite detect``'s messages when it cannot be read."""
        from .imageio import ImageLoadError, decode_image, load_image, to_bgr

        if data is None and image is None and is_url(path):
            data = read_url(path, self._filesystems)
        if data is not None:
            return decode_image(bytes(data), max_pixels=self.detector.max_image_pixels, name=path)
        if image is not None:
            return to_bgr(np.asarray(image), order="RGB")
        if self.base_dir is None or os.path.isabs(path):
            return load_image(path, max_pixels=self.detector.max_image_pixels)
        where = str(Path(self.base_dir) / path)
        try:
            return load_image(where, max_pixels=self.detector.max_image_pixels)
        except ImageLoadError as exc:  # named as given, as a run in base_dir names it
            message = str(exc)
            if message.startswith(where + ": "):
                raise ImageLoadError(f"{Path(path)}: {message[len(where) + 2:]}") from None
            raise

    def result(self, path: str, image: np.ndarray) -> dict[str, Any]:
        """The output columns of one readable image."""
        boxes, scores, landmarks = self.detector.detect_arrays(image)
        info = self.detector.model_info
        return {"boxes": boxes, "scores": scores, "landmarks": landmarks,
                "width": int(image.shape[1]), "height": int(image.shape[0]),
                "model": self.detector.name, "precision": self.detector.precision or "",
                "checksum": info.sha256, "error": ""}

    def failure(self, path: str, message: str) -> dict[str, Any]:
        """The output columns of an image that could not be read."""
        info = self.detector.model_info
        return {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
                "landmarks": np.zeros((0, 5, 2), np.float32), "width": 0, "height": 0,
                "model": self.detector.name, "precision": self.detector.precision or "",
                "checksum": info.sha256, "error": message}

    # ------------------------------------------------------------------ per batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "path" not in batch:
            raise ValueError(f"the dataset needs a 'path' column (read_binary_files(..., include_paths=True)); "
                             f"it has {', '.join(batch) or 'none'}")
        paths = [str(p) for p in batch["path"]]
        data = batch.get("bytes")
        images = batch.get("image")
        rows = []
        for i, path in enumerate(paths):
            try:
                image = self.read(path, data[i] if data is not None else None,
                                  images[i] if images is not None else None)
            except ValueError as exc:  # unreadable: reported in the row, not raised
                rows.append(self.failure(path, str(exc)))
                continue
            rows.append(self.result(path, image))
        out = {k: v for k, v in batch.items() if self.keep_inputs or k not in INPUT_COLUMNS}
        for key in rows[0] if rows else ():
            out[key] = _column([r[key] for r in rows])
        return out


def map_detector(
    ds: Any,
    udf: type[FaceDetectorUDF],
    constructor_kwargs: dict[str, Any],
    concurrency: int,
    threads: int,
    batch_size: int,
) -> Any:
    """``ds.map_batches`` with ``udf`` on a pool of ``concurrency`` actors of ``threads`` CPUs each."""
    ray = require_ray()
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return ds.map_batches(
        udf,
        fn_constructor_kwargs=constructor_kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=threads,
    )


def detect_dataset(
    ds: Any,
    concurrency: int | None = None,
    threads: int = 1,
    batch_size: int = 8,
    detector: FaceDetector | None = None,
    keep_inputs: bool = False,
    **detector_options: Any,
) -> Any:
    """Add the faces of every row of a Ray dataset as columns (see the module doc).

    Args:
        ds: a ``ray.data.Dataset`` with a ``path`` column and ``bytes`` or ``image`` (or neither:
            then each actor reads ``path`` from its file system).
        concurrency: number of detector actors (default: the cluster's CPUs less one, for the read
            tasks, // ``threads``; 1 when Ray is not initialised yet).
        threads: ONNX Runtime threads per actor (each actor reserves that many CPUs).
        batch_size: rows per call of an actor.
        detector: a configured :class:`FaceDetector` to copy to the actors; else one is built
            in each actor from ``detector_options`` (``model``, ``precision``, ``input_size``, ...).
        keep_inputs: keep the ``bytes``/``image`` columns.

    Returns:
        A lazy ``ray.data.Dataset`` (nothing runs until it is consumed or written).
    """
    ray = require_ray()
    if detector is not None and detector_options:
        raise ValueError("give either detector= or detector options, not both")
    if detector is None:
        detector_options = {**detector_options, "threads": threads}
    if concurrency is None:  # one CPU left for Ray's read tasks
        concurrency = default_concurrency(threads, spare_cpus=1) if ray.is_initialized() else 1
    return map_detector(ds, FaceDetectorUDF, {"detector": detector, "keep_inputs": keep_inputs, **detector_options},
                        concurrency=concurrency, threads=threads, batch_size=batch_size)


def default_concurrency(threads: int, spare_cpus: int = 0) -> int:
    """Actors that fit the connected cluster: (its CPUs - ``spare_cpus``) // ``threads``, at least 1."""
    ray = require_ray()
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, (cpus - spare_cpus) // max(1, threads))


def faces_of(row: dict[str, Any]) -> Iterable[tuple[np.ndarray, float, np.ndarray]]:
    """``(box (4,), score, landmarks (5, 2))`` of each face of an output row of :func:`detect_dataset`."""
    boxes = np.asarray(row["boxes"], np.float32).reshape(-1, 4)
    scores = np.asarray(row["scores"], np.float32).reshape(-1)
    lmks = np.asarray(row["landmarks"], np.float32).reshape(-1, 5, 2)
    return zip(boxes, (float(s) for s in scores), lmks)

