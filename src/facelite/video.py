"""Video: read frames in a background thread, detect (and track) faces, write annotated video.

Example::

    import facelite
    from facelite.tracking import IoUTracker
    from facelite.video import VideoProcessor

    detector = facelite.FaceDetector(input_size=320, threads=1)
    with VideoProcessor(detector, "clip.mp4", tracker=IoUTracker()) as frames:
        for vf in frames:                     # VideoFrame: index, time, image, faces, detected
            print(vf.index, [(f.track_id, f.box) for f in vf.faces])

A source is a video file (anything OpenCV's FFmpeg backend reads), a folder of images or a
pattern (``frames/*.jpg``, ``frames/%05d.png``) read in name order, a camera index (``0``) or
device (``/dev/video0``), or a stream URL. Frames are captured in a background thread into a
bounded queue, so decoding (or a slow disk or camera) overlaps with detection. For files and
image sequences every frame is processed; for cameras and streams (live sources) the queue
keeps the newest frames and drops the oldest when detection falls behind, so the output stays
current.
"""

from __future__ import annotations

import glob
import math
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .face import Face
from .fileio import opencv_can_open
from .imageio import IMAGE_EXTENSIONS, load_image

__all__ = [
    "DEFAULT_FPS",
    "FpsMeter",
    "Frame",
    "FrameReader",
    "FrameSource",
    "SourceInfo",
    "VideoFrame",
    "VideoProcessor",
    "VideoSourceError",
    "VideoWriter",
    "open_source",
]

DEFAULT_FPS = 30.0
"""Frame rate assumed for image sequences, and for files that do not state one."""

WRITER_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
"""Output file extension -> FourCC used by :class:`VideoWriter`."""

SOURCE_HELP = (
    "a video file, a folder of images, a pattern such as frames/*.jpg or frames/%05d.png, "
    "a camera index such as 0, a device such as /dev/video0, or a stream URL"
)


class VideoSourceError(ValueError):
    """A video source or output cannot be opened or read; the message says why."""


class _QuietOpenCV:
    """Silence OpenCV's own log lines while probing a source (facelite reports the failure itself)."""

    def __enter__(self) -> None:
        logging = getattr(getattr(cv2, "utils", None), "logging", None)
        self._logging = logging
        if logging is not None:
            self._level = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)

    def __exit__(self, *exc: object) -> None:
        if self._logging is not None:
            self._logging.setLogLevel(self._level)


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceInfo:
    """What a source is.

    Attributes:
        description: how it is named in messages (``camera 0``, a path, ...).
        kind: ``"file"``, ``"images"``, ``"camera"`` or ``"stream"``.
        live: frames arrive in real time (camera, stream): late frames may be dropped.
        fps: the stated frame rate (``None`` if unknown).
        frame_count: number of frames if known in advance.
        width, height: frame size if known in advance (``0`` otherwise).
    """

    description: str
    kind: str
    live: bool
    fps: float | None
    frame_count: int | None
    width: int = 0
    height: int = 0


class FrameSource:
    """Base class: ``read()`` returns ``(image or exception, time in seconds)`` or ``None`` at the end."""

    info: SourceInfo

    def read(self) -> tuple[np.ndarray | Exception, float] | None:  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> None:
        pass


class _CaptureSource(FrameSource):
    def __init__(self, cap: cv2.VideoCapture, info: SourceInfo) -> None:
        self.cap = cap
        self.info = info
        self._index = 0
        self._t0: float | None = None

    def read(self) -> tuple[np.ndarray | Exception, float] | None:
        ok, image = self.cap.read()
        if not ok or image is None:
            return None
        if self.info.live:
            now = time.perf_counter()
            if self._t0 is None:
                self._t0 = now
            t = now - self._t0
        else:
            t = self._index / (self.info.fps or DEFAULT_FPS)
        self._index += 1
        if image.ndim == 2 or image.shape[2] != 3 or image.dtype != np.uint8:
            from .imageio import to_bgr

            image = to_bgr(image)
        return image, t

    def release(self) -> None:
        self.cap.release()


class _ImageSequenceSource(FrameSource):
    def __init__(self, paths: Sequence[Path], info: SourceInfo, max_pixels: int | None) -> None:
        self.paths = list(paths)
        self.info = info
        self.max_pixels = max_pixels
        self._index = 0

    def read(self) -> tuple[np.ndarray | Exception, float] | None:
        if self._index >= len(self.paths):
            return None
        path = self.paths[self._index]
        t = self._index / (self.info.fps or DEFAULT_FPS)
        self._index += 1
        try:
            return load_image(path, max_pixels=self.max_pixels), t
        except ValueError as exc:  # one bad frame: reported by the consumer, the rest go on
            return exc, t


