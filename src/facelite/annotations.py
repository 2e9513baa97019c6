"""Face annotations: readers for the WIDER FACE text format, the RetinaFace ``label.txt`` format,
COCO face annotations and the 5-landmark face crops, and the :class:`Sample` they produce.

Coordinates everywhere are pixels of the image as stored on disk, boxes ``x1 y1 x2 y2``,
landmarks (N, 5, 2) in :data:`facelite.spec.LANDMARK_NAMES` order.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One training image's labels.

    Attributes:
        path: image file.
        boxes: float32 (N, 4) xyxy.
        landmarks: float32 (N, 5, 2); rows with ``has_landmarks == False`` are zeros.
        has_landmarks: bool (N,).
        ignore: bool (N,), faces that neither count nor are errors when evaluating (WIDER's
            ``invalid`` faces read with ``invalid="ignore"``); training never sees them set.
    """

    path: Path
    boxes: np.ndarray
    landmarks: np.ndarray = field(default=None)  # type: ignore[assignment]
    has_landmarks: np.ndarray = field(default=None)  # type: ignore[assignment]
    ignore: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.boxes)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(n, 4)
        if self.landmarks is None:
            self.landmarks = np.zeros((n, 5, 2), np.float32)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, 5, 2)
        if self.has_landmarks is None:
            self.has_landmarks = np.zeros(n, bool)
        self.has_landmarks = np.asarray(self.has_landmarks, dtype=bool).reshape(n)
        if self.ignore is None:
            self.ignore = np.zeros(n, bool)
        self.ignore = np.asarray(self.ignore, dtype=bool).reshape(n)

    def without_ignored(self) -> Sample:
        """This image without its ignore faces (training treats what is left unlabelled as background)."""
        if not self.ignore.any():
            return self
        keep = ~self.ignore
        return Sample(self.path, self.boxes[keep], self.landmarks[keep], self.has_landmarks[keep], self.ignore[keep])


@dataclass
class DropCounts:
    """Faces dropped while reading, by reason (logged once per file)."""

    invalid: int = 0
    degenerate: int = 0
    kept: int = 0
    ignored: int = 0  # marked invalid, kept as "ignore" faces

    def log(self, source: str) -> None:
        ignored = f" ({self.ignored} marked invalid, kept as ignore faces)" if self.ignored else ""
        log.info(
            "%s: kept %d faces%s, dropped %d marked invalid and %d degenerate (w or h <= 0, non-finite)",
            source, self.kept, ignored, self.invalid, self.degenerate,
        )


def _numbers(line: str, where: str) -> list[float]:
    try:
        return [float(t) for t in line.split()]
    except ValueError:
        raise ValueError(f"{where}: expected numbers, got {line.strip()!r}") from None


def _valid_box(x: float, y: float, w: float, h: float) -> bool:
    return all(math.isfinite(v) for v in (x, y, w, h)) and w > 0 and h > 0


def read_wider_txt(gt_file: str | Path, image_root: str | Path, keep_empty: bool = True,
                   invalid: str = "drop") -> list[Sample]:
    """Read the official WIDER FACE ``wider_face_*_bbx_gt.txt`` format.

    Each record: image path (relative to ``image_root``), face count, then one line per face
    ``x y w h blur expression illumination invalid occlusion pose`` (a 0-face image has one
    line of zeros). Degenerate boxes are dropped and faces flagged ``invalid`` are dropped
    (``invalid="drop"``, for training) or kept with ``Sample.ignore`` set (``"ignore"``, for
    evaluation); both are counted in the log.
    """
    if invalid not in ("drop", "ignore"):
        raise ValueError(f"invalid must be 'drop' or 'ignore', got {invalid!r}")
    gt_file, image_root = Path(gt_file), Path(image_root)
    lines = [ln.strip() for ln in gt_file.read_text().splitlines()]
    samples: list[Sample] = []
    counts = DropCounts()
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name = lines[i]
        try:
            n = int(lines[i + 1])
        except (IndexError, ValueError) as exc:
            raise ValueError(f"{gt_file}:{i + 2}: expected a face count after {name!r}") from exc
        rows = lines[i + 2 : i + 2 + max(n, 1)]
        i += 2 + max(n, 1)
        boxes, ignore = [], []
        for row in rows[:n]:
            v = _numbers(row, f"{gt_file}: face line of {name}")
            if len(v) < 4:
                raise ValueError(f"{gt_file}: malformed face line {row!r} for {name}")
            x, y, w, h = v[:4]
            if not _valid_box(x, y, w, h):
                counts.degenerate += 1
                continue
            flagged = len(v) >= 8 and int(v[7]) == 1
            if flagged and invalid == "drop":
                counts.invalid += 1
                continue
            counts.kept += 1
            counts.ignored += flagged
            boxes.append([x, y, x + w, y + h])
            ignore.append(flagged)
        if boxes or keep_empty:
            samples.append(Sample(image_root / name, np.asarray(boxes, np.float32).reshape(-1, 4), ignore=ignore))
    counts.log(str(gt_file))
    return samples


