"""Accuracy of a detector on any labelled image set: your own validation images.

Ground truth is read with the readers training uses too (:mod:`facelite.annotations`), so the same
files serve for training and for measuring:

* a RetinaFace ``label.txt`` (``# path`` lines, then ``x y w h`` + 5 x ``(x y flag)`` + score;
  ``-1`` for missing landmarks), images under ``<label folder>/images`` unless given;
* an official WIDER FACE ``*_bbx_gt.txt``; faces flagged ``invalid`` become *ignore* faces;
* a COCO file (``bbox``, 5 ``keypoints``; ``iscrowd`` faces are ignore faces), images relative
  to its folder unless given.

Coordinates are pixels of the image as :func:`facelite.load_image` returns it (EXIF orientation
applied, as training reads it), boxes ``x1 y1 x2 y2``, landmarks in
:data:`facelite.spec.LANDMARK_NAMES` order.

Protocol (greedy matching, as in PASCAL VOC and COCO):

* every detection, in descending score order over an image, is matched to the not yet matched
  counted face with which it has the highest IoU, if that IoU >= ``iou_threshold`` (0.5): a true
  positive. Otherwise, if it overlaps an ignore face that much, it is left out (neither true
  nor false); otherwise it is a false positive (duplicates on a matched face included).
* *ignore* faces: those flagged invalid, and those smaller than ``min_size`` (size = sqrt(w*h)
  in image pixels); a detection smaller than ``min_size`` that matches nothing is left out too.
* AP: area under the monotone precision envelope of the precision-recall curve over all
  detections of all images (all-point interpolation); recall counts the counted faces.
* AP by face size: the same with only the faces of one size range counted (``small`` < 32 px,
  ``medium`` 32-96, ``large`` >= 96; COCO's area ranges), faces and unmatched detections
  outside the range left out.
* Operating points: precision, recall and F1 of the detections scoring at least each
  threshold, and the threshold with the best F1 -- what to pass as ``score_threshold``.
* Landmarks: for the true positives scoring at least ``landmark_threshold`` (0.5) whose face
  has labelled landmarks, the mean point-to-point distance divided by sqrt(w*h) of the labelled
  box (the inter-ocular distance is unstable on profile and small faces).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageheader import DEFAULT_MAX_PIXELS
from ..nms import box_iou
from ..progress import Progress
from .widerface import detections_to_arrays, voc_ap

IOU_THRESHOLD = 0.5
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.0, 32.0), "medium": (32.0, 96.0), "large": (96.0, math.inf)}
"""Face size ranges (sqrt(w*h) in image pixels) of the per-size AP."""
OPERATING_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
LANDMARK_THRESHOLD = 0.5


# --------------------------------------------------------------------------- ground truth


def read_labels(path: str | os.PathLike, image_root: str | os.PathLike | None = None, fmt: str = "auto") -> list[Any]:
    """Labelled images (:class:`facelite.annotations.Sample`) for evaluation: as
    :func:`facelite.annotations.read_labels`, with WIDER's ``invalid`` faces kept as ignore faces."""
    from ..annotations import read_labels as read_any

    return read_any(path, image_root, fmt, invalid="ignore")


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    """sqrt(w*h) of (N, 4) xyxy boxes -> float64 (N,)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))


# --------------------------------------------------------------------------- matching


TP, FP, LEFT_OUT = 1, 0, -1


def match_image(
    det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of one image's detections to its faces.

    Args:
        det_boxes: (K, 4) xyxy; det_scores: (K,).
        gt_boxes: (G, 4) xyxy; gt_ignore: (G,) bool.

    Returns:
        ``status`` int8 (K,): :data:`TP`, :data:`FP` or :data:`LEFT_OUT` (matches an ignore face),
        and ``gt_index`` int64 (K,): the matched face of a true positive, else -1; both in the
        order of the detections given.
    """
    k = len(det_scores)
    status = np.full(k, FP, np.int8)
    gt_index = np.full(k, -1, np.int64)
    if k == 0 or len(gt_boxes) == 0:
        return status, gt_index
    ious = box_iou(det_boxes, gt_boxes).astype(np.float64)
    gt_ignore = np.asarray(gt_ignore, bool)
    taken = np.zeros(len(gt_boxes), bool)
    for d in np.argsort(-np.asarray(det_scores), kind="stable"):
        free = np.where(~gt_ignore & ~taken, ious[d], -1.0)
        g = int(free.argmax())
        if free[g] >= iou_threshold:
            status[d], gt_index[d] = TP, g
            taken[g] = True
        elif gt_ignore.any() and ious[d][gt_ignore].max() >= iou_threshold:
            status[d] = LEFT_OUT
    return status, gt_index


