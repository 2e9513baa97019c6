"""Sub-commands of the ``facelite`` CLI; each module has ``register(subparsers)`` and a ``run(args) -> int``."""
