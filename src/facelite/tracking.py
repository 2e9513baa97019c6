"""Temporal stability for video: an IoU tracker that keeps an id per face, and a One-Euro
filter that smooths boxes and landmarks.

Example::

    from facelite.tracking import IoUTracker

    tracker = IoUTracker()                       # smoothing on by default
    for t, frame in frames:                      # t: the frame's time in seconds
        for face in tracker.update(detector.detect(frame), t):
            print(face.track_id, face.box, face.landmarks)

Association is greedy on box IoU (highest first), which is enough at video frame rates where
a face moves a fraction of its size between frames. Each track smooths its 4 box coordinates
and 10 landmark coordinates with a :class:`OneEuroFilter` (Casiez, Roussel and Vogel, CHI
2012): a low-pass filter whose cutoff rises with the speed of the signal, so a still face is
held steady (detector jitter is removed) while a moving face is followed with little lag. The
speed is measured in face sizes per second, so the same parameters suit small and large faces.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .face import Face
from .nms import box_iou

__all__ = ["IoUTracker", "OneEuroFilter", "Track", "TrackedFace", "landmark_jitter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential filter with the given cutoff (Hz) at sample period dt (s)."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter on a vector signal (each element filtered independently).

    Args:
        min_cutoff: cutoff frequency in Hz when the signal is still; lower = steadier, more lag.
        beta: how fast the cutoff rises with speed; higher = less lag when moving, more jitter.
            The speed is ``|dx/dt| / scale`` (``scale`` is given per sample; for faces the face
            size in pixels, so the speed is in face sizes per second).
        d_cutoff: cutoff frequency in Hz of the filter on the derivative.

    Call it with each new sample and its time in seconds; it returns the filtered sample.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0) -> None:
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @property
    def value(self) -> np.ndarray | None:
        """The last filtered sample (``None`` before the first)."""
        return None if self._x is None else self._x.copy()

    def __call__(self, x: Sequence[float] | np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"sample shape changed from {self._x.shape} to {x.shape}")
        dt = float(t) - self._t
        if dt <= 0:  # a repeated (or out-of-order) timestamp: nothing new to learn from it
            return self._x.copy()
        dx = (x - self._x) / dt
        assert self._dx is not None
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / max(float(scale), 1e-9)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


@dataclass(frozen=True)
class TrackedFace(Face):
    """A :class:`~facelite.face.Face` with the id of the track it belongs to (stable across frames)."""

    track_id: int = 0

    def to_dict(self) -> dict:
        d = {"track_id": int(self.track_id)}
        d.update(super().to_dict())
        return d


class Track:
    """One face followed over frames (internal state of :class:`IoUTracker`)."""

    def __init__(self, track_id: int, face: Face, t: float, filt: OneEuroFilter | None) -> None:
        self.id = track_id
        self.hits = 1
        self.missed = 0
        self.filter = filt
        self.raw_box = np.asarray(face.box, dtype=np.float64)
        self.face = self._smooth(face, t)

    def _smooth(self, face: Face, t: float) -> TrackedFace:
        box = np.asarray(face.box, dtype=np.float64)
        pts = np.asarray(face.landmarks, dtype=np.float64).reshape(-1, 2)
        if self.filter is not None:
            size = math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1.0))
            v = self.filter(np.concatenate([box, pts.ravel()]), t, scale=size)
            box, pts = v[:4], v[4:].reshape(-1, 2)
        return TrackedFace(
            box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
            score=float(face.score),
            landmarks=pts.astype(np.float32),
            track_id=self.id,
        )

    def update(self, face: Face, t: float) -> TrackedFace:
        self.hits += 1
        self.missed = 0
        self.raw_box = np.asarray(face.box, dtype=np.float64)
        self.face = self._smooth(face, t)
        return self.face


class IoUTracker:
    """Keeps an id per face across frames by box overlap, and smooths each face.

    Args:
        iou_threshold: a detection continues a track when their boxes overlap at least this
            much (IoU with the track's last detected box); pairs are taken greedily, highest
            IoU first.
        max_missed: a track that finds no detection in this many consecutive updates is
            dropped (its id is never reused).
        min_hits: a track is reported only once it has been detected in this many updates
            (1 = report at once; 2 or 3 suppress one-frame false detections).
        smooth: filter boxes and landmarks with a :class:`OneEuroFilter` per track.
        min_cutoff, beta, d_cutoff: the filter's parameters (see :class:`OneEuroFilter`).
        fps: frame rate assumed when :meth:`update` is called without a time.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 15,
        min_hits: int = 1,
        smooth: bool = True,
        min_cutoff: float = 1.0,
        beta: float = 10.0,
        d_cutoff: float = 1.0,
        fps: float = 30.0,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if max_missed < 0 or min_hits < 1:
            raise ValueError(f"need max_missed >= 0 and min_hits >= 1, got {max_missed!r}, {min_hits!r}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.min_hits = int(min_hits)
        self.smooth = bool(smooth)
        self.filter_params = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        OneEuroFilter(**self.filter_params)  # validate now
        self.fps = float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up)."""
        self.tracks: list[Track] = []
        self._updates = 0
        if not hasattr(self, "_next_id"):
            self._next_id = 1

    @property
    def ids_issued(self) -> int:
        """How many track ids have been handed out so far."""
        return self._next_id - 1

    def current(self) -> list[TrackedFace]:
        """The faces of the tracks detected in the last update (as :meth:`update` returned them)."""
        return [tr.face for tr in self.tracks if tr.missed == 0 and tr.hits >= self.min_hits]

    def update(self, faces: Iterable[Face], t: float | None = None) -> list[TrackedFace]:
        """Feed one frame's detections; returns them as :class:`TrackedFace`, in the given order.

        Args:
            faces: the frame's detections (e.g. :meth:`FaceDetector.detect`).
            t: the frame's time in seconds (increasing); ``None``: ``update count / fps``.

        Returns:
            The smoothed faces of the tracks detected in this frame that have at least
            ``min_hits`` detections, in the order of ``faces``.
        """
        faces = list(faces)
        if t is None:
            t = self._updates / self.fps
        self._updates += 1
        assigned: list[Track | None] = [None] * len(faces)
        free = list(range(len(self.tracks)))
        if faces and self.tracks:
            iou = box_iou(
                np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4),
                np.array([tr.raw_box for tr in self.tracks], dtype=np.float64).reshape(-1, 4),
            )
            used_tracks: set[int] = set()
            # greedy, highest IoU first (ties: better detection, then older track)
            order = np.lexsort((np.tile(np.arange(len(self.tracks)), len(faces)),
                                np.repeat(np.arange(len(faces)), len(self.tracks)), -iou.ravel()))
            for flat in order:
                d, k = divmod(int(flat), len(self.tracks))
                if iou[d, k] < self.iou_threshold:
                    break
                if assigned[d] is not None or k in used_tracks:
                    continue
                assigned[d] = self.tracks[k]
                used_tracks.add(k)
            free = [k for k in range(len(self.tracks)) if k not in used_tracks]
        for k in free:
            self.tracks[k].missed += 1
        out: list[TrackedFace] = []
        new_tracks: list[Track] = []
        for d, face in enumerate(faces):
            tr = assigned[d]
            if tr is None:
                filt = OneEuroFilter(**self.filter_params) if self.smooth else None
                tr = Track(self._next_id, face, t, filt)
                self._next_id += 1
                new_tracks.append(tr)
            else:
                tr.update(face, t)
            if tr.hits >= self.min_hits:
                out.append(tr.face)
        self.tracks = [tr for tr in self.tracks if tr.missed <= self.max_missed] + new_tracks
        return out


def landmark_jitter(landmarks: Sequence[np.ndarray] | np.ndarray) -> float:
    """Root-mean-square frame-to-frame displacement of the landmarks, in pixels.

    Args:
        landmarks: one ``(5, 2)`` array per frame (one face followed over frames).

    Returns:
        ``sqrt(mean over frames t and points i of |p_i(t) - p_i(t-1)|^2)``; 0 for a face that
        does not move at all (and for fewer than 2 frames).
    """
    a = np.asarray(landmarks, dtype=np.float64)
    if len(a) < 2:
        return 0.0
    d = np.diff(a.reshape(len(a), -1, 2), axis=0)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=-1))))