_PRINTF = re.compile(r"%0?(\d*)d")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _sequence(paths: list[Path], description: str, fps: float | None, max_pixels: int | None) -> FrameSource:
    info = SourceInfo(description, "images", False, fps or DEFAULT_FPS, len(paths))
    return _ImageSequenceSource(paths, info, max_pixels)


def _open_capture(target: str | int, description: str, kind: str, fps: float | None) -> FrameSource:
    if isinstance(target, str) and not opencv_can_open(target):
        raise VideoSourceError(
            f"{description}: OpenCV cannot open a file whose name is not valid UTF-8; rename it (or link to it)"
        )
    with _QuietOpenCV():
        cap = cv2.VideoCapture(target)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        if kind == "camera":
            raise VideoSourceError(
                f"cannot open {description}: no such camera, it is in use by another program, or "
                "this OpenCV build cannot read it"
            )
        if kind == "stream":
            raise VideoSourceError(f"cannot open the stream {description}")
        raise VideoSourceError(f"{description}: not a video OpenCV can read (unknown or unsupported format)")
    live = kind in ("camera", "stream")
    stated = cap.get(cv2.CAP_PROP_FPS)
    stated_fps = float(stated) if stated and math.isfinite(stated) and 0 < stated < 1000 else None
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    info = SourceInfo(
        description=description,
        kind=kind,
        live=live,
        fps=fps or stated_fps,
        frame_count=count if count > 0 and not live else None,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
    )
    return _CaptureSource(cap, info)


def open_source(
    source: str | int | os.PathLike[str], *, fps: float | None = None, max_pixels: int | None = None
) -> FrameSource:
    """Open a video source (see the module docstring for what a source can be).

    Args:
        source: path, folder, pattern, camera index (int or a string of digits), device or URL.
        fps: frame rate to assume (overrides the file's; for image sequences the default is
            :data:`DEFAULT_FPS`). Frame times are ``index / fps`` except for live sources,
            whose frames are timed by the clock.
        max_pixels: size limit for the images of an image sequence (see ``load_image``).

    Raises:
        VideoSourceError: the source does not exist, has no images, or cannot be opened.
    """
    if fps is not None and not (isinstance(fps, (int, float)) and fps > 0):
        raise VideoSourceError(f"fps must be a number > 0, got {fps!r}")
    if isinstance(source, bool):
        raise VideoSourceError(f"not a video source: {source!r}; expected {SOURCE_HELP}")
    if isinstance(source, (int, np.integer)):
        return _open_capture(int(source), f"camera {int(source)}", "camera", fps)
    text = os.fspath(source)
    if not text.strip():
        raise VideoSourceError(f"empty video source; expected {SOURCE_HELP}")
    if text.isdigit():
        return _open_capture(int(text), f"camera {int(text)}", "camera", fps)
    if "://" in text:
        return _open_capture(text, text, "stream", fps)
    path = Path(text)
    if text.startswith("/dev/video"):
        if not path.exists():
            raise VideoSourceError(f"no such camera device: {text}")
        return _open_capture(text, text, "camera", fps)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise VideoSourceError(
                f"{path}: folder has no images ({' '.join(IMAGE_EXTENSIONS)}); expected {SOURCE_HELP}"
            )
        return _sequence(files, str(path), fps, max_pixels)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.suffix.lower() != ".gif":
            return _sequence([path], str(path), fps, max_pixels)  # a single image: a one-frame video
        if path.stat().st_size == 0:
            raise VideoSourceError(f"{path}: empty file (0 bytes)")
        return _open_capture(str(path), str(path), "file", fps)
    if _PRINTF.search(text) or glob.has_magic(text):
        if _PRINTF.search(text):  # frames/%05d.png: files whose numbers fill the slots, in numeric order
            parts = _PRINTF.split(text)  # literal, width, literal, width, ..., literal
            pattern = "".join(glob.escape(p) if i % 2 == 0 else "*" for i, p in enumerate(parts))
            regex = re.compile(
                "".join(re.escape(p) if i % 2 == 0 else (rf"(\d{{{p}}})" if p else r"(\d+)") for i, p in enumerate(parts))
            )
            numbered = []
            for name in glob.glob(pattern):
                m = regex.fullmatch(name)
                if m and Path(name).is_file():
                    numbered.append((tuple(int(g) for g in m.groups()), Path(name)))
            matches = [p for _, p in sorted(numbered)]
        else:
            matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
        if not matches:
            raise VideoSourceError(f"no files match {text}")
        return _sequence(matches, text, fps, max_pixels)
    raise VideoSourceError(f"{text}: no such file or folder; expected {SOURCE_HELP}")


