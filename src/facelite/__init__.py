"""facelite: real-time face and 5-landmark detection on ordinary CPUs.

Example::

    import facelite

    detector = facelite.FaceDetector()             # shipped MobileNetV2-0.35, float32
    image = facelite.load_image(facelite.data_path())
    faces = detector.detect(image)                 # an H x W x 3 uint8 BGR array, or a path
    for face in faces:                             # highest score first, original pixels
        print(face.box, face.score, face.landmarks)  # (x1, y1, x2, y2), float, (5, 2) array
        crop = facelite.align(image, face)         # 112 x 112 ArcFace-aligned crop

More: ``facelite.alignment`` (the template and transform), ``facelite.tracking`` (ids and
smoothing across frames), ``facelite.video`` (threaded capture and processing),
``facelite.anonymize`` (blur/pixelate faces), ``facelite.coco`` (COCO export).
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# The public names load on first use (PEP 562): ``import facelite`` (and so ``facelite --help``)
# does not import OpenCV or ONNX Runtime until something needs them.
_EXPORTS = {
    "Face": "face",
    "FaceDetector": "detector",
    "ImageLoadError": "imageio",
    "ModelSpec": "spec",
    "align": "alignment",
    "data_path": "paths",
    "draw_faces": "draw",
    "load_image": "imageio",
    "to_bgr": "imageio",
}

if TYPE_CHECKING:
    from .alignment import align
    from .detector import FaceDetector
    from .draw import draw_faces
    from .face import Face
    from .imageio import ImageLoadError, load_image, to_bgr
    from .paths import data_path
    from .spec import ModelSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)  # a sub-module: facelite.video, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "Face",
    "FaceDetector",
    "ImageLoadError",
    "ModelSpec",
    "__version__",
    "align",
    "data_path",
    "draw_faces",
    "load_image",
    "to_bgr",
]
