"""Adapters: each exposes a class whose instances are ``image (BGR uint8) -> (boxes xyxy,
scores, landmarks)`` callables in the image's pixels, the contract of
:func:`facelite.evaluation.widerface.run_detector_on_split`."""
