"""The official WIDER FACE evaluation (Easy / Medium / Hard AP), vectorised.

This is a faithful port of the official MATLAB ``eval_tools/evaluation.m`` (and of
its well-known Python port ``WiderFace-Evaluation``), restricted to a list of images:

* ground truth: ``wider_face_val.mat`` (boxes ``x y w h``) and, per subset,
  ``wider_{easy,medium,hard}_val.mat`` whose ``gt_list`` holds the 1-based indices
  of the faces that count; every other face of the image is *ignore*;
* predictions ``x y w h score``, sorted by descending score per image; scores are
  min-max normalised over the whole prediction set (all evaluated images);
* a prediction is matched to the ground-truth face with which it has the highest IoU
  (``+1`` pixel convention: a box ``x y w h`` spans ``x .. x+w`` inclusive, so its
  area is ``(w+1)(h+1)``); at IoU >= 0.5 it is a true positive if that face counts
  and was not matched before, it is *not a proposal* (neither TP nor FP) if that face
  is ignore, and a false positive otherwise (including a duplicate on a matched face);
* images without ground-truth faces or without predictions contribute only their
  face count (the official code skips them, so predictions on them are not FPs);
* precision and recall are accumulated over images at 1000 score thresholds
  ``1 - t/1000``, and AP is the VOC area under the monotone precision envelope.

The detector side of the protocol (score threshold 0.02, NMS 0.4, at most 750 faces per
image) is applied by :func:`run_detector_on_split`, which accepts any
``image -> boxes, scores`` callable so that third-party detectors are scored by the
same code.

scipy (``pip install 'facelite[eval]'``) is needed only to read the ``.mat`` files.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..imageheader import DEFAULT_MAX_PIXELS
from ..paths import shared_dir
from ..progress import Progress

SUBSETS: tuple[str, ...] = ("easy", "medium", "hard")
IOU_THRESHOLD = 0.5
THRESH_NUM = 1000
EVAL_SCORE_THRESHOLD = 0.02
"""Score threshold of the detector when evaluating (the usual WIDER FACE protocol)."""
EVAL_NMS_THRESHOLD = 0.4
EVAL_MAX_FACES = 750
"""At most this many detections per image are kept for evaluation (RetinaFace's keep_top_k)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


# --------------------------------------------------------------------------- names


def image_key(name: str | os.PathLike) -> str:
    """Canonical key ``"<event>/<stem>"`` of an image name or path.

    ``"0--Parade/0_Parade_marchingband_1_465.jpg"``, ``".../images/0--Parade/0_Parade_marchingband_1_465.webp"``
    and ``"0--Parade/0_Parade_marchingband_1_465"`` all give ``"0--Parade/0_Parade_marchingband_1_465"``.
    A bare stem (no event folder) is returned unchanged; :func:`evaluate_widerface` resolves it.
    """
    p = Path(str(name).replace("\\", "/"))
    stem = p.stem if p.suffix.lower() in IMAGE_EXTENSIONS + (".txt",) else p.name
    event = p.parent.name
    return f"{event}/{stem}" if event else stem


def default_gt_dir() -> Path:
    """``<shared>/data/widerface/eval``."""
    return shared_dir() / "data" / "widerface" / "eval"


def default_split_dir() -> Path:
    """``<shared>/data/widerface/dev``."""
    return shared_dir() / "data" / "widerface" / "dev"


def read_image_list(split: str | os.PathLike | Iterable[str]) -> list[str]:
    """Image names of a split: a split folder (its ``images.txt``), a ``.txt`` file, or names."""
    if isinstance(split, (str, os.PathLike)):
        path = Path(split)
        if path.is_dir():
            path = path / "images.txt"
        if not path.is_file():
            raise FileNotFoundError(f"image list not found: {path}")
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [str(n) for n in split]


def read_image_table(split_dir: str | os.PathLike, column: str) -> dict[str, str]:
    """``image_key -> value of column`` from a split's ``images.tsv`` (columns ``name orig_w
    orig_h w h scale``); empty if the file or the column is absent."""
    path = Path(split_dir) / "images.tsv"
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    header = lines[0].split("\t") if lines else []
    if "name" not in header or column not in header:
        return {}
    i_name, i_col = header.index("name"), header.index(column)
    out: dict[str, str] = {}
    for ln in lines[1:]:
        parts = ln.split("\t")
        if len(parts) > max(i_name, i_col):
            out[image_key(parts[i_name])] = parts[i_col]
    return out


def read_image_scales(split_dir: str | os.PathLike) -> dict[str, float]:
    """``image_key -> stored/original scale`` from a split's ``images.tsv`` (empty if absent)."""
    return {k: float(v) for k, v in read_image_table(split_dir, "scale").items()}


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class ImageGroundTruth:
    """Faces of one image: ``boxes`` (G, 4) float64 ``x y w h`` and, per subset, the
    0-based indices of the faces that count (all other faces of the image are ignore)."""

    boxes: np.ndarray
    keep: Mapping[str, np.ndarray]


def _require_loadmat() -> Callable[..., Any]:
    try:
        from scipy.io import loadmat
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "reading the WIDER FACE .mat ground truth needs scipy: pip install 'facelite[eval]'"
        ) from exc
    return loadmat


