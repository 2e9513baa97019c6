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


def data_path(name: str = "astronaut.jpg") -> Path:
    """Path of a sample file shipped in the package's ``data/`` folder (see ``data/README.md``).

    Raises:
        FileNotFoundError: no such sample; the message lists the ones there are.
    """
    folder = Path(__file__).resolve().parent / "data"
    path = folder / name
    if not path.is_file():
        there = sorted(p.name for p in folder.glob("*") if p.is_file() and p.suffix != ".md")
        raise FileNotFoundError(f"no sample file {name!r} in {folder}; there are: {', '.join(there) or 'none'}")
    return path
