"""Teacher detectors for pseudo-labels (NumPy + ONNX Runtime; no torch).

Teachers (see ``../shared/peers/README.md``): RetinaFace-mnet0.25 (MIT), YuNet (Apache-2.0) and
SCRFD-2.5GF (InsightFace, non-commercial research only: allowed because every facelite weight is
non-commercial through WIDER FACE anyway; NOTICE must name SCRFD / InsightFace as soon as a
*shipped* weight learnt from it). YOLO5Face (GPL) must never be used here.

Teachers run at the image's own resolution, padded bottom/right to a multiple of 32,
and return ``(boxes (K, 4) xyxy, scores (K,), landmarks (K, 5, 2))`` in image pixels,
sorted by score, after NMS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..anchors import anchors_for
from ..codec import decode_boxes, decode_landmarks, encode_landmarks
from ..nms import box_iou, nms
from ..paths import shared_dir
from ..spec import ModelSpec
from .match import cxcywh_to_xyxy

RETINAFACE_PATH = "peers/retinaface_mnet025/retinaface_mnet025.onnx"
YUNET_PATH = "peers/yunet/yunet_n_dynamic.onnx"
SCRFD_PATH = "peers/scrfd/scrfd_2.5g_bnkps.onnx"
ALLOWED_TEACHERS = ("retinaface", "yunet", "scrfd")
ANCHOR_TEACHERS = ("retinaface", "yunet", "retinaface+yunet", "scrfd")
"""Per-anchor distillation teachers (``model.teacher``): RetinaFace's own outputs (same anchors as
facelite), YuNet's or SCRFD-2.5GF's candidates projected onto the student's anchors, or the mean
of RetinaFace and YuNet."""
FEATURE_TEACHERS = ("retinaface", "retinaface+yunet")  # those that also give SSH features to mimic
TEACHER_PATHS = {"retinaface": RETINAFACE_PATH, "yunet": YUNET_PATH, "scrfd": SCRFD_PATH}  # relative to shared


def teacher_files(name: str) -> list[str]:
    """The peer files (relative to the shared folder) an anchor teacher ``name`` needs."""
    return [TEACHER_PATHS[part] for part in name.split("+")]


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"teacher model not found: {path} (set FACELITE_SHARED)")
    return path


def _session(model: Path | bytes, threads: int) -> ort.InferenceSession:
    """A CPU session of an ONNX file (or of a serialised model) with ``threads`` threads."""
    if isinstance(model, Path):
        model = str(_require(model))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def _pad32(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    out = np.zeros((ph, pw, 3), np.float32)
    out[:h, :w] = image
    return out


def _check_crop(image: np.ndarray) -> tuple[int, int]:
    """(H, W) of a training crop for a per-anchor teacher: uint8 (H, W, 3), H and W multiples of 32."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[0] % 32 or image.shape[1] % 32:
        raise ValueError(f"teacher input must be uint8 (H, W, 3) with H, W multiples of 32, got "
                         f"{image.dtype} {image.shape}")
    return image.shape[0], image.shape[1]


def _log_probs(face: np.ndarray) -> np.ndarray:
    """Face probabilities (N,) -> float32 (N, 2) log-probabilities [background, face]."""
    p = np.clip(face, 1e-6, 1 - 1e-6)
    return np.stack([np.log1p(-p), np.log(p)], axis=1).astype(np.float32)


def _finish(boxes, scores, lmks, h, w, score_threshold, nms_threshold):
    keep = nms(boxes, scores, nms_threshold)
    boxes, scores, lmks = boxes[keep], scores[keep], lmks[keep]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return boxes, scores, lmks


class RetinaFaceTeacher:
    """RetinaFace-mnet0.25 (MIT): BGR minus (104, 117, 123); same priors and coding as facelite."""

    spec = ModelSpec(name="retinaface-mnet0.25", alpha=0.25, channel_order="BGR",
                     mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0))

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.session = _session(Path(path) if path else shared_dir() / RETINAFACE_PATH, threads)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, image: np.ndarray, score_threshold: float = 0.5, nms_threshold: float = 0.4):
        h, w = image.shape[:2]
        x = _pad32(image) - np.asarray(self.spec.mean, np.float32)
        loc, conf, lmk = self.session.run(None, {self.input: x.transpose(2, 0, 1)[None]})
        scores = conf[0, :, 1]
        idx = np.flatnonzero(scores > score_threshold)
        anchors = anchors_for(self.spec, x.shape[0], x.shape[1])[idx]
        boxes = decode_boxes(loc[0, idx], anchors, self.spec.variances)
        lmks = decode_landmarks(lmk[0, idx], anchors, self.spec.variances)
        return _finish(boxes, scores[idx], lmks, h, w, score_threshold, nms_threshold)


