"""Every detector the comparison knows: facelite's shipped models and the peers.

One :class:`Entry` per row family of the comparison table. ``Entry.build(input_size, ...)`` makes
the detector (an adapter from :mod:`benchmarks.adapters`): a callable
``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2) or None)`` in
original-image pixels, with ``name``, ``model_path`` and ``settings()``.

Names are what ``--models`` takes (``python -m benchmarks.peers``, ``python -m
benchmarks.eval_peer``); :data:`GROUPS` are shorthands for several.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENTRIES", "GROUPS", "Entry", "entries", "select"]

SIZES: tuple[int, ...] = (640, 320)


@dataclass(frozen=True)
class Entry:
    """One detector of the comparison.

    Attributes:
        name: the ``--models`` name, e.g. ``"yunet-n"``.
        label: the table's label.
        family: what it is (one licence per family).
        licence: of the weights, and whether they may be a teacher.
        files: the model file(s) (for size, parameters, and the cache key), resolved lazily.
        factory: ``(input_size, score_threshold, nms_threshold, threads, interpolation) -> detector``.
        sizes: input sizes it runs at (fixed-input models: only their own).
        landmarks: 5, or 0 for boxes only.
        note: e.g. the fixed input, shown in the table.
        requires: importable modules the adapter needs beyond the development install (e.g.
            ``ai_edge_litert`` for the ``.tflite`` peers); without them building it raises
            :class:`benchmarks.common.MissingDependencyError`.
    """

    name: str
    label: str
    family: str
    licence: str
    files: Callable[[], list[Path]]
    factory: Callable[..., Any]
    sizes: tuple[int, ...] = SIZES
    landmarks: int = 5
    note: str = ""
    facelite: bool = False
    interpolation: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()

    def build(
        self,
        input_size: int,
        score_threshold: float = 0.02,
        nms_threshold: float = 0.4,
        threads: int | None = 1,
        interpolation: int | str = "auto",
    ) -> Any:
        """The detector at ``input_size`` (``ValueError`` for a size a fixed-input model cannot take)."""
        if input_size not in self.sizes and len(self.sizes) == 1:
            raise ValueError(f"{self.name} has a fixed input ({self.note}): input size {self.sizes[0]} only")
        kw: dict[str, Any] = {"input_size": input_size, "score_threshold": score_threshold,
                              "nms_threshold": nms_threshold, "threads": threads}
        if self.interpolation:
            kw["interpolation"] = interpolation
        return self.factory(**kw)


# --------------------------------------------------------------------------- the peers


def _peer(rel: str) -> Callable[[], list[Path]]:
    def files() -> list[Path]:
        from .common import peers_dir

        return [peers_dir() / rel]

    return files


def _retinaface(**kw: Any) -> Any:
    from .adapters.retinaface_mnet025 import RetinaFaceMnet025

    return RetinaFaceMnet025(**kw)


def _yunet(variant: str) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        from .adapters.yunet import YuNet

        return YuNet(variant, **kw)

    return make


def _yunet_cv2(**kw: Any) -> Any:
    from .adapters.yunet import YuNetOpenCV

    return YuNetOpenCV(**kw)


def _scrfd(variant: str) -> Callable[..., Any]:
    def make(**kw: Any) -> Any:
        from .adapters.scrfd import SCRFD

        return SCRFD(variant, **kw)

    return make


def _ultralight(**kw: Any) -> Any:
    from .adapters.ultralight import UltraLightRFB

    return UltraLightRFB(**kw)


def _mtcnn(**kw: Any) -> Any:
    from .adapters.mtcnn import MTCNN

    return MTCNN(**kw)


def _mtcnn_files() -> list[Path]:
    from .common import peers_dir

    return [peers_dir() / "mtcnn" / f"{n}.pt" for n in ("pnet", "rnet", "onet")]


def _yolo5face(**kw: Any) -> Any:
    from .adapters.yolo5face import YOLO5Face

    return YOLO5Face(**kw)


def _blazeface(variant: str) -> Callable[..., Any]:
    def make(input_size: int, **kw: Any) -> Any:
        # the table column (320) is not the network input (128 / 192): the adapter uses its own
        from .adapters.blazeface import BlazeFace

        return BlazeFace(variant, **kw)

    return make


_YUNET = "Apache-2.0 (may be a teacher)"
_SCRFD = "InsightFace: non-commercial research only (comparison only, not a teacher)"

PEERS: list[Entry] = [
    Entry("retinaface-mnet0.25", "RetinaFace-mnet0.25", "RetinaFace (PyTorch release)", "MIT (may be a teacher)",
          _peer("retinaface_mnet025/retinaface_mnet025.onnx"), _retinaface),
    Entry("yunet-n", "YuNet-n", "YuNet (libfacedetection)", _YUNET, _peer("yunet/yunet_n_dynamic.onnx"), _yunet("n")),
    Entry("yunet-s", "YuNet-s", "YuNet (libfacedetection)", _YUNET, _peer("yunet/yunet_s_dynamic.onnx"), _yunet("s")),
    Entry("yunet-s-opencv", "YuNet-s via cv2.FaceDetectorYN", "YuNet (libfacedetection)", _YUNET,
          _peer("yunet/face_detection_yunet_2026may.onnx"), _yunet_cv2, note="OpenCV's own pre/post-processing"),
    Entry("scrfd-0.5g", "SCRFD-0.5GF", "SCRFD (InsightFace)", _SCRFD, _peer("scrfd/scrfd_500m_bnkps.onnx"),
          _scrfd("0.5g")),
    Entry("scrfd-2.5g", "SCRFD-2.5GF", "SCRFD (InsightFace)", _SCRFD, _peer("scrfd/scrfd_2.5g_bnkps.onnx"),
          _scrfd("2.5g")),
    Entry("ultralight-rfb-320", "Ultra-Light RFB-320", "Ultra-Light-Fast-Generic-Face-Detector-1MB",
          "MIT (boxes only)", _peer("ultralight/version-RFB-320.onnx"), _ultralight, sizes=(320,), landmarks=0,
          note="fixed input 320x240, image stretched"),
    Entry("ultralight-rfb-640", "Ultra-Light RFB-640", "Ultra-Light-Fast-Generic-Face-Detector-1MB",
          "MIT (boxes only)", _peer("ultralight/version-RFB-640.onnx"), _ultralight, sizes=(640,), landmarks=0,
          note="fixed input 640x480, image stretched"),
    Entry("yolo5face-0.5g", "YOLO5Face-0.5GF", "YOLO5Face", "GPL-3.0 (comparison only, not a teacher)",
          _peer("yolo5face/yolo5face_500m_320x320.onnx"), _yolo5face, sizes=(320,),
          note="fixed input 320x320, letterboxed"),
    Entry("mtcnn", "MTCNN (facenet-pytorch weights)", "MTCNN", "MIT (may be a teacher)", _mtcnn_files, _mtcnn,
          note="cascade on PyTorch; own NMS; min face 20 px", requires=("torch",)),
    Entry("blazeface-short", "BlazeFace short-range 128", "BlazeFace (MediaPipe)", "Apache-2.0 (may be a teacher)",
          _peer("blazeface/face_detection_short_range.tflite"), _blazeface("short"), sizes=(320,), landmarks=0,
          note="fixed input 128x128, letterboxed; shown in the 320 column; for faces within about 2 m (selfie "
               "camera); boxes only (6 keypoints with one mouth point: no 5-point mapping); greedy NMS 0.4, "
               "MediaPipe's own is weighted NMS 0.3; TFLite (ai-edge-litert, XNNPACK)",
          requires=("ai_edge_litert",), extra={"network_input": 128}),
    Entry("blazeface-full", "BlazeFace full-range 192", "BlazeFace (MediaPipe)", "Apache-2.0 (may be a teacher)",
          _peer("blazeface/face_detection_full_range.tflite"), _blazeface("full"), sizes=(320,), landmarks=0,
          note="fixed input 192x192, letterboxed; shown in the 320 column; boxes only (6 keypoints with one mouth "
               "point: no 5-point mapping); greedy NMS 0.4, MediaPipe's own is weighted NMS 0.3; TFLite "
               "(ai-edge-litert, XNNPACK)",
          requires=("ai_edge_litert",), extra={"network_input": 192}),
]


# --------------------------------------------------------------------------- facelite's own


def _facelite_entries() -> list[Entry]:
    from facelite.models import MODEL_NAMES, PRECISIONS, shipped_path

    out = []
    for model in MODEL_NAMES:
        for precision in PRECISIONS:
            def make(model: str = model, precision: str = precision, **kw: Any) -> Any:
                from .adapters.facelite_shipped import FaceliteShipped

                return FaceliteShipped(model, precision, **kw)

            short = model.removeprefix("mobilenetv2-")
            name = f"facelite-{short}" + ("" if precision == "float32" else f"-{precision}")
            out.append(Entry(name, f"facelite {model} {precision}", "facelite",
                             "code Apache-2.0; shipped weights non-commercial research use (trained on WIDER FACE)",
                             lambda m=model, p=precision: [shipped_path(m, p)], make, facelite=True,
                             interpolation=False, extra={"model": model, "precision": precision}))
    return out


def entries(installed_only: bool = False) -> list[Entry]:
    """All entries, facelite's first; ``installed_only``: facelite models whose file exists."""
    own = _facelite_entries()
    if installed_only:
        own = [e for e in own if all(p.is_file() for p in e.files())]
    return own + PEERS


ENTRIES: dict[str, Entry] = {e.name: e for e in entries()}
GROUPS: dict[str, Callable[[], list[str]]] = {
    "all": lambda: [e.name for e in entries(installed_only=True)],
    "facelite": lambda: [e.name for e in entries(installed_only=True) if e.facelite],
    "peers": lambda: [e.name for e in PEERS],
    "yunet": lambda: [e.name for e in PEERS if e.name.startswith("yunet")],
    "scrfd": lambda: [e.name for e in PEERS if e.name.startswith("scrfd")],
    "ultralight": lambda: [e.name for e in PEERS if e.name.startswith("ultralight")],
    "blazeface": lambda: [e.name for e in PEERS if e.name.startswith("blazeface")],
}


def select(names: list[str] | None) -> list[Entry]:
    """Entries for ``--models`` names and group names (default ``all``), in table order, no repeats.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    wanted: set[str] = set()
    for n in names or ["all"]:
        if n in GROUPS:
            wanted.update(GROUPS[n]())
        elif n in ENTRIES:
            wanted.add(n)
        else:
            raise ValueError(f"unknown model {n!r}; choose from {', '.join(ENTRIES)} or the groups {', '.join(GROUPS)}")
    return [e for e in entries() if e.name in wanted]