# --------------------------------------------------------------------------- reader


@dataclass
class Frame:
    """One captured frame: its position in the source, its time (s) and the image (or the error reading it)."""

    index: int
    time: float
    image: np.ndarray | Exception


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class FrameReader:
    """Reads a :class:`FrameSource` in a background thread into a bounded queue.

    Iterate over it to get :class:`Frame` objects in order. With ``drop=True`` (live sources)
    a full queue drops its oldest frame for the new one instead of making capture wait.

    Attributes:
        frames_read: frames taken from the source so far.
        dropped: frames dropped because the consumer fell behind (``drop=True`` only).
        wait_s: seconds the consumer spent waiting for frames (capture-bound time).
    """

    def __init__(
        self, source: FrameSource, queue_size: int = 8, drop: bool = False, max_frames: int | None = None
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        self.source = source
        self.drop = drop
        self.max_frames = max_frames
        self.frames_read = 0
        self.dropped = 0
        self.wait_s = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facelite-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    break
                item = self.source.read()
                if item is None:
                    break
                image, t = item
                self._put(Frame(self.frames_read, t, image), droppable=self.drop)
                self.frames_read += 1
        except BaseException as exc:
            self._put(_Failure(exc), droppable=False)
        finally:
            self._put(_END, droppable=False)

    def _put(self, item: object, droppable: bool) -> None:
        if droppable:
            while not self._stop.is_set():
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        old = self._queue.get_nowait()
                    except queue.Empty:
                        continue
                    if isinstance(old, Frame):
                        self.dropped += 1
                    else:  # never drop a marker: put it back and wait
                        self._queue.put(old)
            return
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Frame]:
        while True:
            t0 = time.perf_counter()
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                    break
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        item = _END
                        break
            self.wait_s += time.perf_counter() - t0
            if item is _END:
                return
            if isinstance(item, _Failure):
                exc = item.exc
                if isinstance(exc, Exception) and not isinstance(exc, VideoSourceError):
                    raise VideoSourceError(f"reading {self.source.info.description} failed: {exc}") from exc
                raise exc
            yield item  # type: ignore[misc]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and release the source (waits up to ``timeout`` s for a read in progress)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.source.release()


# --------------------------------------------------------------------------- writer


