"""``facelite serve``: the detector as an HTTP service with a web page (the ``serve`` extra:
FastAPI + uvicorn). :func:`create_app` builds the ASGI app; :mod:`.runner` serves it.

The app is imported on first use, so :mod:`.limits` (standard library only) can be read without
the extra, e.g. by ``facelite serve --help`` for its defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .limits import Limits

if TYPE_CHECKING:
    from .app import ServiceSettings, create_app

__all__ = ["Limits", "ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in ("ServiceSettings", "create_app"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
