"""Writing output files safely: images by bytes (any file name) and text atomically where that is possible.

Two hazards this module removes:

- **File names OpenCV cannot take.** OpenCV receives file names as UTF-8 C strings; a name
  that is not valid UTF-8 (on Linux any byte string is a valid name, and Python hands such
  a name over as a ``str`` with surrogate escapes) crashes ``cv2.imwrite`` / ``cv2.imread``
  with a segmentation fault. Images are therefore encoded in memory (``cv2.imencode``) and
  written by Python (:func:`write_image`); code that must hand a path to OpenCV (video files)
  checks it with :func:`opencv_can_open`.
- **Replacing what FILE is.** Writing ``FILE.tmp`` and renaming it over ``FILE`` (so that a
  crash never leaves half a file) would turn a symlink, a named pipe or a device given as
  ``FILE`` into a regular file. :func:`write_atomic` renames only over regular files (or
  paths that do not exist yet); a symlink is followed and its target replaced atomically
  (the link stays a link, as with most tools that write through a symlink); a pipe, a
  device or ``/dev/stdout`` is opened and written through.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["encode_image", "opencv_can_open", "write_atomic", "write_image"]


def opencv_can_open(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` can be handed to OpenCV as a file name: its text encodes as UTF-8
    (names with bytes that are not UTF-8 crash OpenCV)."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_image(image: np.ndarray, ext: str, params: Sequence[int] = ()) -> bytes:
    """``image`` (``H x W x 3`` uint8 BGR, or anything ``cv2.imencode`` takes) encoded in the format
    of the file extension ``ext`` (``".png"``, ``".jpg"``, ...).

    Raises:
        ValueError: OpenCV has no encoder for the extension, or encoding failed.
    """
    import cv2

    try:
        ok, buf = cv2.imencode(ext, image, list(params))
    except cv2.error:
        ok, buf = False, None
    if not ok or buf is None:
        raise ValueError(f"cannot encode an image as {ext or '(no extension)'!r}")
    return buf.tobytes()


def write_image(path: str | os.PathLike[str], image: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Encode ``image`` in the format of the file's extension (:func:`encode_image`) and write it
    to ``path``, for any file name.

    Raises:
        ValueError: OpenCV has no encoder for the extension, or encoding failed.
        OSError: the file could not be written.
    """
    target = Path(path)
    try:
        data = encode_image(image, target.suffix.lower(), params)
    except ValueError as exc:
        raise ValueError(f"{target}: {exc}") from None
    with open(target, "wb") as f:
        f.write(data)
    return target


def write_atomic(path: str | os.PathLike[str], data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new contents.

    - A regular file, or a path that does not exist yet: written to a temporary file next to
      it and renamed into place (an existing file's permission bits are kept).
    - A symlink: the same for the file it points to (the link itself stays).
    - Anything else (a named pipe, a device, ``/dev/stdout`` also when it is redirected to a
      file, anything under ``/dev/`` or ``/proc/``): opened and written through, since renaming
      over it would replace it with a regular file (or detach a shell's redirection).

    Returns the path written (``path`` itself, as given).
    """
    target = Path(path)
    blob = data.encode(encoding) if isinstance(data, str) else bytes(data)
    real = Path(os.path.realpath(target))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    # /dev/stdout, /dev/fd/N, /proc/self/fd/N name an open descriptor: even when it is a regular
    # file (a shell redirection), write into it rather than rename a new file over it
    special = os.path.abspath(target).startswith(("/dev/", "/proc/"))
    if st is not None and (special or not stat.S_ISREG(st.st_mode)):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(target))
        with open(target, "wb") as f:  # a pipe or a device: write through
            f.write(blob)
        return target
    tmp = real.with_name(f".{real.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
