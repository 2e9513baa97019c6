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

from .alignment import align
from .detector import FaceDetector
from .draw import draw_faces
from .face import Face
from .imageio import ImageLoadError, load_image, to_bgr
from .paths import data_path
from .spec import ModelSpec

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
