"""Project rules that are not behaviour: the installed package is typed, the code passes lint."""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_declares_its_type_hints():
    # PEP 561: without the marker, type checkers ignore the hints of an installed package
    assert resources.files("facelite").joinpath("py.typed").is_file()


def test_code_passes_ruff():
    pytest.importorskip("ruff")  # in the [test] extra
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks", "scripts"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert r.returncode == 0, f"ruff check found problems (fix them or `ruff check --fix`):\n{r.stdout}{r.stderr}"
