"""Landmark error of a detector on the 5-point face crops (``<shared>/data/landmarks5``).

Protocol (fixed, so that numbers are comparable between detectors and over time):

1. **Held-out crops**: a fixed 10 % of the crops, chosen by a hash of the crop's name
   (``sha1(name) % 10 == 0``, name = the path as written in ``landmarks.txt``, e.g.
   ``lfw_5590/Aaron_Eckhart_0001.jpg``). :func:`landmark_split` is the one definition; training
   uses it to exclude the same crops. Crops whose labels are known to be wrong
   (:func:`has_known_bad_labels`) are left out of the evaluation.
2. Each 80x80 crop is padded with 80 grey (127) pixels on every side (240x240), so the face
   looks like a face in a picture rather than a full-frame close-up.
3. The detector runs on the padded image (``facelite eval landmarks`` uses input size 320 and
   score threshold 0.5); the detection with the highest IoU with the **reference face box** is
   scored; no detection with IoU >= 0.3: a **miss**.
4. Errors, per crop: **NME** = mean point-to-point distance / inter-ocular distance (distance
   between the ground truth's two eye points); also the mean distance / sqrt(w*h) of the
   reference face box. **Failure**: NME > 10 %. The cumulative error distribution (CED) counts
   misses as failures at every threshold.

The reference face box. The crops are *not* tight around the face: an LFW face spans about
35 of the 80 pixels, a "Net" face about 50, so a correct detection has IoU of only ~0.2 with
the crop square (which would make nearly every LFW crop a miss). The default reference box
(``reference="landmarks"``) is therefore the WIDER-style face box implied by the ground-truth
points: with ``s = max(inter-ocular distance, eye-centre to mouth-centre distance)`` and ``c``
the midpoint of the eye centre and the mouth centre, the box is ``2.1 s`` wide, ``2.7 s`` high,
centred at ``c + (0, -0.17 s)`` (the median geometry of RetinaFace boxes on these crops; the
0.3 IoU threshold tolerates a factor 1.8 in size). ``reference="crop"`` uses the crop square
``(80, 80, 160, 160)`` instead.

Known label defect. All 2,350 crops named ``net_7876/_*`` (the rotated variants of Sun et al.'s
"Net" set) carry points about 28 px *above* the face in the 80x80 crop (RetinaFace's points
minus the labels: (0.0, +28.0) px median, 10-90 % range 26.8-29.1 px, same scale); the other
7,650 crops are consistent. They are excluded here (``exclude_known_bad=False`` keeps them).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageheader import DEFAULT_MAX_PIXELS
from ..paths import shared_dir
from ..progress import Progress

HELDOUT_MODULUS = 10
"""One crop in ``HELDOUT_MODULUS`` (by name hash) is held out: 10 %."""
PAD = 80
PAD_VALUE = 127
MIN_IOU = 0.3
KNOWN_BAD_PREFIXES: tuple[str, ...] = ("net_7876/_",)
"""Crops whose landmark labels are wrong (see the module docstring)."""
REFERENCE_BOX = (2.1, 2.7, -0.17)
"""Width and height of the reference face box, and its centre's vertical offset, in units of
``max(inter-ocular, eye-mouth)`` distance."""
FAILURE_THRESHOLD = 0.10
EVAL_INPUT_SIZE = 320
EVAL_SCORE_THRESHOLD = 0.5


def default_data_dir() -> Path:
    """``<shared>/data/landmarks5``."""
    return shared_dir() / "data" / "landmarks5"


# --------------------------------------------------------------------------- data and split


def _canonical(name: str | os.PathLike) -> str:
    s = str(name).replace("\\", "/")
    return s[2:] if s.startswith("./") else s


def is_heldout(name: str | os.PathLike) -> bool:
    """True when the crop ``name`` (path relative to the data folder, e.g.
    ``"lfw_5590/Aaron_Eckhart_0001.jpg"``) belongs to the fixed held-out 10 %."""
    digest = hashlib.sha1(_canonical(name).encode("utf-8")).hexdigest()
    return int(digest, 16) % HELDOUT_MODULUS == 0


def has_known_bad_labels(name: str | os.PathLike) -> bool:
    """True for crops whose labels are known to be wrong (:data:`KNOWN_BAD_PREFIXES`)."""
    return _canonical(name).startswith(KNOWN_BAD_PREFIXES)


def landmark_split(names: Iterable[str | os.PathLike]) -> tuple[list[str], list[str]]:
    """Split crop names into ``(train, heldout)``, order kept. Deterministic: depends only on
    each name (see :func:`is_heldout`), so adding or removing crops never moves others."""
    train: list[str] = []
    heldout: list[str] = []
    for n in names:
        (heldout if is_heldout(n) else train).append(str(n))
    return train, heldout


def read_landmarks_file(path: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
    """Read ``landmarks.txt``: ``<path> x1..x5 y1..y5`` per line.

    Returns names (as written) and float32 points (N, 5, 2) ``(x, y)`` in crop pixels, order
    left eye, right eye, nose, left mouth corner, right mouth corner.
    """
    path = Path(path) if path is not None else default_data_dir() / "landmarks.txt"
    if path.is_dir():
        path = path / "landmarks.txt"
    if not path.is_file():
        raise FileNotFoundError(f"landmark list not found: {path}")
    names: list[str] = []
    pts: list[list[float]] = []
    for i, ln in enumerate(path.read_text().splitlines(), 1):
        parts = ln.split()
        if not parts:
            continue
        if len(parts) != 11:
            raise ValueError(f"{path}:{i}: expected a path and 10 numbers, got {len(parts)} fields")
        names.append(parts[0])
        pts.append([float(v) for v in parts[1:]])
    a = np.asarray(pts, dtype=np.float32).reshape(-1, 2, 5).transpose(0, 2, 1)
    return names, np.ascontiguousarray(a)


def pad_crop(crop: np.ndarray, pad: int = PAD, value: int = PAD_VALUE) -> np.ndarray:
    """Pad an image with ``pad`` pixels of grey ``value`` on every side."""
    h, w = crop.shape[:2]
    out = np.full((h + 2 * pad, w + 2 * pad) + crop.shape[2:], value, dtype=crop.dtype)
    out[pad : pad + h, pad : pad + w] = crop
    return out


# --------------------------------------------------------------------------- metrics


def box_iou_xyxy(boxes: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """IoU (K,) of xyxy ``boxes`` with one xyxy ``box`` (continuous coordinates, no +1)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = (float(v) for v in box)
    iw = np.clip(np.minimum(b[:, 2], x2) - np.maximum(b[:, 0], x1), 0, None)
    ih = np.clip(np.minimum(b[:, 3], y2) - np.maximum(b[:, 1], y1), 0, None)
    inter = iw * ih
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area + (x2 - x1) * (y2 - y1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def reference_boxes(gt: np.ndarray) -> np.ndarray:
    """The WIDER-style face boxes (N, 4) xyxy implied by ground-truth points (N, 5, 2)
    (see the module docstring)."""
    g = np.asarray(gt, np.float64).reshape(-1, 5, 2)
    eyes = (g[:, 0] + g[:, 1]) / 2
    mouth = (g[:, 3] + g[:, 4]) / 2
    scale = np.maximum(np.linalg.norm(g[:, 0] - g[:, 1], axis=-1), np.linalg.norm(eyes - mouth, axis=-1))
    kw, kh, dy = REFERENCE_BOX
    cx = (eyes[:, 0] + mouth[:, 0]) / 2
    cy = (eyes[:, 1] + mouth[:, 1]) / 2 + dy * scale
    return np.stack([cx - kw * scale / 2, cy - kh * scale / 2, cx + kw * scale / 2, cy + kh * scale / 2], axis=1)


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance per point, (N, 5) from (N, 5, 2) predictions and ground truth."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray | float | None = None) -> np.ndarray:
    """Normalised mean error per face, (N,).

    ``norm``: the normaliser per face; default the inter-ocular distance of ``gt`` (its points
    0 and 1). Pass e.g. ``sqrt(w*h)`` of the face box for the box-normalised error.
    """
    gt = np.asarray(gt, np.float64)
    if norm is None:
        norm = np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1)
    return point_errors(pred, gt).mean(axis=1) / np.maximum(np.asarray(norm, np.float64), 1e-9)