class YuNetTeacher:
    """YuNet-n (Apache-2.0): BGR 0..255 input, one prior per cell at strides 8, 16, 32."""

    strides = (8, 16, 32)

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.session = _session(Path(path) if path else shared_dir() / YUNET_PATH, threads)
        self.input = self.session.get_inputs()[0].name
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, image: np.ndarray, score_threshold: float = 0.5, nms_threshold: float = 0.4):
        h, w = image.shape[:2]
        boxes, scores, lmks = self.candidates(image, score_threshold)
        return _finish(boxes, scores, lmks, h, w, score_threshold, nms_threshold)

    def candidates(self, image: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every prior scoring above ``score_threshold``, before NMS: boxes (K, 4) xyxy, scores (K,),
        landmarks (K, 5, 2), float32, in pixels of ``image`` (BGR, H x W x 3; not clipped)."""
        x = _pad32(image)
        outs = dict(zip(self.names, self.session.run(None, {self.input: x.transpose(2, 0, 1)[None]})))
        all_b, all_s, all_l = [], [], []
        for s in self.strides:
            cols = x.shape[1] // s
            cls, obj = outs[f"cls_{s}"][0], outs[f"obj_{s}"][0]
            score = np.sqrt(np.clip(cls[:, 0], 0, 1) * np.clip(obj[:, 0], 0, 1))
            idx = np.flatnonzero(score > score_threshold)
            g = np.stack([idx % cols, idx // cols], axis=1).astype(np.float32)
            bb, kp = outs[f"bbox_{s}"][0][idx], outs[f"kps_{s}"][0][idx]
            centre = (g + bb[:, :2]) * s
            size = np.exp(bb[:, 2:4]) * s
            all_b.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            all_s.append(score[idx])
            all_l.append((g[:, None, :] + kp.reshape(-1, 5, 2)) * s)
        boxes = np.concatenate(all_b).astype(np.float32)
        scores = np.concatenate(all_s).astype(np.float32)
        lmks = np.concatenate(all_l).astype(np.float32)
        return boxes, scores, lmks


def scrfd_levels(outs: list[np.ndarray], height: int, width: int,
                 score_threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """SCRFD's nine outputs (scores, box distances, keypoints for strides 8, 16, 32) for an
    ``height x width`` input, decoded per stride: the priors scoring ``>= score_threshold`` as
    ``(boxes (K, 4) xyxy, scores (K,), landmarks (K, 5, 2))`` in input pixels, in prior order.
    Two priors per cell share its centre ``(gx * s, gy * s)``; boxes are distances (left, top,
    right, bottom) x s from it, landmarks offsets x s. (The benchmark adapter decodes with this too.)"""
    levels = []
    for i, s in enumerate(SCRFDTeacher.strides):
        gh, gw = height // s, width // s
        score = outs[i].reshape(-1)
        per_cell, rem = divmod(len(score), gh * gw)
        if rem or per_cell < 1:
            raise ValueError(f"stride {s}: {len(score)} scores for a {gh}x{gw} grid")
        idx = np.flatnonzero(score >= score_threshold)
        cell = idx // per_cell
        c = np.stack([cell % gw, cell // gw], axis=1).astype(np.float32) * s
        d = outs[i + 3].reshape(-1, 4)[idx] * s
        levels.append((np.concatenate([c - d[:, 0:2], c + d[:, 2:4]], axis=1),
                       score[idx], c[:, None, :] + outs[i + 6].reshape(-1, 5, 2)[idx] * s))
    return levels


class SCRFDTeacher:
    """SCRFD-2.5GF with keypoints (InsightFace; non-commercial): RGB ``(x - 127.5) / 128`` input,
    H and W multiples of 32 (padded bottom/right with black), nine outputs (scores, box distances,
    keypoints for strides 8, 16, 32), two priors per cell centred at ``(gx * s, gy * s)``."""

    strides = (8, 16, 32)

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        self.path = _require(Path(path) if path else shared_dir() / SCRFD_PATH)
        self.session = _session(self.path, threads)
        self.input = self.session.get_inputs()[0].name
        if len(self.session.get_outputs()) != 9:
            raise ValueError(f"{self.path}: expected 9 outputs (scores, boxes, keypoints x 3 strides)")

    def __call__(self, image: np.ndarray, score_threshold: float = 0.5, nms_threshold: float = 0.4):
        h, w = image.shape[:2]
        boxes, scores, lmks = self.candidates(image, score_threshold)
        order = np.argsort(-scores, kind="stable")
        boxes, scores, lmks = _finish(boxes[order], scores[order], lmks[order], h, w, score_threshold, nms_threshold)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # inside the image after clipping
        return boxes[ok], scores[ok], lmks[ok]

    def candidates(self, image: np.ndarray, score_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every prior scoring ``>= score_threshold``, before NMS: boxes (K, 4) xyxy, scores (K,),
        landmarks (K, 5, 2), float32, in pixels of ``image`` (BGR uint8, H x W x 3; not clipped)."""
        x = _pad32(image)
        h, w = image.shape[:2]
        x[:h, :w] = x[:h, :w, ::-1]  # BGR -> RGB (the padding is black in both)
        x = (x - 127.5) / 128.0
        outs = self.session.run(None, {self.input: x.transpose(2, 0, 1)[None].astype(np.float32)})
        levels = scrfd_levels(outs, x.shape[0], x.shape[1], score_threshold)
        all_b, all_s, all_l = ([lvl[k] for lvl in levels] for k in range(3))
        boxes = np.concatenate(all_b).astype(np.float32).reshape(-1, 4)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # low scores give some inverted boxes
        return (boxes[ok], np.concatenate(all_s).astype(np.float32)[ok],
                np.concatenate(all_l).astype(np.float32).reshape(-1, 5, 2)[ok])


class AnchorTeacher:
    """RetinaFace-mnet0.25's raw per-anchor outputs, as soft targets for distillation.

    Its priors and box/landmark coding are those of facelite's default geometry (strides 8, 16, 32,
    sizes 16-512, variances 0.1 / 0.2), so its outputs line up with the student's anchors one to
    one. The ONNX session is created on first use, so the object can be sent to data-loader
    worker processes.
    """

    feature_channels = 64  # RetinaFace-mnet0.25's SSH outputs

    def __init__(self, path: str | Path | None = None, threads: int = 1, features: bool = False) -> None:
        self.path = _require(Path(path) if path else shared_dir() / RETINAFACE_PATH)  # fail here, not in a worker
        self.threads = threads
        self.features = features
        self._session: ort.InferenceSession | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "threads": self.threads, "features": self.features, "_session": None}

    def _open(self) -> None:
        model = _with_head_inputs(self.path) if self.features else self.path
        self._session = _session(model, self.threads)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        """``image``: BGR uint8 (H, W, 3), H and W multiples of 32 (a training crop).

        Returns ``(log-probabilities (N, 2) [background, face], landmark offsets (N, 10))``,
        float32, for the N anchors of :func:`facelite.anchors.make_anchors` at (H, W), landmark
        offsets encoded as the student's (x1 y1 ... x5 y5, variance 0.1). With ``features``, then
        the SSH outputs its heads read, float16 (64, H / s, W / s) for s = 8, 16, 32.
        """
        _check_crop(image)
        if self._session is None:
            self._open()
        x = image.astype(np.float32) - np.asarray(RetinaFaceTeacher.spec.mean, np.float32)
        out = self._session.run(None, {self._input: x.transpose(2, 0, 1)[None]})
        conf, lmk = out[1], out[2]
        logp = np.log(np.clip(conf[0], 1e-7, 1.0)).astype(np.float32)
        result = (logp, np.ascontiguousarray(lmk[0], dtype=np.float32))
        if self.features:
            result += tuple(f[0].astype(np.float16) for f in out[3:])
        return result


