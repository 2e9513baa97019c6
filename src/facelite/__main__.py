"""``python -m facelite ...``: the same as the ``facelite`` command (where its script is not on PATH)."""

import sys

from .cli import main

sys.exit(main())
