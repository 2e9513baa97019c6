"""``python -m facelite.models [DIR]``: rewrite ``SHA256SUMS`` for the ``.onnx`` files in DIR (default: here).

``python -m facelite.models --stamp FILE...``: write the graph checksum (:mod:`facelite.modelfile`)
into the metadata of facelite ONNX files exported before it existed (needs the ``onnx`` package);
the graph itself is not changed. Rewrite ``SHA256SUMS`` afterwards for shipped files.
"""

from __future__ import annotations

import sys

from . import MODEL_DIR, update_checksums

if sys.argv[1:2] == ["--stamp"]:
    import onnx

    from ..modelfile import read_model_file, stamp_checksum

    for name in sys.argv[2:]:
        proto = onnx.load(name)
        digest = stamp_checksum(proto)
        onnx.save(proto, name)
        with open(name, "rb") as f:
            if read_model_file(f.read())[0] != digest:  # the graph must be stored exactly as hashed
                sys.exit(f"{name}: the saved graph does not match its checksum")
        print(f"{digest}  {name}")
    sys.exit(0)

written = update_checksums(sys.argv[1] if len(sys.argv) > 1 else MODEL_DIR)
print(written.read_text(), end="")
print(f"wrote {written}")
