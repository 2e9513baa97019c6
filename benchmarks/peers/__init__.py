"""``python -m benchmarks.peers``: facelite side by side with other CPU face detectors.

:mod:`.run` measures rows (cached per model, size and part), :mod:`.measure` holds what a row
measures, :mod:`.report` writes the tables and the plot, :mod:`.draw` the pictures for checking
adapters by eye. The model list is :mod:`benchmarks.registry`.
"""
