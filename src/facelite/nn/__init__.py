"""The PyTorch network (needs the ``train`` extra: ``pip install 'facelite[train]'``)."""

from .retinaface import RetinaFace, build_model

__all__ = ["RetinaFace", "build_model"]
