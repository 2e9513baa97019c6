"""Keeping the image libraries' own messages off standard error (facelite's messages stay).

Decoding a damaged file makes the libraries under OpenCV talk: OpenCV logs ``[ WARN:0@...]``
lines (its own, libtiff's and OpenJPEG's, routed through its logger), and libjpeg and libpng
print warnings such as ``Corrupt JPEG data: 3 extraneous bytes before marker 0xc0`` straight to
file descriptor 2, where no Python setting reaches them. facelite reports every bad file itself
in one line, so both are silenced around decoding:

- OpenCV's log level is set to silent while any decode is running (a counter, so concurrent
  decodes in several threads restore it once, when the last one ends).
- File descriptor 2 is pointed at ``/dev/null`` while any decode is running, **only when Python's
  ``sys.stderr`` does not write to descriptor 2 itself**, so that no Python message (a progress
  line or a warning from another thread) can be lost in that window. The ``facelite`` command
  line arranges that with :func:`separate_python_stderr` (``sys.stderr`` gets a duplicate of
  descriptor 2 for the run); a program using the library keeps the libraries' direct prints
  unless it does the same.

This module imports nothing heavy (OpenCV only when a decode runs), so the command line can use
it before a command is chosen.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["decoder_messages_silenced", "separate_python_stderr"]

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_saved_level: int | None = None


def _python_stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno() if sys.stderr is not None else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None  # a capture object (pytest) or a closed stream


@contextlib.contextmanager
def separate_python_stderr() -> Iterator[None]:
    """For the duration: ``sys.stderr`` writes to its own duplicate of descriptor 2 (same file,
    same encoding and error handler, line-buffered), so that descriptor 2 itself can be silenced
    around C-library calls without touching Python's messages. Does nothing when ``sys.stderr``
    is not descriptor 2 (already separate, redirected in Python, or captured)."""
    if _python_stderr_fd() != 2:
        yield
        return
    original = sys.stderr
    original.flush()
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    stream = open(fd, "w", buffering=1, encoding=original.encoding, errors=original.errors, closefd=True)
    sys.stderr = stream
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
        sys.stderr = original
        with contextlib.suppress(OSError):
            stream.close()


def _enter() -> None:
    global _depth, _saved_fd, _saved_level
    with _lock:
        if _depth == 0:
            try:
                import cv2

                _saved_level = cv2.getLogLevel()
                cv2.setLogLevel(0)  # LOG_LEVEL_SILENT
            except (ImportError, AttributeError):  # pragma: no cover - OpenCV without the logging API
                _saved_level = None
            fd = _python_stderr_fd()
            if fd is not None and fd != 2:
                try:
                    _saved_fd = os.dup(2)
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, 2)
                    os.close(devnull)
                except OSError:  # pragma: no cover - no descriptor 2 to save
                    _saved_fd = None
        _depth += 1


def _exit() -> None:
    global _depth, _saved_fd, _saved_level
    with _lock:
        _depth -= 1
        if _depth == 0:
            if _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
            if _saved_level is not None:
                import cv2

                cv2.setLogLevel(_saved_level)
                _saved_level = None


@contextlib.contextmanager
def decoder_messages_silenced() -> Iterator[None]:
    """Silence OpenCV's logger, and descriptor 2 where that is safe (see the module doc), while
    the block runs; safe to use from several threads at once."""
    _enter()
    try:
        yield
    finally:
        _exit()