@dataclass
class _Matched:
    scores: np.ndarray  # (D,) of the detections not left out
    tp: np.ndarray  # (D,) bool
    num_faces: int  # counted faces


def _pr(m: _Matched) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (descending), recall and precision after each detection."""
    order = np.argsort(-m.scores, kind="stable")
    tp = np.cumsum(m.tp[order])
    fp = np.cumsum(~m.tp[order])
    recall = tp / max(m.num_faces, 1)
    precision = tp / np.maximum(tp + fp, 1)
    return m.scores[order], recall, precision


# --------------------------------------------------------------------------- result


def _f(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 6)


@dataclass
class LabelsResult:
    """Summary of :func:`evaluate_labels` (see the module docstring for the definitions).

    Attributes:
        ap: AP over all counted faces; ``ap_by_size``: AP per :data:`SIZE_RANGES` entry (NaN
            where the range has no face).
        faces_by_size: counted faces per size range.
        operating_points: dicts ``threshold, precision, recall, f1, tp, fp, fn``.
        best_f1: the same dict at the threshold with the highest F1.
        landmarks: ``faces`` (true positives measured), ``nme_mean``, ``nme_median``.
        pr_curve: ``(recall, precision)`` float64 arrays, one point per detection.
        per_image: per image at the best-F1 threshold: ``path``, ``faces`` (counted), ``found``,
            ``missed``, ``false`` (false detections) -- where to look first.
    """

    ap: float
    ap_by_size: dict[str, float]
    num_images: int
    num_faces: int
    num_ignored: int
    num_detections: int
    faces_by_size: dict[str, int]
    operating_points: list[dict[str, float]]
    best_f1: dict[str, float]
    landmarks: dict[str, float]
    iou_threshold: float
    min_size: float
    pr_curve: tuple[np.ndarray, np.ndarray] = field(repr=False, default=(np.zeros(0), np.zeros(0)))
    skipped: list[str] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def worst_images(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` images with the most errors (missed faces + false detections) at the best-F1
        threshold, most first; ties in file order."""
        bad = [r for r in self.per_image if r["missed"] + r["false"]]
        return sorted(bad, key=lambda r: -(r["missed"] + r["false"]))[:n]

    def to_dict(self) -> dict[str, Any]:
        def point(p: Mapping[str, float]) -> dict[str, Any]:
            return {k: (int(v) if k in ("tp", "fp", "fn") else _f(v)) for k, v in p.items()}

        return {
            "ap": _f(self.ap),
            "ap_by_size": {k: _f(v) for k, v in self.ap_by_size.items()},
            "size_ranges": {k: [lo, None if math.isinf(hi) else hi] for k, (lo, hi) in SIZE_RANGES.items()},
            "images": self.num_images,
            "faces": self.num_faces,
            "ignored_faces": self.num_ignored,
            "detections": self.num_detections,
            "faces_by_size": dict(self.faces_by_size),
            "operating_points": [point(p) for p in self.operating_points],
            "best_f1": point(self.best_f1),
            "landmarks": {k: (int(v) if k == "faces" else _f(v)) for k, v in self.landmarks.items()},
            "iou_threshold": self.iou_threshold,
            "min_size": self.min_size,
            "skipped": list(self.skipped),
            "per_image": [dict(r) for r in self.per_image],
        }

    def table(self, title: str | None = None) -> str:
        def ap(v: float) -> str:
            return f"{v:.4f}" if np.isfinite(v) else "-"

        sizes = "  ".join(f"{k} {ap(v)} ({self.faces_by_size[k]})" for k, v in self.ap_by_size.items())
        lines = [
            title or "labelled images",
            f"{self.num_images} images, {self.num_faces} faces ({self.num_ignored} ignored), "
            f"{self.num_detections} detections; IoU >= {self.iou_threshold:g}",
            f"AP {ap(self.ap)}   by size (faces): {sizes}",
            "score >=   precision   recall   F1      TP      FP      FN",
        ]
        best = dict(self.best_f1, best=True)
        for p in sorted([*self.operating_points, best], key=lambda p: p["threshold"]):
            mark = "  (best F1)" if p.get("best") else ""
            lines.append(f"{p['threshold']:<10.3f}{p['precision']:<12.4f}{p['recall']:<9.4f}{p['f1']:<8.4f}"
                         f"{int(p['tp']):<8d}{int(p['fp']):<8d}{int(p['fn'])}{mark}")
        lm = self.landmarks
        if lm["faces"]:
            lines.append(f"landmarks: NME / sqrt(w*h) {100 * lm['nme_mean']:.2f} % (median "
                         f"{100 * lm['nme_median']:.2f} %) on {int(lm['faces'])} faces found with score >= "
                         f"{lm['threshold']:g}")
        else:
            lines.append("landmarks: no labelled landmarks on faces found")
        worst = self.worst_images()
        if worst:
            lines.append(f"most errors at score >= {self.best_f1['threshold']:.3f} (missed + false / faces):")
            lines += [f"  {r['missed']} + {r['false']} / {r['faces']}  {r['path']}" for r in worst]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable image(s): {', '.join(self.skipped[:3])}"
                         + (" ..." if len(self.skipped) > 3 else ""))
        return "\n".join(lines)


