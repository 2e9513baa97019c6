"""``facelite serve``: the detector as an HTTP service with a web page (the ``serve`` extra:
FastAPI + uvicorn). :func:`create_app` builds the ASGI app; :mod:`.runner` serves it."""

from .app import ServiceSettings, create_app
from .limits import Limits

__all__ = ["Limits", "ServiceSettings", "create_app"]