def ced_curve(errors: np.ndarray, max_error: float = 0.2, steps: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: ``x`` in ``[0, max_error]`` and the fraction of faces whose
    error is <= x. NaN/inf errors (misses) count in the denominator but never below ``x``."""
    e = np.asarray(errors, np.float64)
    x = np.linspace(0.0, max_error, steps)
    if e.size == 0:
        return x, np.zeros_like(x)
    finite = np.sort(e[np.isfinite(e)])
    return x, np.searchsorted(finite, x, side="right") / e.size


def ced_auc(errors: np.ndarray, max_error: float = FAILURE_THRESHOLD, steps: int = 1001) -> float:
    """Area under the CED curve up to ``max_error``, divided by ``max_error`` (1 = perfect)."""
    x, y = ced_curve(errors, max_error, steps)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2 / max_error)


def _json_float(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


@dataclass
class LandmarkResult:
    """Per-crop outcome of :func:`evaluate_landmarks` and its summary.

    Attributes:
        names: crop names.
        detected: (N,) bool, a detection with IoU >= ``min_iou`` with the crop square.
        iou: (N,) IoU of the chosen detection (0 when none).
        nme_io: (N,) mean error / inter-ocular distance (NaN for misses).
        nme_box: (N,) mean error / sqrt(w*h) of the reference face box (NaN for misses).
        point_nme_io: (N, 5) per-point error / inter-ocular distance (NaN for misses).
        settings: protocol and detector settings.
    """

    names: list[str]
    detected: np.ndarray
    iou: np.ndarray
    nme_io: np.ndarray
    nme_box: np.ndarray
    point_nme_io: np.ndarray = field(repr=False)
    failure_threshold: float = FAILURE_THRESHOLD
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def miss_rate(self) -> float:
        return float(1.0 - self.detected.mean()) if self.count else float("nan")

    def summary(self) -> dict[str, Any]:
        d = self.detected
        io, bx = self.nme_io[d], self.nme_box[d]
        fail = io > self.failure_threshold
        nme_all = np.where(d, self.nme_io, np.inf)
        return {
            "crops": self.count,
            "detected": int(d.sum()),
            "miss_rate": self.miss_rate,
            "nme_io_mean": float(io.mean()) if io.size else float("nan"),
            "nme_io_median": float(np.median(io)) if io.size else float("nan"),
            "nme_box_mean": float(bx.mean()) if bx.size else float("nan"),
            "failure_rate": float(fail.mean()) if io.size else float("nan"),
            "failure_or_miss_rate": float((nme_all > self.failure_threshold).mean()) if self.count else float("nan"),
            f"ced_auc@{self.failure_threshold:g}": ced_auc(nme_all, self.failure_threshold),
            "point_nme_io_mean": [float(v) for v in np.nanmean(self.point_nme_io[d], axis=0)] if io.size else [],
        }

    def to_dict(self, per_crop: bool = False) -> dict[str, Any]:
        s = self.summary()
        out: dict[str, Any] = {k: _json_float(v) if isinstance(v, float) else v for k, v in s.items()}
        out["point_nme_io_mean"] = [_json_float(v) for v in s["point_nme_io_mean"]]
        out["failure_threshold"] = self.failure_threshold
        out["settings"] = dict(self.settings)
        out.update(self.extra)
        if per_crop:
            out["per_crop"] = [
                {"name": n, "iou": round(float(i), 4), "nme_io": None if np.isnan(e) else round(float(e), 6)}
                for n, i, e in zip(self.names, self.iou, self.nme_io)
            ]
        return out

    def table(self, title: str | None = None) -> str:
        s = self.summary()
        def pct(v: float) -> str:
            return f"{100 * v:.2f} %" if np.isfinite(v) else "-"

        rows = [
            (title or "landmarks", ""),
            ("crops (detected)", f"{s['crops']} ({s['detected']})"),
            ("miss rate", pct(s["miss_rate"])),
            ("NME / inter-ocular", f"{pct(s['nme_io_mean'])} (median {pct(s['nme_io_median'])})"),
            ("NME / sqrt(w*h) of box", pct(s["nme_box_mean"])),
            (f"failures (NME > {100 * self.failure_threshold:g} %)", pct(s["failure_rate"])),
            ("failures + misses", pct(s["failure_or_miss_rate"])),
        ]
        return "\n".join(f"{a:<28}{b}" for a, b in rows)


# --------------------------------------------------------------------------- running a detector


def evaluate_landmarks(
    detect_fn: Callable[[np.ndarray], Any],
    data_dir: str | os.PathLike | None = None,
    names: Iterable[str] | str = "heldout",
    *,
    pad: int = PAD,
    pad_value: int = PAD_VALUE,
    min_iou: float = MIN_IOU,
    reference: str = "landmarks",
    exclude_known_bad: bool = True,
    failure_threshold: float = FAILURE_THRESHOLD,
    limit: int | None = None,
    show_progress: bool = True,
    settings: dict[str, Any] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> LandmarkResult:
    """Score a detector's landmarks on the crops (protocol in the module docstring).

    Args:
        detect_fn: ``image (BGR uint8) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))``
            or a list of faces with ``box``, ``score``, ``landmarks``; configure its input size
            and score threshold beforehand (protocol: 320 and 0.5).
        data_dir: folder with ``landmarks.txt`` and the crops (default ``<shared>/data/landmarks5``).
        names: ``"heldout"`` (default), ``"all"``, or explicit crop names.
        reference: ``"landmarks"`` (the face box implied by the ground truth, default) or
            ``"crop"`` (the crop square) -- what a detection must overlap at IoU >= ``min_iou``.
        exclude_known_bad: leave out crops with known wrong labels (:func:`has_known_bad_labels`).
        limit: only the first ``limit`` crops.
    """
    if reference not in ("landmarks", "crop"):
        raise ValueError("reference must be 'landmarks' or 'crop'")
    from .widerface import detections_to_arrays, read_bgr

    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    all_names, all_points = read_landmarks_file(data_dir / "landmarks.txt")
    index = {n: i for i, n in enumerate(all_names)}
    if isinstance(names, str):
        if names == "heldout":
            chosen = landmark_split(all_names)[1]
        elif names == "all":
            chosen = list(all_names)
        else:
            raise ValueError("names must be 'heldout', 'all' or a list of crop names")
    else:
        chosen = [str(n) for n in names]
        unknown = [n for n in chosen if n not in index]
        if unknown:
            raise ValueError(f"{len(unknown)} crop(s) not in landmarks.txt, e.g. {unknown[:3]}")
    excluded = 0
    if exclude_known_bad:
        kept = [c for c in chosen if not has_known_bad_labels(c)]
        excluded = len(chosen) - len(kept)
        chosen = kept
    if limit is not None:
        chosen = chosen[:limit]

    n = len(chosen)
    detected = np.zeros(n, dtype=bool)
    ious = np.zeros(n)
    pred = np.full((n, 5, 2), np.nan)
    gt = np.zeros((n, 5, 2))
    sizes = np.zeros(n)
    detect_s = 0.0
    t0 = time.perf_counter()
    with Progress(total=n, desc="landmarks", unit="crop", enabled=show_progress) as bar:
        for k, name in enumerate(chosen):
            crop = read_bgr(data_dir / name, max_pixels)
            h, w = crop.shape[:2]
            gt[k] = all_points[index[name]] + pad
            ref = (pad, pad, pad + w, pad + h) if reference == "crop" else tuple(reference_boxes(gt[k])[0])
            sizes[k] = np.sqrt((ref[2] - ref[0]) * (ref[3] - ref[1]))
            padded = pad_crop(crop, pad, pad_value)
            t = time.perf_counter()
            out = detect_fn(padded)
            detect_s += time.perf_counter() - t
            boxes, _, lms = detections_to_arrays(out)
            if len(boxes) and lms is None:
                raise ValueError("the detector returned no landmarks")
            if len(boxes):
                iou = box_iou_xyxy(boxes, ref)
                j = int(iou.argmax())
                ious[k] = iou[j]
                if iou[j] >= min_iou:
                    detected[k] = True
                    pred[k] = lms[j, :5]
            bar.update(1)

    errs = point_errors(pred, gt)  # NaN rows for misses
    iod = np.maximum(np.linalg.norm(gt[:, 0] - gt[:, 1], axis=-1), 1e-9)
    nme_io = errs.mean(axis=1) / iod
    nme_box = errs.mean(axis=1) / sizes
    return LandmarkResult(
        names=chosen,
        detected=detected,
        iou=ious,
        nme_io=nme_io,
        nme_box=nme_box,
        point_nme_io=errs / iod[:, None],
        failure_threshold=failure_threshold,
        settings={
            "pad": pad,
            "pad_value": pad_value,
            "min_iou": min_iou,
            "reference": reference,
            "excluded_known_bad": excluded,
            **(settings or {}),
        },
        extra={
            "detect_seconds": round(detect_s, 3),
            "wall_seconds": round(time.perf_counter() - t0, 3),
            "crops_per_second": round(n / detect_s, 2) if detect_s > 0 else None,
        },
    )
