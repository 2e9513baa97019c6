"""facelite's own shipped models behind the adapters' interface, so that the comparison runs
them through exactly the same harness as the peers.

This is :class:`facelite.FaceDetector` unchanged (its own preprocessing, decoding and NMS);
the wrapper only adds ``name``, ``model_path`` and ``settings()``.
"""

from __future__ import annotations

from pathlib import Path

from ..common import Detections


class FaceliteShipped:
    """``image (BGR uint8 HxWx3) -> (boxes xyxy (K,4), scores (K,), landmarks (K,5,2))`` float32,
    original-image pixels, highest score first: ``FaceDetector.detect_arrays``.

    Raises:
        facelite.models.ModelNotFoundError: the shipped file is not installed.
    """

    num_landmarks = 5

    def __init__(
        self,
        model: str = "mobilenetv2-0.35",
        precision: str = "float32",
        input_size: int = 640,
        score_threshold: float = 0.02,
        nms_threshold: float = 0.4,
        top_k: int = 5000,
        keep_top_k: int = 750,
        threads: int | None = 1,
    ) -> None:
        from facelite import FaceDetector

        self.detector = FaceDetector(model=model, precision=precision, input_size=input_size,
                                     score_threshold=score_threshold, nms_threshold=nms_threshold,
                                     threads=threads, top_k=top_k, keep_top_k=keep_top_k)
        self.name = f"facelite-{model.removeprefix('mobilenetv2-')}" + ("" if precision == "float32" else f"-{precision}")
        self.model_path: Path = self.detector.model_info.path
        self.model = model
        self.precision = precision
        self.input_size = input_size
        self.threads = threads

    def settings(self) -> dict:
        import facelite

        d = self.detector
        return {
            "model": self.name, "backend": "facelite.FaceDetector (onnxruntime)", "shipped_model": self.model,
            "precision": self.precision, "input_size": self.input_size, "score_threshold": d.score_threshold,
            "nms_threshold": d.nms_threshold, "top_k": d.top_k, "keep_top_k": d.keep_top_k,
            "facelite_version": facelite.__version__,
        }

    def __call__(self, image) -> Detections:
        return self.detector.detect_arrays(image)
