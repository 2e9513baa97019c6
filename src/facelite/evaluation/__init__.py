"""Accuracy measurement (development extra; scipy/matplotlib are imported lazily).

- :mod:`facelite.evaluation.widerface`: the official WIDER FACE evaluation (Easy / Medium /
  Hard AP), restricted to a split; running any detector on a split (resumable cache);
  reading and writing the WIDER submission layout.
- :mod:`facelite.evaluation.landmarks`: landmark NME / failure / miss rate on the held-out
  5-point crops, and :func:`~facelite.evaluation.landmarks.landmark_split`, the one
  definition of the held-out 10 % that training must exclude.
- :mod:`facelite.evaluation.plots`: PR curves and the CED curve (matplotlib).

Nothing is imported here, so that ``from facelite.evaluation.landmarks import landmark_split``
stays cheap.
"""
