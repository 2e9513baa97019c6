"""The most accurate shipped configuration within a latency budget, measured on this machine.

A *configuration* is a shipped model (width 0.35 or 1.0), a precision (float32 or int8) and an
input size (the longer image side fed to the network, 320 or 640): 8 in all. Their accuracy does
not depend on the machine; it is the WIDER FACE dev-split AP that ``facelite bench`` measured for
exactly these files, shipped in ``models/ap.json`` keyed by each file's SHA-256 (a model file
that is not in that table has no AP and is never picked). Their speed does depend on the machine
(static int8 is about as fast as float32 on a CPU without VNNI and up to 2.5x faster with it), so
:func:`measure` times each configuration here: ``FaceDetector.detect_arrays`` end to end
(preprocessing + network + decoding + NMS) on already decoded images, warm-up calls excluded.

The measurements are cached under ``facelite.paths.cache_dir() / "budget"``, one JSON file per
machine (CPU model string, logical core count, ONNX Runtime version), facelite version, thread
count, input sizes, model files and images, so asking again with another budget is instant.
``facelite models --pick --budget-ms MS`` and :meth:`facelite.FaceDetector.for_budget` use
:func:`pick`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AP_TABLE",
    "INPUT_SIZES",
    "Measurement",
    "PickResult",
    "ap_table",
    "configurations",
    "machine_key",
    "measure",
    "pick",
]

AP_TABLE = Path(__file__).resolve().parent / "models" / "ap.json"
"""WIDER FACE dev-split AP of the shipped files, by SHA-256 and input size (from docs/bench/bench.json)."""
INPUT_SIZES: tuple[int, ...] = (320, 640)
"""The input sizes the AP table covers."""
CACHE_FORMAT = 2  # 2: configurations timed interleaved (1: one after another)


@dataclass(frozen=True)
class Measurement:
    """One configuration as measured here.

    Attributes:
        model: shipped model name.
        precision: ``"float32"`` or ``"int8"``.
        input_size: longer side of the network input, pixels.
        sha256: the model file's SHA-256 (hex).
        median_ms, p90_ms: end-to-end time per image (ms) over ``samples`` timed calls.
        samples: number of timed calls (warm-up excluded).
        ap: ``{"easy", "medium", "hard"}`` dev-split AP, or ``None`` when the file is not in the table.
    """

    model: str
    precision: str
    input_size: int
    sha256: str
    median_ms: float
    p90_ms: float
    samples: int
    ap: dict[str, float] | None

    @property
    def label(self) -> str:
        return f"{self.model} {self.precision} @{self.input_size}"

    def detector_options(self) -> dict[str, Any]:
        """``FaceDetector`` keyword arguments of this configuration."""
        return {"model": self.model, "precision": self.precision, "input_size": self.input_size}

    def command_line(self, threads: int | None = None) -> str:
        """The ``facelite detect`` options of this configuration."""
        line = f"--model {self.model} --precision {self.precision} --input-size {self.input_size}"
        return line + (f" --threads {threads}" if threads is not None else "")


@dataclass(frozen=True)
class PickResult:
    """What :func:`pick` found.

    Attributes:
        budget_ms: the budget, milliseconds per image.
        statistic: ``"median"`` or ``"p90"``: which time must be within the budget.
        rows: every measured configuration, most accurate first (Medium AP, then Hard, then speed).
        chosen: the most accurate configuration within the budget, ``None`` if none is.
        fastest: the configuration with the lowest time (what comes closest when none fits).
        threads: the thread count measured (``None``: ONNX Runtime's default, all cores).
        cached: the times came from the cache (nothing was measured).
        cache_file: where they are cached.
    """

    budget_ms: float
    statistic: str
    rows: list[Measurement]
    chosen: Measurement | None
    fastest: Measurement
    threads: int | None
    cached: bool
    cache_file: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_ms": self.budget_ms,
            "statistic": self.statistic,
            "threads": self.threads,
            "cached": self.cached,
            "cache_file": str(self.cache_file),
            "chosen": asdict(self.chosen) if self.chosen else None,
            "fastest": asdict(self.fastest),
            "rows": [asdict(r) for r in self.rows],
        }


def ap_table() -> dict[str, dict[str, dict[str, float]]]:
    """``{sha256: {input_size (str): {"easy", "medium", "hard"}}}`` from :data:`AP_TABLE`."""
    data = json.loads(AP_TABLE.read_text(encoding="utf-8"))
    return {digest: entry["ap"] for digest, entry in data["by_sha256"].items()}


def configurations(input_sizes: Sequence[int] = INPUT_SIZES) -> list[tuple[str, str, int]]:
    """``(model, precision, input_size)`` of every installed shipped file at each size."""
    from .models import available_models

    for size in input_sizes:
        if size not in INPUT_SIZES:
            raise ValueError(f"input size {size} has no AP in the shipped table; choose from "
                             f"{', '.join(map(str, INPUT_SIZES))}")
    return [(name, precision, size) for name, precision, present in available_models() if present
            for size in sorted(set(input_sizes))]


def cpu_model() -> str:
    """The CPU model string (``/proc/cpuinfo``'s "model name", else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key() -> dict[str, Any]:
    """What the times depend on besides the settings: CPU, logical cores, ONNX Runtime and facelite versions."""
    import onnxruntime

    from . import __version__

    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "onnxruntime": onnxruntime.__version__,
            "facelite": __version__}


def _cache_file(key: dict[str, Any]) -> Path:
    from .paths import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "budget" / f"{digest}.json"


def measure(
    configs: Sequence[tuple[str, str, int]],
    images: Sequence[np.ndarray],
    threads: int | None = None,
    warmup: int = 2,
    min_samples: int = 5,
    max_samples: int = 40,
    seconds_per_config: float = 0.4,
    on_progress: Callable[[int], None] | None = None,
) -> list[Measurement]:
    """Time each configuration on ``images`` (``H x W x 3`` uint8 BGR), cycling through them.

    Every detector is loaded and given ``warmup`` untimed calls first; then the configurations
    are timed **interleaved**, one call each per round, so that whatever else the machine does
    meanwhile (a burst of other work, the CPU clock changing) falls on all of them alike. Rounds
    go on until ``seconds_per_config`` times the number of configurations have passed and at
    least ``min_samples`` rounds are done, or ``max_samples`` rounds. The detector uses its
    default thresholds (score 0.5, NMS 0.4). ``on_progress(1)`` after each configuration is
    loaded and after each tenth of the timing (the progress total is twice the configurations).
    """
    from .detector import FaceDetector

    if not images:
        raise ValueError("measure needs at least one image")
    table = ap_table()
    detectors = []
    for model, precision, size in configs:
        detector = FaceDetector(model, precision=precision, input_size=size, threads=threads)
        for i in range(warmup):
            detector.detect_arrays(images[i % len(images)])
        detectors.append(detector)
        if on_progress is not None:
            on_progress(1)
    times: list[list[float]] = [[] for _ in configs]
    budget_s = seconds_per_config * len(configs)
    t_end = time.perf_counter() + budget_s
    reported = 0
    rounds = 0
    while rounds < max_samples and (rounds < min_samples or time.perf_counter() < t_end):
        image = images[rounds % len(images)]
        for k, detector in enumerate(detectors):
            t = time.perf_counter()
            detector.detect_arrays(image)
            times[k].append((time.perf_counter() - t) * 1000.0)
        rounds += 1
        done = min(1.0, max(rounds / max_samples, 1.0 - (t_end - time.perf_counter()) / budget_s))
        due = min(len(configs), int(done * len(configs)))
        if on_progress is not None and due > reported:
            on_progress(due - reported)
            reported = due
    if on_progress is not None and reported < len(configs):
        on_progress(len(configs) - reported)
    rows = []
    for (model, precision, size), detector, ms in zip(configs, detectors, times):
        a = np.asarray(ms)
        digest = detector.model_info.sha256
        rows.append(Measurement(
            model=model, precision=precision, input_size=size, sha256=digest,
            median_ms=round(float(np.median(a)), 3), p90_ms=round(float(np.percentile(a, 90)), 3),
            samples=len(ms), ap=table.get(digest, {}).get(str(size)),
        ))
    return rows


def _accuracy_order(rows: Sequence[Measurement]) -> list[Measurement]:
    """Most accurate first: Medium AP, then Hard, then the faster; rows without AP last."""
    def key(r: Measurement) -> tuple:
        if r.ap is None:
            return (1, 0.0, 0.0, r.median_ms)
        return (0, -r.ap["medium"], -r.ap["hard"], r.median_ms)

    return sorted(rows, key=key)


def pick(
    budget_ms: float,
    input_sizes: Sequence[int] = INPUT_SIZES,
    threads: int | None = None,
    images: Sequence[str | os.PathLike[str]] | None = None,
    statistic: str = "median",
    remeasure: bool = False,
    progress: bool = False,
    **measure_options: Any,
) -> PickResult:
    """Measure (or read from the cache) the shipped configurations and pick the most accurate
    one whose ``statistic`` time per image is at most ``budget_ms``.

    Args:
        budget_ms: milliseconds per image (> 0).
        input_sizes: sizes to consider (from :data:`INPUT_SIZES`).
        threads: ONNX Runtime threads, as ``FaceDetector(threads=...)`` (``None``: all cores);
            measure with the count you will run with.
        images: image files to time on (default: the bundled sample, ``facelite.data_path()``).
            The times depend on the image's aspect ratio (the padded input), little on its content.
        statistic: ``"median"`` or ``"p90"``.
        remeasure: ignore (and replace) a cached measurement.
        progress: show a progress line on standard error.
        measure_options: passed to :func:`measure` (``warmup``, ``min_samples``, ...); they are part
            of the cache key.

    Raises:
        ValueError: a bad budget, statistic or size, or no shipped model installed.
    """
    from .fileio import write_atomic
    from .imageio import load_image
    from .models import file_sha256
    from .paths import data_path
    from .progress import Progress

    if not budget_ms > 0:
        raise ValueError(f"budget_ms must be > 0, got {budget_ms!r}")
    if statistic not in ("median", "p90"):
        raise ValueError(f"statistic must be 'median' or 'p90', got {statistic!r}")
    configs = configurations(input_sizes)
    if not configs:
        raise ValueError("no shipped model file is installed (`facelite models` lists them)")
    paths = [Path(p) for p in images] if images else [data_path()]
    key = {
        "format": CACHE_FORMAT, **machine_key(), "threads": threads, "configs": configs,
        "images": [file_sha256(p) for p in paths], "measure": dict(sorted(measure_options.items())),
        "models": {f"{m}-{p}": file_sha256(_shipped(m, p)) for m, p in dict.fromkeys((m, p) for m, p, _ in configs)},
    }
    cache_file = _cache_file(key)
    rows: list[Measurement] | None = None
    if not remeasure and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text(encoding="utf-8"))
            if cached.get("key") == json.loads(json.dumps(key)):
                rows = [Measurement(**r) for r in cached["rows"]]
        except (ValueError, TypeError, KeyError):
            rows = None  # a damaged cache file is measured again
    was_cached = rows is not None
    if rows is None:
        decoded = [load_image(p) for p in paths]
        with Progress(total=2 * len(configs), desc="measuring", unit="step", enabled=progress,
                      log_interval=2.0) as bar:
            rows = measure(configs, decoded, threads=threads, on_progress=bar.update, **measure_options)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_file, json.dumps({"key": key, "rows": [asdict(r) for r in rows]}, indent=1))
    ordered = _accuracy_order(rows)

    def time_of(r: Measurement) -> float:
        return r.median_ms if statistic == "median" else r.p90_ms

    chosen = next((r for r in ordered if r.ap is not None and time_of(r) <= budget_ms), None)
    fastest = min(rows, key=time_of)
    return PickResult(budget_ms=float(budget_ms), statistic=statistic, rows=ordered, chosen=chosen,
                      fastest=fastest, threads=threads, cached=was_cached, cache_file=cache_file)