# --------------------------------------------------------------------------- evaluation


@dataclass
class Detections:
    """One image's detections: ``boxes`` float32 (K, 4) xyxy, ``scores`` (K,), ``landmarks``
    (K, 5, 2) or None, in the labels' pixel coordinates."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None


def _operating_point(threshold: float, scores: np.ndarray, tp: np.ndarray, num_faces: int) -> dict[str, float]:
    keep = scores >= threshold
    n_tp = int(tp[keep].sum())
    n_fp = int(keep.sum()) - n_tp
    precision = n_tp / (n_tp + n_fp) if n_tp + n_fp else float("nan")
    recall = n_tp / num_faces if num_faces else float("nan")
    f1 = 2 * n_tp / (2 * n_tp + n_fp + (num_faces - n_tp)) if num_faces + n_fp else float("nan")
    return {"threshold": float(threshold), "precision": precision, "recall": recall, "f1": f1,
            "tp": n_tp, "fp": n_fp, "fn": num_faces - n_tp}


def evaluate_labels(
    samples: Sequence[Any],
    detections: Mapping[str, Detections],
    *,
    iou_threshold: float = IOU_THRESHOLD,
    min_size: float = 0.0,
    thresholds: Iterable[float] = OPERATING_THRESHOLDS,
    landmark_threshold: float = LANDMARK_THRESHOLD,
    skipped: Sequence[str] = (),
) -> LabelsResult:
    """Score ``detections`` (keyed by ``str(sample.path)``) against ``samples`` (objects with
    ``path``, ``boxes``, ``landmarks``, ``has_landmarks``, ``ignore``; see :func:`read_labels`).

    Every sample must have an entry (an empty :class:`Detections` for an image with none), except
    those whose path is in ``skipped`` (unreadable images, left out and listed in the result);
    a missing one is an error, not a silent miss of all its faces.
    """
    left_out = set(skipped)
    samples = [s for s in samples if str(s.path) not in left_out]
    missing = [str(s.path) for s in samples if str(s.path) not in detections]
    if missing:
        raise ValueError(f"no detections for {len(missing)} labelled image(s), e.g. {missing[0]}")
    ranges = {"all": (0.0, math.inf), **SIZE_RANGES}
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in ranges}
    counted = dict.fromkeys(ranges, 0)
    errors: list[float] = []
    per_image: list[tuple[str, np.ndarray, np.ndarray, int]] = []
    lm_faces = 0
    num_ignored = num_dets = 0
    for s in samples:
        d = detections[str(s.path)]
        boxes = np.asarray(d.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(d.scores, np.float64).reshape(-1)
        num_dets += len(scores)
        gt_size, det_size = box_sizes(s.boxes), box_sizes(boxes)
        base_ignore = np.asarray(s.ignore, bool) | (gt_size < min_size)
        num_ignored += int(base_ignore.sum())
        for name, (lo, hi) in ranges.items():
            outside = (gt_size < lo) | (gt_size >= hi)
            ignore = base_ignore | outside
            status, gt_index = match_image(boxes, scores, s.boxes, ignore, iou_threshold)
            status[(status == FP) & ((det_size < max(lo, min_size)) | (det_size >= hi))] = LEFT_OUT
            kept = status != LEFT_OUT
            parts[name].append((scores[kept], status[kept] == TP))
            counted[name] += int((~ignore).sum())
            if name == "all":
                per_image.append((str(s.path), scores[kept], status[kept] == TP, int((~ignore).sum())))
            if name == "all" and d.landmarks is not None and len(scores):
                pts = np.asarray(d.landmarks, np.float64).reshape(len(scores), -1, 2)
                hit = np.flatnonzero((status == TP) & (scores >= landmark_threshold))
                hit = hit[np.asarray(s.has_landmarks, bool)[gt_index[hit]]]
                for i in hit:
                    g = gt_index[i]
                    err = np.linalg.norm(pts[i] - s.landmarks[g], axis=1).mean()
                    errors.append(float(err / max(gt_size[g], 1e-6)))
                lm_faces += len(hit)

    matched = {k: _Matched(np.concatenate([p[0] for p in v]) if v else np.zeros(0),
                           np.concatenate([p[1] for p in v]) if v else np.zeros(0, bool), counted[k])
               for k, v in parts.items()}
    aps: dict[str, float] = {}
    curve = (np.zeros(0), np.zeros(0))
    for name, m in matched.items():
        if m.num_faces == 0:
            aps[name] = float("nan")
            continue
        _, recall, precision = _pr(m)
        aps[name] = voc_ap(recall, precision) if len(recall) else 0.0
        if name == "all":
            curve = (recall, precision)
    allm = matched["all"]
    points = [_operating_point(t, allm.scores, allm.tp, allm.num_faces) for t in thresholds]
    best = _best_f1(allm)
    at = best["threshold"]
    images = [{"path": path, "faces": n, "found": int((tp & (sc >= at)).sum()),
               "false": int((~tp & (sc >= at)).sum())} for path, sc, tp, n in per_image]
    for r in images:
        r["missed"] = r["faces"] - r["found"]
    lm = np.asarray(errors)
    return LabelsResult(
        ap=aps.pop("all"), ap_by_size=aps, num_images=len(samples), num_faces=counted["all"],
        num_ignored=num_ignored, num_detections=num_dets,
        faces_by_size={k: counted[k] for k in SIZE_RANGES}, operating_points=points, best_f1=best,
        landmarks={"faces": lm_faces, "nme_mean": float(lm.mean()) if lm.size else float("nan"),
                   "nme_median": float(np.median(lm)) if lm.size else float("nan"), "threshold": landmark_threshold},
        iou_threshold=iou_threshold, min_size=min_size, pr_curve=curve, skipped=list(skipped),
        per_image=images,
    )


def _best_f1(m: _Matched) -> dict[str, float]:
    """The operating point with the highest F1 over every score the detections take."""
    if not len(m.scores):
        return _operating_point(1.0, m.scores, m.tp, m.num_faces)
    scores, recall, _ = _pr(m)
    tp = recall * m.num_faces
    n = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (n + m.num_faces)
    last = np.r_[scores[1:] != scores[:-1], True]  # a threshold keeps every detection of equal score
    i = int(np.flatnonzero(last)[np.argmax(f1[last])])
    return _operating_point(float(scores[i]), m.scores, m.tp, m.num_faces)


# --------------------------------------------------------------------------- predictions on disk


def _record_detections(record: Mapping[str, Any]) -> Detections:
    boxes, scores, lms = detections_to_arrays(
        (np.asarray([f["box"] for f in record["faces"]], np.float32).reshape(-1, 4),
         np.asarray([f["score"] for f in record["faces"]], np.float32),
         [f["landmarks"] for f in record["faces"]] if all("landmarks" in f for f in record["faces"]) else None)
    )
    return Detections(boxes, scores, lms)


def read_predictions(path: str | os.PathLike) -> dict[str, Detections]:
    """Detections from ``facelite detect --jsonl``, ``--json`` or ``--coco`` output, keyed by the
    image's path (relative ones from the current folder, as ``facelite detect`` wrote them)
    resolved to an absolute path."""
    from ..coco import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))  # --json (a list) or --coco (a dict)
    except ValueError:
        data = None  # --jsonl: one record per line
    if isinstance(data, dict) and "images" in data:
        records = _coco_records(data, path)
    elif data is not None:
        records = data if isinstance(data, list) else [data]
    else:
        records = list(read_jsonl(path))
    return {str(Path(r["path"]).resolve()): _record_detections(r) for r in records
            if isinstance(r, dict) and "path" in r and "faces" in r}


def _coco_records(data: Any, path: Path) -> list[dict[str, Any]]:
    """``facelite detect --coco`` output (or any COCO file with scored boxes) as detect records."""
    try:
        faces: dict[Any, list[dict[str, Any]]] = {im["id"]: [] for im in data["images"]}
        for a in data.get("annotations", []):
            x, y, w, h = (float(v) for v in a["bbox"])
            face: dict[str, Any] = {"box": [x, y, x + w, y + h], "score": float(a.get("score", 1.0))}
            kp = a.get("keypoints") or []
            if len(kp) >= 15:
                face["landmarks"] = [[kp[3 * i], kp[3 * i + 1]] for i in range(5)]
            faces[a["image_id"]].append(face)
        return [{"path": im["file_name"], "faces": faces[im["id"]]} for im in data["images"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a COCO detection file ({exc})") from None


def align_keys(samples: Sequence[Any], predictions: Mapping[str, Detections]) -> dict[str, Detections]:
    """Predictions re-keyed by ``str(sample.path)``: the same file (absolute paths), else the
    one whose path ends with the sample's path relative to its label root (several matches: none)."""
    out: dict[str, Detections] = {}
    by_name: dict[str, list[str]] = {}
    for key in predictions:
        by_name.setdefault(Path(key).name, []).append(key)
    for s in samples:
        full = str(Path(s.path).resolve())
        if full in predictions:
            out[str(s.path)] = predictions[full]
            continue
        parts = Path(s.path).parts
        cands = [k for k in by_name.get(Path(s.path).name, [])
                 if any(Path(k).parts[-n:] == parts[-n:] for n in range(2, len(parts) + 1))]
        if len(cands) == 1:
            out[str(s.path)] = predictions[cands[0]]
    return out


