"""facelite: real-time face and 5-landmark detection on ordinary CPUs."""

from __future__ import annotations

__version__ = "0.1.0"

from .face import Face
from .spec import ModelSpec

__all__ = ["Face", "ModelSpec", "__version__"]

try:  # the runtime API; present once detector.py exists
    from .detector import FaceDetector  # noqa: E402

    __all__.append("FaceDetector")
except ModuleNotFoundError as _exc:  # pragma: no cover
    if _exc.name != "facelite.detector":
        raise
