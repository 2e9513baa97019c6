"""``python -m facelite.models [DIR]``: rewrite ``SHA256SUMS`` for the ``.onnx`` files in DIR (default: here)."""

from __future__ import annotations

import sys

from . import MODEL_DIR, update_checksums

written = update_checksums(sys.argv[1] if len(sys.argv) > 1 else MODEL_DIR)
print(written.read_text(), end="")
print(f"wrote {written}")
