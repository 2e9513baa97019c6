"""Benchmarks and adapters for third-party face detectors (development only).

Never imported by the ``facelite`` package. Run from the repository root, e.g.
``python -m benchmarks.eval_peer retinaface --input-size 640``. When facelite is not
installed, ``src/`` is put on the import path so that a plain checkout works.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # pragma: no cover - depends on how the checkout is set up
    import facelite  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