class ProjectedTeacher:
    """YuNet-n (Apache-2.0, anchor-free) or SCRFD-2.5GF (``model="scrfd"``) as a per-anchor
    distillation teacher.

    Its candidates (every prior scoring over ``min_score``, before NMS) are matched to the
    student's anchors as ground truth is (IoU >= ``positive_iou``): an anchor's face probability
    is the highest score among the candidates it matches (0 when none), its landmark offsets are
    those of that candidate, encoded like the student's (NaN when none: no landmark target).
    Same interface as :class:`AnchorTeacher` (without features); the ONNX session is created on
    first use, so the object can be sent to data-loader workers.
    """

    feature_channels = None

    def __init__(self, spec: ModelSpec, path: str | Path | None = None, threads: int = 1,
                 min_score: float = 0.02, positive_iou: float = 0.35, model: str = "yunet") -> None:
        if model not in ("yunet", "scrfd"):
            raise ValueError(f"projected teachers: yunet or scrfd, got {model!r}")
        self.spec = spec
        self.model = model
        self.path = _require(Path(path) if path else shared_dir() / TEACHER_PATHS[model])
        self.threads = threads
        self.min_score = min_score
        self.positive_iou = positive_iou
        self._yunet: YuNetTeacher | SCRFDTeacher | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_yunet": None}

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``image``: BGR uint8 (H, W, 3), H and W multiples of 32. Returns ``(log-probabilities
        (N, 2) [background, face], landmark offsets (N, 10))`` float32 for the student's N anchors."""
        h, w = _check_crop(image)
        if self._yunet is None:
            self._yunet = (YuNetTeacher if self.model == "yunet" else SCRFDTeacher)(self.path, self.threads)
        boxes, scores, lmks = self._yunet.candidates(image, self.min_score)
        anchors = anchors_for(self.spec, h, w)
        prob = np.zeros(len(anchors), np.float32)
        offsets = np.full((len(anchors), 2 * lmks.shape[1] if len(lmks) else 10), np.nan, np.float32)
        if len(boxes):
            iou = box_iou(cxcywh_to_xyxy(anchors), boxes)  # (N, K)
            weighted = np.where(iou >= self.positive_iou, scores[None, :], 0.0)
            best = weighted.argmax(axis=1)
            prob = weighted[np.arange(len(anchors)), best].astype(np.float32)
            hit = prob > 0
            offsets[hit] = encode_landmarks(lmks[best[hit]], anchors[hit], self.spec.variances)
        return _log_probs(prob), offsets