class PredictionLog:
    """Detections written as JSON Lines as they are computed, so an interrupted evaluation
    resumes: line 1 holds the settings (reopening with other settings is an error), then one
    ``{"path", "faces"}`` record per image, in the layout of ``facelite detect --jsonl`` but with
    unrounded values (that output rounds boxes to 0.01 px, which can move a tiny face across IoU
    0.5). A last line cut short by a kill is removed on opening."""

    def __init__(self, path: str | os.PathLike, settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(dict(settings), sort_keys=True))
        self.done: dict[str, Detections] = {}
        if self.path.is_file() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                data = data[: data.rfind(b"\n") + 1]
                self.path.write_bytes(data)
            lines = [json.loads(ln) for ln in data.decode("utf-8").splitlines() if ln.strip()]
            old = lines[0].get("settings") if lines else None
            if old != self.settings:
                raise ValueError(f"{self.path} holds detections made with other settings; "
                                 "use another --cache file or delete this one")
            self.done = {r["path"]: _record_detections(r) for r in lines[1:]}
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n")

    def add(self, key: str, d: Detections) -> Detections:
        """Append one image's detections; returns them as read back (the same values: written exactly)."""
        faces = []
        for i in range(len(d.scores)):
            # exact values (float32 -> float64 -> JSON round-trips): boxes rounded to 0.01 px moved a
            # tiny face across IoU 0.5 and AP by 0.2 points against the same run without the cache
            face: dict[str, Any] = {"box": [float(v) for v in d.boxes[i]], "score": float(d.scores[i])}
            if d.landmarks is not None:
                face["landmarks"] = [[float(x), float(y)] for x, y in d.landmarks[i]]
            faces.append(face)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"path": key, "faces": faces}) + "\n")
        self.done[key] = _record_detections({"faces": faces})
        return self.done[key]


