"""Project rules that are not behaviour: the installed package is typed, the code passes lint, and the
command line's help does not load the heavy run-time libraries."""

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


_LOADED = "print(sorted(m for m in ('cv2', 'onnxruntime', 'torch') if m in sys.modules))"


@pytest.mark.parametrize("argv", [["--help"], ["detect", "--help"], ["eval", "widerface", "--help"]])
def test_help_does_not_import_opencv_or_onnxruntime(argv):
    # `facelite --help` used to take 0.5 s loading OpenCV and ONNX Runtime through facelite/__init__.py
    code = f"import sys\nfrom facelite.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n{_LOADED}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: facelite" in r.stdout
    assert r.stdout.splitlines()[-1] == "[]", r.stdout.splitlines()[-1]


def test_public_names_load_on_first_use():
    code = (
        "import sys\nimport facelite\nprint('cv2' in sys.modules)\n"
        "print(facelite.FaceDetector.__module__, facelite.align.__module__, facelite.tracking.__name__)\n"
        "from facelite import ImageLoadError, load_image\nprint(load_image.__module__, 'cv2' in sys.modules)\n"
        "print(sorted(set(facelite.__all__) - set(dir(facelite))))\n"
        "try:\n    facelite.no_such_name\nexcept AttributeError as e:\n    print(e)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == [
        "False",
        "facelite.detector facelite.alignment facelite.tracking",
        "facelite.imageio True",
        "[]",
        "module 'facelite' has no attribute 'no_such_name'",
    ]
