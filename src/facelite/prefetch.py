"""Run a function on items in worker threads ahead of their use, yielding results in order.

Used to read and decode images in parallel while the detector works on the previous ones
(file reading and OpenCV's decoders release the GIL). At most ``ahead`` results are held
in memory at a time, so it streams through collections of any size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["prefetch_map"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int = 2, ahead: int | None = None
) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, fn(item))`` for each item, in order; an exception ``fn`` raised takes the result's place.

    Args:
        fn: the work (for example loading an image).
        items: consumed lazily.
        workers: worker threads; ``0`` runs ``fn`` in the caller's thread when the item is reached.
        ahead: at most this many items are submitted before the caller takes them
            (default ``2 * workers``).

    Exceptions from ``fn`` (``Exception`` subclasses) are returned, not raised, so the caller
    can report the item and go on. Stopping the iteration early cancels the queued work.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers!r}")
    if workers == 0:
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:
                yield item, exc
        return
    ahead = max(1, ahead if ahead is not None else 2 * workers)
    it = iter(items)
    pending: deque[tuple[T, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facelite-prefetch")
    try:
        for item in it:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= ahead:
                break
        while pending:
            item, fut = pending.popleft()
            for nxt in it:  # keep the pipeline full
                pending.append((nxt, pool.submit(fn, nxt)))
                break
            exc = fut.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc
            yield item, (exc if exc is not None else fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