def run_detector_on_labels(
    detect_fn: Any,
    samples: Sequence[Any],
    *,
    cache: str | os.PathLike | None = None,
    cache_settings: Mapping[str, Any] | None = None,
    show_progress: bool = True,
    desc: str = "eval",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[dict[str, Detections], list[str], float]:
    """Run ``detect_fn`` (``BGR uint8 image -> (boxes, scores[, landmarks])`` or faces) on each
    sample's image. Unreadable images are reported on standard error and skipped.

    Returns ``(detections keyed by str(sample.path), skipped paths, detector seconds)``.
    """
    import sys

    from ..imageio import load_image

    log = PredictionLog(cache, cache_settings or {}) if cache is not None else None
    out: dict[str, Detections] = {}
    skipped: list[str] = []
    seconds = 0.0
    with Progress(total=len(samples), desc=desc, unit="img", enabled=show_progress) as bar:
        for s in samples:
            key = str(s.path)
            if log is not None and key in log.done:
                out[key] = log.done[key]
                bar.update(1)
                continue
            try:
                image = load_image(s.path, max_pixels=max_pixels)
            except (OSError, ValueError) as exc:  # ImageLoadError is a ValueError naming the file
                print(f"facelite eval: skipped {exc}", file=sys.stderr)
                skipped.append(key)
                bar.update(1)
                continue
            t = time.perf_counter()
            boxes, scores, lms = detections_to_arrays(detect_fn(image))
            seconds += time.perf_counter() - t
            out[key] = Detections(boxes, scores, lms)
            if log is not None:  # the copy as read back, so a resumed run gives the same numbers
                out[key] = log.add(key, out[key])
            bar.update(1)
    return out, skipped, seconds


def evaluate_detector_on_labels(
    detector: Any,
    labels: str | os.PathLike,
    images: str | os.PathLike | None = None,
    *,
    fmt: str = "auto",
    cache: str | os.PathLike | None = None,
    show_progress: bool = True,
    **kwargs: Any,
) -> LabelsResult:
    """Run ``detector`` on the images of a label file and score it (what ``facelite eval labels``
    does). ``detector``: a :class:`facelite.FaceDetector` (for a full precision-recall curve, made
    with ``score_threshold=0.02``) or any ``image -> faces`` callable; ``kwargs`` go to
    :func:`evaluate_labels`. Unreadable images are reported, skipped and listed in ``skipped``."""
    from .widerface import as_detect_fn

    samples = read_labels(labels, images, fmt)
    dets, skipped, _ = run_detector_on_labels(as_detect_fn(detector), samples, cache=cache, show_progress=show_progress)
    return evaluate_labels(samples, dets, skipped=skipped, **kwargs)