def _shipped(name: str, precision: str) -> Path:
    from .models import shipped_path

    return shipped_path(name, precision)


def format_table(result: PickResult) -> str:
    """The measured table (most accurate first) and the choice, as text."""
    threads = "all cores" if result.threads is None else f"{result.threads} thread{'s' if result.threads != 1 else ''}"
    lines = [
        f"{'configuration':<30} {'median ms':>9} {'p90 ms':>8}  {'AP easy':>7} {'medium':>7} {'hard':>7}",
    ]
    for r in result.rows:
        ap = (f"{r.ap['easy']:>7.3f} {r.ap['medium']:>7.3f} {r.ap['hard']:>7.3f}" if r.ap
              else f"{'-':>7} {'-':>7} {'-':>7}")
        t = r.median_ms if result.statistic == "median" else r.p90_ms
        mark = "  <- chosen" if r is result.chosen else ("  over budget" if t > result.budget_ms else "")
        lines.append(f"{r.label:<30} {r.median_ms:>9.2f} {r.p90_ms:>8.2f}  {ap}{mark}")
    counts = sorted({r.samples for r in result.rows})
    samples = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    source = "cached measurement" if result.cached else "measured now"
    lines.append(f"({source}, {threads}, {samples} timed calls each after warm-up, interleaved; AP: WIDER FACE dev split, "
                 f"docs/RESULTS.md Table 4; cache {result.cache_file})")
    stat = "median" if result.statistic == "median" else "90th-percentile"
    if result.chosen is not None:
        c = result.chosen
        medium = c.ap["medium"] if c.ap else float("nan")
        lines.append(f"most accurate within {result.budget_ms:g} ms ({stat}): {c.label} "
                     f"({c.median_ms:.1f} ms median, Medium AP {medium:.3f})")
        lines.append(f"  facelite detect PATH {c.command_line(result.threads)}")
        args = f'"{c.model}", precision="{c.precision}", input_size={c.input_size}'
        if result.threads is not None:
            args += f", threads={result.threads}"
        lines.append(f"  FaceDetector({args})")
    else:
        f = result.fastest
        lines.append(f"no configuration fits {result.budget_ms:g} ms ({stat}); the fastest is {f.label} at "
                     f"{f.median_ms:.1f} ms median, {f.p90_ms:.1f} ms p90 ({f.command_line(result.threads)})")
    return "\n".join(lines)