_GT_CACHE: dict[tuple[str, tuple[str, ...]], dict[str, ImageGroundTruth]] = {}


def load_ground_truth(
    gt_dir: str | os.PathLike | None = None,
    image_list: Iterable[str] | None = None,
    subsets: Sequence[str] = SUBSETS,
) -> dict[str, ImageGroundTruth]:
    """Read the official ground truth, keyed by :func:`image_key`.

    Args:
        gt_dir: folder with ``wider_face_val.mat`` and ``wider_<subset>_val.mat``
            (default ``<shared>/data/widerface/eval``).
        image_list: restrict to these images (names with or without extension); every one
            must exist in the ground truth. ``None``: all 3,226 validation images.
        subsets: which ``wider_<subset>_val.mat`` files to read.
    """
    gt_dir = Path(gt_dir) if gt_dir is not None else default_gt_dir()
    cache_key = (str(gt_dir.resolve()), tuple(subsets))
    full = _GT_CACHE.get(cache_key)
    if full is None:
        loadmat = _require_loadmat()
        main_path = gt_dir / "wider_face_val.mat"
        if not main_path.is_file():
            raise FileNotFoundError(f"WIDER FACE ground truth not found: {main_path}")
        gt = loadmat(str(main_path))
        subset_lists = {}
        for s in subsets:
            p = gt_dir / f"wider_{s}_val.mat"
            if not p.is_file():
                raise FileNotFoundError(f"WIDER FACE {s} subset list not found: {p}")
            subset_lists[s] = loadmat(str(p))["gt_list"]
        full = {}
        event_list, file_list, box_list = gt["event_list"], gt["file_list"], gt["face_bbx_list"]
        for i in range(len(event_list)):
            event = str(event_list[i][0][0])
            files = file_list[i][0]
            for j in range(len(files)):
                name = str(files[j][0][0])
                boxes = np.asarray(box_list[i][0][j][0], dtype=np.float64).reshape(-1, 4)
                keep = {}
                for s in subsets:
                    # gt_list entries are 1-based and stored as uint8/uint16: widen before subtracting.
                    idx = np.asarray(subset_lists[s][i][0][j][0], dtype=np.int64).ravel() - 1
                    if idx.size and (idx.min() < 0 or idx.max() >= len(boxes)):
                        raise ValueError(f"{event}/{name}: {s} gt_list index out of range")
                    keep[s] = idx
                full[f"{event}/{name}"] = ImageGroundTruth(boxes=boxes, keep=keep)
        _GT_CACHE[cache_key] = full
    if image_list is None:
        return dict(full)
    out: dict[str, ImageGroundTruth] = {}
    missing = []
    for name in image_list:
        key = image_key(name)
        if key in full:
            out[key] = full[key]
        else:
            missing.append(str(name))
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) of the list are not in the WIDER FACE val ground truth, "
            f"e.g. {missing[:3]}"
        )
    return out


# --------------------------------------------------------------------------- the algorithm


