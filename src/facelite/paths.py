"""Where facelite finds development data and keeps its caches (one setting each)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The development data folder: ``$FACELITE_SHARED``, default ``../shared`` (relative to the cwd)."""
    return Path(os.environ.get("FACELITE_SHARED", "../shared")).expanduser()


def cache_dir() -> Path:
    """Run/checkpoint/cache root outside the repository: ``$FACELITE_CACHE``, default ``~/.cache/facelite``."""
    return Path(os.environ.get("FACELITE_CACHE", "~/.cache/facelite")).expanduser()