def read_retinaface_labels(label_file: str | Path, image_root: str | Path | None = None) -> list[Sample]:
    """Read the RetinaFace training ``label.txt`` format.

    ``# <path>`` starts an image (path relative to ``image_root``, default: the label file's
    folder + ``images/``); each following line is ``x y w h`` then 5 × ``(x y flag)`` then a
    score; landmark values of ``-1`` mean "no landmarks for this face". Degenerate boxes are
    dropped (counted in the log).
    """
    label_file = Path(label_file)
    root = Path(image_root) if image_root is not None else label_file.parent / "images"
    samples: list[Sample] = []
    counts = DropCounts()
    cur: tuple[Path, list, list, list] | None = None

    def flush() -> None:
        if cur is not None:
            path, b, lm, m = cur
            samples.append(Sample(path, np.asarray(b, np.float32).reshape(-1, 4),
                                  np.asarray(lm, np.float32).reshape(-1, 5, 2), np.asarray(m, bool)))

    for lineno, raw in enumerate(label_file.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            flush()
            cur = (root / line[1:].strip(), [], [], [])
            continue
        if cur is None:
            raise ValueError(f"{label_file}:{lineno}: face line before any '# path' line")
        v = _numbers(line, f"{label_file}:{lineno}")
        if len(v) < 4:
            raise ValueError(f"{label_file}:{lineno}: expected at least 'x y w h', got {line!r}")
        x, y, w, h = v[:4]
        if not _valid_box(x, y, w, h):
            counts.degenerate += 1
            continue
        pts = np.zeros((5, 2), np.float32)
        has = len(v) >= 19
        if has:
            p = np.asarray(v[4:19], np.float32).reshape(5, 3)
            has = bool(np.all(p[:, :2] >= 0))
            pts = p[:, :2] if has else pts
        cur[1].append([x, y, x + w, y + h])
        cur[2].append(pts)
        cur[3].append(has)
        counts.kept += 1
    flush()
    counts.log(str(label_file))
    return samples


def read_coco_labels(coco_file: str | Path, image_root: str | Path | None = None) -> list[Sample]:
    """Read a COCO file of face boxes (from an annotation tool's export, or ``facelite detect --coco``).

    ``images`` give the files (``file_name`` relative to ``image_root``, default the COCO file's
    folder; absolute names stay as they are); ``annotations`` of the face category (the only
    category, or the one named ``face``) give ``bbox`` ``[x, y, w, h]`` and, when all five are
    labelled (visibility > 0), ``keypoints`` in :data:`facelite.spec.LANDMARK_NAMES` order (or in
    the order the category's ``keypoints`` names give, when they are those five names).
    ``iscrowd`` faces are kept as ignore faces; degenerate boxes are dropped (counted in the log).
    Images without faces are kept (they teach what is not a face).
    """
    import json

    coco_file = Path(coco_file)
    root = Path(image_root) if image_root is not None else coco_file.parent
    try:
        return _coco_samples(json.loads(coco_file.read_text(encoding="utf-8")), root, str(coco_file))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{coco_file}: not a COCO file of face boxes (missing or malformed {exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{coco_file}: not valid JSON ({exc})") from None


def _coco_samples(data: dict, root: Path, source: str) -> list[Sample]:
    from .spec import LANDMARK_NAMES

    images, annotations, categories = data["images"], data.get("annotations", []), data.get("categories", [])
    faces = [c for c in categories if str(c.get("name", "")).lower() == "face"] or categories
    if len(faces) != 1:
        raise ValueError(f"{source}: which category holds the faces? none is named 'face' among "
                         f"{[c.get('name') for c in categories]}")
    category = faces[0]
    names = list(category.get("keypoints") or [])
    order = [names.index(n) for n in LANDMARK_NAMES] if sorted(names) == sorted(LANDMARK_NAMES) else list(range(5))
    rows: dict[int, list[tuple[list[float], np.ndarray | None, bool]]] = {int(im["id"]): [] for im in images}
    counts = DropCounts()
    for a in annotations:
        if a.get("category_id", category.get("id")) != category.get("id"):
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        if not _valid_box(x, y, w, h):
            counts.degenerate += 1
            continue
        kp = np.asarray(a.get("keypoints") or [], np.float32)
        pts = None
        if kp.size >= 15:
            kp = kp[: 3 * (kp.size // 3)].reshape(-1, 3)
            if len(kp) >= 5 and np.all(kp[order, 2] > 0):
                pts = kp[order, :2]
        crowd = bool(a.get("iscrowd", 0))
        counts.kept += 1
        counts.ignored += crowd
        rows.setdefault(int(a["image_id"]), []).append(([x, y, x + w, y + h], pts, crowd))
    samples = []
    for im in images:
        r = rows[int(im["id"])]
        lms = np.asarray([p if p is not None else np.zeros((5, 2), np.float32) for _, p, _ in r], np.float32)
        samples.append(Sample(root / im["file_name"], np.asarray([b for b, _, _ in r], np.float32).reshape(-1, 4),
                              lms.reshape(-1, 5, 2), [p is not None for _, p, _ in r], [c for _, _, c in r]))
    counts.log(source)
    return samples


def read_labels(path: str | Path, image_root: str | Path | None = None, fmt: str = "auto",
                invalid: str = "drop") -> list[Sample]:
    """Labelled images from any of the three formats: ``"retinaface"`` (``label.txt``, images under
    ``<label folder>/images`` by default), ``"wider"`` (``*_bbx_gt.txt``, same default; ``invalid``
    faces dropped or, with ``invalid="ignore"``, kept as ignore faces) or ``"coco"`` (a JSON file,
    images relative to its folder by default). ``"auto"``: COCO for a file that starts with ``{``,
    RetinaFace when the first non-blank line starts with ``#``, else WIDER."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    if fmt == "auto":
        with open(path, encoding="utf-8") as f:
            first = next((ln.strip() for ln in f if ln.strip()), "")
        fmt = "coco" if first.startswith("{") else "retinaface" if first.startswith("#") else "wider"
    if fmt == "coco":
        return read_coco_labels(path, image_root)
    root = Path(image_root) if image_root is not None else path.parent / "images"
    if fmt == "retinaface":
        return read_retinaface_labels(path, root)
    if fmt == "wider":
        return read_wider_txt(path, root, keep_empty=True, invalid=invalid)
    raise ValueError(f"unknown label format {fmt!r} (auto, retinaface, wider or coco)")


def write_retinaface_labels(samples: list[Sample], label_file: str | Path, image_root: str | Path,
                            scores: list[np.ndarray] | None = None) -> None:
    """Write ``samples`` in the RetinaFace ``label.txt`` format (paths relative to ``image_root``)."""
    label_file = Path(label_file)
    label_file.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for k, s in enumerate(samples):
        out.append(f"# {Path(s.path).relative_to(image_root).as_posix()}")
        for j, (b, pts, has) in enumerate(zip(s.boxes, s.landmarks, s.has_landmarks)):
            vals = [b[0], b[1], b[2] - b[0], b[3] - b[1]]
            for x, y in pts:
                vals += [x, y, 0.0] if has else [-1.0, -1.0, -1.0]
            vals.append(float(scores[k][j]) if scores is not None else 1.0)
            out.append(" ".join(f"{v:.2f}" for v in vals))
    from .fileio import write_atomic

    write_atomic(label_file, "\n".join(out) + "\n")


@dataclass
class LandmarkCrop:
    """A face crop with 5 landmarks (crop pixels) and an optional face box (crop pixels, xyxy).

    ``name`` is the crop's path as written in ``landmarks.txt`` (e.g. ``lfw_5590/X.jpg``): the key
    of the held-out split and of the crop-box file.
    """

    path: Path
    landmarks: np.ndarray
    box: np.ndarray | None = None
    name: str = ""


def read_landmark_crops(landmark_file: str | Path) -> list[LandmarkCrop]:
    """Read ``landmarks.txt`` of ``../shared/data/landmarks5`` (see
    :func:`facelite.evaluation.landmarks.read_landmarks_file`) into crops."""
    from .evaluation.landmarks import read_landmarks_file

    landmark_file = Path(landmark_file)
    names, points = read_landmarks_file(landmark_file)
    return [LandmarkCrop(landmark_file.parent / n, p, name=n) for n, p in zip(names, points)]