def iou_matrix_plus1(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """IoU (P, G) of ``x y w h`` boxes with the official ``+1`` convention (area ``(w+1)(h+1)``)."""
    a = np.asarray(a_xywh, dtype=np.float64)
    b = np.asarray(b_xywh, dtype=np.float64)
    ax1, ay1 = a[:, 0:1], a[:, 1:2]
    ax2, ay2 = ax1 + a[:, 2:3], ay1 + a[:, 3:4]
    bx1, by1 = b[:, 0], b[:, 1]
    bx2, by2 = bx1 + b[:, 2], by1 + b[:, 3]
    iw = np.minimum(ax2, bx2) - np.maximum(ax1, bx1) + 1
    ih = np.minimum(ay2, by2) - np.maximum(ay1, by1) + 1
    inter = iw * ih
    area_a = (ax2 - ax1 + 1) * (ay2 - ay1 + 1)
    area_b = (bx2 - bx1 + 1) * (by2 - by1 + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_a + area_b - inter)
    iou[(iw <= 0) | (ih <= 0)] = 0.0
    return np.nan_to_num(iou, nan=0.0)


def image_eval(
    ious: np.ndarray, counts: np.ndarray, iou_threshold: float = IOU_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Official ``image_evaluation`` for one image, vectorised.

    Args:
        ious: (P, G) IoU of the predictions (sorted by descending score) with the faces.
        counts: (G,) bool, True for faces of the subset, False for ignore faces.

    Returns:
        ``pred_recall`` (P,) number of distinct counted faces found by predictions ``0..h``,
        ``proposal`` (P,) bool, False for predictions matched to an ignore face.
    """
    p = ious.shape[0]
    best = ious.argmax(axis=1)  # the first maximum, like MATLAB's max
    matched = ious[np.arange(p), best] >= iou_threshold
    counted = counts[best]
    proposal = ~(matched & ~counted)
    hit = np.flatnonzero(matched & counted)
    newly = np.zeros(p, dtype=np.int64)
    if hit.size:
        _, first = np.unique(best[hit], return_index=True)
        newly[hit[first]] = 1
    return np.cumsum(newly), proposal


def image_pr_info(
    scores_desc: np.ndarray, pred_recall: np.ndarray, proposal: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Official ``image_pr_info``: (T, 2) proposals and true positives at each threshold."""
    n = np.searchsorted(-scores_desc, -thresholds, side="right")  # how many scores >= threshold
    out = np.zeros((len(thresholds), 2), dtype=np.float64)
    has = n > 0
    r = n[has] - 1
    out[has, 0] = np.cumsum(proposal)[r]
    out[has, 1] = pred_recall[r]
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope (VOC). NaN precisions (no proposal at that
    threshold) are skipped by the envelope, as MATLAB's ``max`` does."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _as_pred_array(dets: Any) -> np.ndarray:
    a = np.asarray(dets, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 5), dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 5:
        raise ValueError(f"predictions must be (K, 5) arrays of x y w h score, got shape {a.shape}")
    return a[:, :5]


def normalise_scores(predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Min-max normalise the scores over the whole prediction set (official ``norm_score``).

    Returns new float64 arrays; when every score is equal, all become 1.
    """
    arrays = {k: _as_pred_array(v).copy() for k, v in predictions.items()}
    nonempty = [a[:, 4] for a in arrays.values() if len(a)]
    if not nonempty:
        return arrays
    lo = min(float(s.min()) for s in nonempty)
    hi = max(float(s.max()) for s in nonempty)
    for a in arrays.values():
        if len(a):
            a[:, 4] = (a[:, 4] - lo) / (hi - lo) if hi > lo else 1.0
    return arrays


@dataclass
class WiderFaceResult:
    """Result of :func:`evaluate_widerface`.

    Attributes:
        ap: AP per subset (NaN for a subset without any face in the evaluated images).
        num_faces: faces that count per subset (the recall denominators).
        num_images: images evaluated.
        num_predictions: predictions on those images.
        curves: per subset, a (T, 2) array of (precision, recall) at thresholds
            ``1 - t/T`` (precision is NaN where no prediction was a proposal).
        extra: free-form information added by callers (settings, timing, model hash).
    """

    ap: dict[str, float]
    num_faces: dict[str, int]
    num_images: int
    num_predictions: int
    curves: dict[str, np.ndarray] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, curves: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ap": {k: None if np.isnan(v) else round(v, 6) for k, v in self.ap.items()},
            "num_faces": dict(self.num_faces),
            "num_images": self.num_images,
            "num_predictions": self.num_predictions,
            **self.extra,
        }
        if curves:
            d["curves"] = {
                k: {
                    "precision": [None if np.isnan(p) else round(float(p), 6) for p in c[:, 0]],
                    "recall": [round(float(r), 6) for r in c[:, 1]],
                }
                for k, c in self.curves.items()
            }
        return d

    def table(self, title: str | None = None) -> str:
        """A small text table: AP per subset, and the face counts."""
        label = title or "AP"
        w = max(len(label), 8) + 2
        head = " " * w + "".join(f"{s.capitalize():>10}" for s in self.ap)
        row = f"{label:<{w}}" + "".join(f"{v:>10.4f}" for v in self.ap.values())
        faces = f"{'faces':<{w}}" + "".join(f"{self.num_faces[s]:>10d}" for s in self.ap)
        return "\n".join([head, row, faces])


def evaluate_widerface(
    predictions: Mapping[str, Any],
    gt_dir: str | os.PathLike | None = None,
    image_list: str | os.PathLike | Iterable[str] | None = None,
    *,
    subsets: Sequence[str] = SUBSETS,
    iou_threshold: float = IOU_THRESHOLD,
    thresh_num: int = THRESH_NUM,
    missing: str = "error",
    ground_truth: Mapping[str, ImageGroundTruth] | None = None,
) -> WiderFaceResult:
    """WIDER FACE AP per subset, official algorithm, restricted to ``image_list``.

    Args:
        predictions: ``image name -> (K, 5)`` array of ``x y w h score`` in the original
            image's pixels (names as in :func:`image_key`; extension optional).
        gt_dir: folder of the ``.mat`` files (default ``<shared>/data/widerface/eval``).
        image_list: the images to evaluate: a split folder, an ``images.txt``, or names.
            ``None``: the images that have predictions.
        missing: what to do with listed images that have no entry in ``predictions``:
            ``"error"`` (default: catches an incomplete run) or ``"empty"`` (no detections).
        ground_truth: already loaded ground truth (from :func:`load_ground_truth`); when
            given, ``gt_dir`` is not read.

    Predictions for images outside the list are not used (nor in the score normalisation).
    """
    if missing not in ("error", "empty"):
        raise ValueError("missing must be 'error' or 'empty'")
    preds_by_key: dict[str, Any] = {}
    for name, dets in predictions.items():
        key = image_key(name)
        if key in preds_by_key:
            raise ValueError(f"two prediction entries for image {key}")
        preds_by_key[key] = dets

    names = list(preds_by_key) if image_list is None else read_image_list(image_list)
    if ground_truth is None:
        gt = load_ground_truth(gt_dir, names, subsets)
    else:
        gt = {}
        for n in names:
            k = image_key(n)
            if k not in ground_truth:
                raise ValueError(f"image {n} is not in the given ground truth")
            gt[k] = ground_truth[k]
    keys = list(gt)
    if len(set(keys)) != len(keys):
        raise ValueError("the image list has duplicates")

    # Bare stems (no event folder) in the predictions: resolve through the ground truth.
    stems = {k.split("/", 1)[1]: k for k in keys}
    for k in [k for k in preds_by_key if "/" not in k]:
        if k in stems and stems[k] not in preds_by_key:
            preds_by_key[stems[k]] = preds_by_key.pop(k)

    absent = [k for k in keys if k not in preds_by_key]
    if absent and missing == "error":
        raise ValueError(
            f"no predictions for {len(absent)} of {len(keys)} images (e.g. {absent[:3]}); "
            "pass missing='empty' to count them as images without detections"
        )
    preds = normalise_scores({k: preds_by_key.get(k, np.zeros((0, 5))) for k in keys})

    thresholds = 1.0 - np.arange(1, thresh_num + 1, dtype=np.float64) / thresh_num
    pr = {s: np.zeros((thresh_num, 2), dtype=np.float64) for s in subsets}
    num_faces = {s: 0 for s in subsets}
    num_predictions = 0
    for k in keys:
        g = gt[k]
        for s in subsets:
            num_faces[s] += len(g.keep[s])
        p = preds[k]
        num_predictions += len(p)
        if len(g.boxes) == 0 or len(p) == 0:
            continue  # official: nothing but the face count
        order = np.argsort(-p[:, 4], kind="stable")
        p = p[order]
        ious = iou_matrix_plus1(p[:, :4], g.boxes)
        for s in subsets:
            counts = np.zeros(len(g.boxes), dtype=bool)
            counts[g.keep[s]] = True
            pred_recall, proposal = image_eval(ious, counts, iou_threshold)
            pr[s] += image_pr_info(p[:, 4], pred_recall, proposal, thresholds)

    ap, curves = {}, {}
    for s in subsets:
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = pr[s][:, 1] / pr[s][:, 0]
            recall = pr[s][:, 1] / num_faces[s] if num_faces[s] else np.zeros(thresh_num)
        curves[s] = np.stack([precision, recall], axis=1)
        ap[s] = voc_ap(recall, precision) if num_faces[s] else float("nan")  # no face: undefined
    return WiderFaceResult(
        ap=ap, num_faces=num_faces, num_images=len(keys), num_predictions=num_predictions, curves=curves
    )


# --------------------------------------------------------------------------- submission layout


def _fmt(v: float) -> str:
    """Shortest text that reads back to the same float32."""
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def format_submission(name: str, dets: np.ndarray) -> str:
    """The text of one WIDER submission file: image name, count, ``x y w h score`` lines."""
    a = _as_pred_array(dets)
    lines = [image_key(name).rsplit("/", 1)[-1], str(len(a))]
    lines += [" ".join(_fmt(v) for v in row) for row in a]
    return "\n".join(lines) + "\n"


def parse_submission(text: str, source: str = "<text>") -> np.ndarray:
    """Parse one WIDER submission file; returns (K, 5) float32 ``x y w h score``."""
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) < 2:
        raise ValueError(f"{source}: expected an image name line and a count line")
    try:
        count = int(float(lines[1]))
    except ValueError:
        raise ValueError(f"{source}: line 2 must be the number of faces, got {lines[1]!r}") from None
    rows = [ln for ln in lines[2:] if ln]
    if len(rows) != count:
        raise ValueError(f"{source}: says {count} faces but has {len(rows)} lines")
    out = np.zeros((count, 5), dtype=np.float32)
    for i, ln in enumerate(rows):
        vals = ln.split()
        if len(vals) < 5:
            raise ValueError(f"{source}: line {i + 3} needs x y w h score, got {ln!r}")
        out[i] = [float(v) for v in vals[:5]]
    return out


def submission_path(root: str | os.PathLike, name: str) -> Path:
    """``<root>/<event>/<stem>.txt`` for an image name."""
    key = image_key(name)
    if "/" not in key:
        raise ValueError(f"image name needs its event folder: {name!r}")
    return Path(root) / f"{key}.txt"


def _atomic_write(path: Path, text: str) -> None:
    from ..fileio import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def write_submission(predictions: Mapping[str, Any], out_dir: str | os.PathLike) -> int:
    """Write predictions in the standard WIDER layout ``<out_dir>/<event>/<stem>.txt``.

    Returns the number of files written.
    """
    for name, dets in predictions.items():
        _atomic_write(submission_path(out_dir, name), format_submission(name, dets))
    return len(predictions)


def read_submission(root: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a WIDER submission folder (``<event>/<stem>.txt``) -> ``{"<event>/<stem>": (K, 5)}``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder not found: {root}")
    out: dict[str, np.ndarray] = {}
    for path in sorted(root.glob("*/*.txt")):
        out[f"{path.parent.name}/{path.stem}"] = parse_submission(path.read_text(), str(path))
    return out


class PredictionCache:
    """Per-image predictions on disk in the WIDER submission layout, so an interrupted
    evaluation resumes. ``settings`` (model hash, input size, thresholds, ...) are stored in
    ``settings.json``; reopening with different settings is an error rather than a silent
    mix of two runs."""

    def __init__(self, root: str | os.PathLike, settings: Mapping[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.settings = json.loads(json.dumps(dict(settings or {}), sort_keys=True))
        meta = self.root / "settings.json"
        if meta.is_file():
            old = json.loads(meta.read_text())
            if old != self.settings:
                diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
                raise ValueError(
                    f"prediction cache {self.root} was written with other settings (differ in {diff}); "
                    "use another cache folder or delete this one"
                )
        else:
            _atomic_write(meta, json.dumps(self.settings, indent=1, sort_keys=True) + "\n")

    def get(self, name: str) -> np.ndarray | None:
        path = submission_path(self.root, name)
        if not path.is_file():
            return None
        return parse_submission(path.read_text(), str(path))

    def put(self, name: str, dets: np.ndarray) -> None:
        _atomic_write(submission_path(self.root, name), format_submission(name, dets))


# --------------------------------------------------------------------------- running a detector


DetectFn = Callable[[np.ndarray], Any]


def _as_points(points: Any, n: int) -> np.ndarray:
    a = np.asarray(points, dtype=np.float32)
    if a.size == 0:
        return np.zeros((n, 5, 2), dtype=np.float32) if n == 0 else a.reshape(n, 0, 2)
    return a.reshape(n, -1, 2)


def detections_to_arrays(out: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Normalise a detector's output to ``(boxes xyxy (K,4), scores (K,), landmarks (K,5,2) | None)``.

    Accepted: a tuple ``(boxes, scores)`` or ``(boxes, scores, landmarks)``, or a list of
    objects with ``box``, ``score`` and optionally ``landmarks`` (e.g. :class:`facelite.Face`).
    """
    if isinstance(out, tuple) and len(out) in (2, 3) and not hasattr(out[0], "box"):
        boxes = np.asarray(out[0], dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(out[1], dtype=np.float32).reshape(-1)
        lms = None
        if len(out) == 3 and out[2] is not None:
            lms = _as_points(out[2], len(boxes))
    else:
        faces = list(out)
        boxes = np.asarray([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
        scores = np.asarray([f.score for f in faces], dtype=np.float32).reshape(-1)
        lms = None
        if faces and getattr(faces[0], "landmarks", None) is not None:
            lms = _as_points([f.landmarks for f in faces], len(faces))
    if len(boxes) != len(scores):
        raise ValueError(f"detector returned {len(boxes)} boxes but {len(scores)} scores")
    return boxes, scores, lms


def to_wider_predictions(
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    max_faces: int = EVAL_MAX_FACES,
    scale: float = 1.0,
) -> np.ndarray:
    """``xyxy + score`` -> (K, 5) float32 ``x y w h score``, thresholded, the ``max_faces`` best,
    sorted by descending score; coordinates divided by ``scale`` (stored/original size)."""
    keep = scores >= score_threshold
    b, s = boxes_xyxy[keep].astype(np.float64), scores[keep]
    order = np.argsort(-s, kind="stable")[:max_faces]
    b, s = b[order] / scale, s[order]
    out = np.empty((len(s), 5), dtype=np.float32)
    out[:, 0:2] = b[:, 0:2]
    out[:, 2:4] = b[:, 2:4] - b[:, 0:2]
    out[:, 4] = s
    return out


def read_bgr(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image as BGR uint8 HxWx3, ignoring EXIF orientation (the annotations are on
    the stored pixel grid); the size limit of :func:`facelite.load_image` applies."""
    import cv2

    from ..imageio import check_image_header, quiet_decoders

    try:  # decoded from bytes: OpenCV crashes on file names that are not UTF-8
        data = np.fromfile(path, np.uint8)
    except OSError:
        raise FileNotFoundError(f"cannot read image: {path}") from None
    check_image_header(data.tobytes(), max_pixels, str(path))
    with quiet_decoders():
        img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise FileNotFoundError(f"cannot read image: {path}")
    return img


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class DetectionRun:
    """Predictions of :func:`run_detector_on_split` and how long they took."""

    predictions: dict[str, np.ndarray]
    num_images: int
    num_computed: int
    detect_seconds: float
    wall_seconds: float

    @property
    def images_per_second(self) -> float:
        """Detector throughput on the images computed in this run (cached ones excluded;
        image decoding excluded)."""
        return self.num_computed / self.detect_seconds if self.detect_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_images": self.num_images,
            "num_computed": self.num_computed,
            "detect_seconds": round(self.detect_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "images_per_second": round(self.images_per_second, 3) if self.num_computed else None,
        }


def run_detector_on_split(
    detect_fn: DetectFn,
    split_dir: str | os.PathLike | None = None,
    image_list: Iterable[str] | None = None,
    *,
    score_threshold: float = EVAL_SCORE_THRESHOLD,
    max_faces: int = EVAL_MAX_FACES,
    cache_dir: str | os.PathLike | None = None,
    cache_settings: Mapping[str, Any] | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    desc: str = "detect",
) -> DetectionRun:
    """Run ``detect_fn`` on every image of a split and collect WIDER predictions.

    Args:
        detect_fn: ``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,)[, landmarks])``
            or ``-> list of faces`` (objects with ``box`` and ``score``), in the image's pixels.
            The detector should already use the evaluation settings (score threshold 0.02,
            NMS 0.4); the threshold and the ``max_faces`` cap are applied again here.
        split_dir: folder with ``images.txt`` and ``images/<event>/<name>``
            (default ``<shared>/data/widerface/dev``).
        image_list: names to run (default: the split's ``images.txt``).
        cache_dir: keep per-image predictions here (WIDER submission layout + settings.json)
            and reuse them: an interrupted run resumes where it stopped.
        cache_settings: what identifies the detector (model hash, input size, ...); a cache
            written with other settings is refused.
        limit: only the first ``limit`` images (smoke tests).

    If the split's ``images.tsv`` says an image was stored rescaled, the boxes are mapped back
    to the original image's pixels (the ground truth's coordinates).
    """
    split_dir = Path(split_dir) if split_dir is not None else default_split_dir()
    names = read_image_list(split_dir if image_list is None else image_list)
    if limit is not None:
        names = names[:limit]
    scales = read_image_scales(split_dir)
    cache = PredictionCache(cache_dir, cache_settings) if cache_dir is not None else None
    preds: dict[str, np.ndarray] = {}
    detect_s = 0.0
    computed = 0
    t0 = time.perf_counter()
    with Progress(total=len(names), desc=desc, unit="img", enabled=show_progress) as bar:
        for name in names:
            key = image_key(name)
            cached = cache.get(key) if cache is not None else None
            if cached is not None:
                preds[key] = cached
                bar.update(1)
                continue
            img = read_bgr(split_dir / "images" / name, max_pixels)
            t = time.perf_counter()
            out = detect_fn(img)
            detect_s += time.perf_counter() - t
            boxes, scores, _ = detections_to_arrays(out)
            dets = to_wider_predictions(boxes, scores, score_threshold, max_faces, scales.get(key, 1.0))
            preds[key] = dets
            computed += 1
            if cache is not None:
                cache.put(key, dets)
            bar.update(1)
    return DetectionRun(
        predictions=preds,
        num_images=len(names),
        num_computed=computed,
        detect_seconds=detect_s,
        wall_seconds=time.perf_counter() - t0,
    )


def as_detect_fn(detector: Any) -> DetectFn:
    """A ``detect_fn`` from a detector object: its ``detect_arrays`` method (e.g.
    :class:`facelite.FaceDetector`), else ``detect``, else the object itself if callable."""
    for attr in ("detect_arrays", "detect"):
        fn = getattr(detector, attr, None)
        if callable(fn):
            return fn
    if callable(detector):
        return detector
    raise TypeError(f"{type(detector).__name__} is neither callable nor has detect_arrays/detect")


def evaluate_detector(
    detector: Any,
    split_dir: str | os.PathLike | None = None,
    *,
    gt_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache_settings: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, float]:
    """Run a detector on a split and return its AP per subset (``{"easy": .., "medium": .., "hard": ..}``).

    ``detector``: a :class:`facelite.FaceDetector` built with the evaluation settings
    (``score_threshold=0.02, nms_threshold=0.4``) or any ``detect_fn`` (see
    :func:`run_detector_on_split`). The full result is :func:`evaluate_widerface`'s.
    """
    split_dir = Path(split_dir) if split_dir is not None else default_split_dir()
    run = run_detector_on_split(
        as_detect_fn(detector), split_dir, cache_dir=cache_dir, cache_settings=cache_settings,
        show_progress=show_progress,
    )
    return evaluate_widerface(run.predictions, gt_dir, split_dir).ap
