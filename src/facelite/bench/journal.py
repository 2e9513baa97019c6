"""What a bench run has measured so far, on disk: an interrupted run loses nothing, and a rerun
with ``--resume`` measures only what is missing.

``bench-rows.jsonl`` in the output folder: a first line ``{"fingerprint": ...}`` (the run's
settings and the machine), then one ``{"key": [...], "row": {...}}`` line per measurement,
flushed to disk as soon as it is made. Keys name what was measured (table, model file SHA-256,
precision, input size, threads, ...), so a changed model file is measured again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

JOURNAL_NAME = "bench-rows.jsonl"


class Journal:
    """Measurements keyed by what was measured.

    Args:
        path: the ``.jsonl`` file; ``None`` keeps everything in memory (nothing to resume).
        fingerprint: JSON-ready settings and machine facts; a resumed journal must have the same.
        resume: reuse the rows of an existing file with the same fingerprint; otherwise the file
            is started afresh.

    Raises:
        ValueError: ``resume`` and the file was written with another fingerprint (or is not a journal).
    """

    def __init__(self, path: Path | None, fingerprint: dict[str, Any], resume: bool = False) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.reused = 0
        fingerprint = json.loads(json.dumps(fingerprint))  # the form it has after a round trip
        if path is None:
            return
        if resume and path.is_file():
            self._load(path, fingerprint)
            mode = "a"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            mode = "w"
        self._file = open(path, mode, encoding="utf-8")  # kept open for the whole run
        if mode == "w":
            self._write({"fingerprint": fingerprint})

    def _load(self, path: Path, fingerprint: dict[str, Any]) -> None:
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            head = json.loads(lines[0])["fingerprint"] if lines else None
        except (json.JSONDecodeError, KeyError, TypeError):
            head = None
        if head is None:
            raise ValueError(f"{path} is not a bench journal; remove it or run without --resume")
        if head != fingerprint:
            differ = sorted(k for k in set(head) | set(fingerprint) if head.get(k) != fingerprint.get(k))
            raise ValueError(
                f"{path} was measured with other settings or on another machine (what differs: {', '.join(differ)}); "
                "run without --resume to start over"
            )
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                self.rows[json.dumps(entry["key"])] = entry["row"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by the interruption

    def _write(self, obj: dict[str, Any]) -> None:
        self._file.write(json.dumps(obj) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def get(self, key: Sequence[Any]) -> dict[str, Any] | None:
        """The row measured for ``key`` by an earlier run, if any (counted in :attr:`reused`)."""
        row = self.rows.get(json.dumps(list(key)))
        if row is not None:
            self.reused += 1
        return row

    def put(self, key: Sequence[Any], row: dict[str, Any]) -> dict[str, Any]:
        """Record a new measurement; returns ``row``."""
        self.rows[json.dumps(list(key))] = row
        if self.path is not None:
            self._write({"key": list(key), "row": row})
        return row

    def close(self) -> None:
        if self.path is not None and not self._file.closed:
            self._file.close()