class VideoWriter:
    """Writes frames to a video file from a background thread (a slow disk does not stall the caller).

    The file is opened at the first frame (its size becomes the video's size; later frames of
    another size are resized). The codec follows the extension: ``.mp4``/``.m4v``/``.mov``
    MPEG-4 part 2 (``mp4v``), ``.avi`` Motion JPEG, ``.mkv`` Xvid; ``fourcc`` overrides it.
    A file name OpenCV cannot take (not valid UTF-8) is written under a temporary name and
    renamed to ``path`` when the writer is closed.

    Raises:
        VideoSourceError: unsupported extension, or OpenCV cannot open a writer for the file.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, fourcc: str | None = None, queue_size: int = 32
    ) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if fourcc is None:
            if ext not in WRITER_CODECS:
                raise VideoSourceError(
                    f"{self.path}: unsupported video extension {ext or '(none)'!r}; use one of "
                    + ", ".join(WRITER_CODECS)
                )
            fourcc = WRITER_CODECS[ext]
        if len(fourcc) != 4:
            raise VideoSourceError(f"fourcc must be 4 characters, got {fourcc!r}")
        if not fps > 0:
            raise VideoSourceError(f"fps must be > 0, got {fps!r}")
        self.fourcc = fourcc
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._temp: Path | None = None  # where OpenCV writes when it cannot take self.path

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        target = self.path
        if not opencv_can_open(target):
            import tempfile

            folder = self.path.parent if opencv_can_open(self.path.parent.absolute()) else Path(tempfile.gettempdir())
            target = self._temp = folder.absolute() / f".facelite-video-{os.getpid()}-{id(self):x}{self.path.suffix}"
        with _QuietOpenCV():
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
        if not writer.isOpened():
            writer.release()
            raise VideoSourceError(f"cannot write {self.path}: OpenCV could not open a {self.fourcc} video writer for it")
        self._writer = writer
        self.size = (width, height)
        self._thread = threading.Thread(target=self._run, name="facelite-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._writer is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._writer.write(item)
                self.frames_written += 1
            except BaseException as exc:
                self._error = exc
                return

    def write(self, image: np.ndarray) -> None:
        """Queue one ``H x W x 3`` uint8 BGR frame for writing."""
        if self._error is not None:
            raise VideoSourceError(f"writing {self.path} failed: {self._error}")
        if self._writer is None:
            self._open(image.shape[1], image.shape[0])
        assert self.size is not None
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        while True:
            try:
                self._queue.put(image, timeout=0.1)
                return
            except queue.Full:
                if self._thread is None or not self._thread.is_alive():
                    raise VideoSourceError(f"writing {self.path} failed: {self._error}") from None

    def close(self) -> None:
        """Write what is queued and finish the file."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self._temp is not None:
                import shutil

                shutil.move(self._temp, self.path)  # a rename within one file system
                self._temp = None
        if self._error is not None:
            raise VideoSourceError(f"writing {self.path} failed: {self._error}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- processing


class FpsMeter:
    """Frames per second over the last ``window`` seconds (a live rate, unlike the overall mean)."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > self.window:
            self._times.popleft()
        return self.fps

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


@dataclass
class VideoFrame:
    """A processed frame.

    Attributes:
        index: position in the source (frames dropped from a live source leave gaps).
        time: seconds from the start of the source.
        image: the frame, ``H x W x 3`` uint8 BGR.
        faces: the detections (:class:`~facelite.tracking.TrackedFace` with a tracker); on
            frames that were not run through the detector (``every > 1``), those of the last
            frame that was.
        detected: whether the detector ran on this frame.
        timings: the detector's ``last_timings`` for this frame (``None`` if not detected).
    """

    index: int
    time: float
    image: np.ndarray
    faces: list[Face] = field(default_factory=list)
    detected: bool = True
    timings: dict[str, float] | None = None


class VideoProcessor:
    """Iterate over a source's frames with their faces, capture running in a background thread.

    Args:
        detector: a :class:`~facelite.FaceDetector`.
        source: anything :func:`open_source` accepts, or an opened :class:`FrameSource`.
        every: run the detector on every ``every``-th frame; the frames between reuse the last
            result (with a tracker, its smoothed tracks).
        tracker: e.g. :class:`~facelite.tracking.IoUTracker`; ``None``: raw detections.
        fps: frame rate to assume (see :func:`open_source`).
        max_frames: stop after this many frames.
        queue_size: capture queue length.
        drop: drop the oldest queued frames when detection falls behind; default: only for
            live sources (cameras, streams).
        on_error: called with ``(index, exception)`` for a frame that cannot be read (an
            unreadable image in a sequence); that frame is skipped. ``None``: raise.

    Attributes:
        info: the source's :class:`SourceInfo`; ``reader``: its :class:`FrameReader` (statistics).
    """

    def __init__(
        self,
        detector,
        source: str | int | os.PathLike[str] | FrameSource,
        *,
        every: int = 1,
        tracker=None,
        fps: float | None = None,
        max_frames: int | None = None,
        queue_size: int = 8,
        drop: bool | None = None,
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
            raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")
        self.detector = detector
        self.every = every
        self.tracker = tracker
        self.on_error = on_error
        self.source = (
            source
            if isinstance(source, FrameSource)
            else open_source(source, fps=fps, max_pixels=getattr(detector, "max_image_pixels", None))
        )
        self.info = self.source.info
        self.reader = FrameReader(
            self.source, queue_size=queue_size, drop=self.info.live if drop is None else drop, max_frames=max_frames
        )
        self.frames = 0
        self.detections = 0
        self.detector_ms = 0.0

    def __iter__(self) -> Iterator[VideoFrame]:
        last: list[Face] = []
        for frame in self.reader:
            if isinstance(frame.image, Exception):
                if self.on_error is None:
                    raise VideoSourceError(str(frame.image))
                self.on_error(frame.index, frame.image)
                continue
            detected = self.frames % self.every == 0
            timings = None
            if detected:
                faces = self.detector.detect(frame.image)
                timings = dict(self.detector.last_timings)
                self.detector_ms += timings.get("total_ms", 0.0)
                self.detections += 1
                last = self.tracker.update(faces, frame.time) if self.tracker is not None else faces
            self.frames += 1
            yield VideoFrame(frame.index, frame.time, frame.image, list(last), detected, timings)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> VideoProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
