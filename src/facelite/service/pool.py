"""A bounded pool of detectors that runs inference off the event loop.

``workers`` threads each own their detectors (one per model and precision asked for, made on
first use, at most :data:`MAX_MODELS_PER_WORKER`), so a detector runs one image at a time and
its ``last_timings`` belong to that image. At most ``workers + queue`` images are admitted at
once; one more raises :class:`PoolBusy` at once (the service answers 503) instead of queueing
without bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from ..detector import FaceDetector
from ..face import Face

__all__ = ["DetectorPool", "DetectRequest", "PoolBusy"]

MAX_MODELS_PER_WORKER = 4
"""Detectors (model x precision) a worker keeps; the least recently used one is dropped."""

T = TypeVar("T")


class PoolBusy(RuntimeError):
    """Every detector is busy and the queue is full."""


@dataclass(frozen=True)
class DetectRequest:
    """How one image is to be detected.

    Attributes:
        model: shipped model name, or the name of the server's own model.
        precision: ``float32`` / ``int8``.
        input_size: longer side of the network input, pixels.
        score_threshold: faces with a lower score are dropped, in [0, 1].
    """

    model: str
    precision: str
    input_size: int
    score_threshold: float


class DetectorPool:
    """``workers`` detector threads behind an admission limit.

    Args:
        make_detector: ``(model, precision) -> FaceDetector``; called in a worker thread the
            first time that worker needs that model (the server's own detectors may be given
            with ``preload``).
        workers: images processed at once.
        queue: images admitted beyond ``workers`` (waiting for a thread).
        preload: one detector per worker for the default model, made up front, so the first
            requests do not pay for loading.
    """

    def __init__(self, make_detector: Callable[[str, str], FaceDetector], workers: int, queue: int,
                 preload: list[FaceDetector] | None = None) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers}, {queue}")
        self.make_detector = make_detector
        self.workers = workers
        self.queue = queue
        self.in_flight = 0
        self._preload = list(preload or [])
        self._local = threading.local()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facelite-detect")

    @property
    def capacity(self) -> int:
        """Images admitted at once (``workers + queue``)."""
        return self.workers + self.queue

    def detector(self, model: str, precision: str) -> FaceDetector:
        """This worker thread's detector for ``model``/``precision`` (call from a worker only)."""
        cache: OrderedDict[tuple[str, str], FaceDetector] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
            with self._lock:
                first = self._preload.pop() if self._preload else None
            if first is not None:
                cache[(first.name, first.precision or "float32")] = first
        key = (model, precision)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        detector = self.make_detector(model, precision)
        cache[key] = detector
        while len(cache) > MAX_MODELS_PER_WORKER:
            cache.popitem(last=False)
        return detector

    def detect(self, request: DetectRequest, image: np.ndarray) -> tuple[list[Face], dict[str, float], FaceDetector]:
        """Run one detection in the calling worker thread: ``(faces, timings_ms, detector)``.

        ``image`` is ``H x W x 3`` uint8 BGR; faces are in its pixels. The detector's input size
        and score threshold are set for this call only (the worker owns the detector).
        """
        d = self.detector(request.model, request.precision)
        saved = d.input_size, d.score_threshold
        d.input_size, d.score_threshold = request.input_size, request.score_threshold
        try:
            faces = d.detect(image)
            timings = {k: round(v, 3) for k, v in d.last_timings.items()}
        finally:
            d.input_size, d.score_threshold = saved
        return faces, timings, d

    async def run(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` in a worker thread; :class:`PoolBusy` at once when ``capacity`` images
        are already admitted. An image counts until its thread is done with it, even when the
        client has gone away meanwhile."""
        with self._lock:
            if self.in_flight >= self.capacity:
                raise PoolBusy(f"all {self.workers} detectors are busy and {self.queue} images are waiting")
            self.in_flight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: object) -> None:
        with self._lock:
            self.in_flight -= 1

    def close(self) -> None:
        """Wait for the images in progress, then stop the threads."""
        self._executor.shutdown(wait=True)