class EnsembleTeacher:
    """The mean of RetinaFace's and YuNet's per-anchor face probabilities; landmarks (and SSH
    features, with ``features``) from RetinaFace."""

    feature_channels = AnchorTeacher.feature_channels

    def __init__(self, spec: ModelSpec, threads: int = 1, features: bool = False) -> None:
        self.retinaface = AnchorTeacher(threads=threads, features=features)
        self.yunet = ProjectedTeacher(spec, threads=threads)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        rf = self.retinaface(image)
        yn_logp, _ = self.yunet(image)
        return (_log_probs((np.exp(rf[0][:, 1]) + np.exp(yn_logp[:, 1])) / 2), *rf[1:])


def _with_head_inputs(path: Path) -> bytes:
    """The RetinaFace ONNX file, serialised with extra outputs: the tensors its class heads read
    (the SSH outputs, strides 8, 16, 32 in the order of the heads ``ClassHead.0..2``)."""
    import onnx

    model = onnx.load(str(path))
    heads = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1].startswith("ClassHead."):
            heads[int(node.input[1].split(".")[1])] = node.input[0]
    names = [heads[i] for i in sorted(heads)]
    if len(names) != 3:
        raise ValueError(f"{path}: expected 3 class heads (ClassHead.0..2), found {len(names)}")
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    return model.SerializeToString()


def make_teacher(name: str, threads: int = 1):
    if name == "retinaface":
        return RetinaFaceTeacher(threads=threads)
    if name == "yunet":
        return YuNetTeacher(threads=threads)
    if name == "scrfd":
        return SCRFDTeacher(threads=threads)
    raise ValueError(f"teacher must be one of {ALLOWED_TEACHERS} (licence-cleared), got {name!r}")


def teacher_checksum(name: str) -> str:
    """The SHA-256 of a teacher's ONNX file (the key of precomputed teacher outputs)."""
    import hashlib

    h = hashlib.sha256()
    with open(_require(shared_dir() / TEACHER_PATHS[name]), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_anchor_teacher(name: str, spec: ModelSpec, threads: int = 1,
                        features: bool = False) -> AnchorTeacher | ProjectedTeacher | EnsembleTeacher:
    """A licence-cleared peer (or two) as a per-anchor distillation teacher for a student with
    ``spec`` (``features``: also RetinaFace's SSH outputs, see :class:`AnchorTeacher`)."""
    if name not in ANCHOR_TEACHERS:
        raise ValueError(f"anchor teachers: {ANCHOR_TEACHERS}, got {name!r}")
    if features and name not in FEATURE_TEACHERS:
        raise ValueError(f"feature distillation needs a teacher in {FEATURE_TEACHERS}, got {name!r}")
    if name in ("yunet", "scrfd"):
        return ProjectedTeacher(spec, threads=threads, model=name)
    t = RetinaFaceTeacher.spec
    if (t.strides, t.min_sizes, t.variances) != (spec.strides, spec.min_sizes, spec.variances):
        raise ValueError(f"{name}'s anchors/coding differ from the student's geometry")
    if name == "retinaface+yunet":
        return EnsembleTeacher(spec, threads=threads, features=features)
    return AnchorTeacher(threads=threads, features=features)
