"""Running the comparison: one row per (model, input size), each part cached.

A row has three measured parts: ``ap`` (dev-split AP at score threshold 0.02), ``landmarks``
(held-out crops at score threshold 0.5, input 320; models with 5 landmarks only) and ``latency`` (score
threshold 0.5, the deployment setting). Each part is cached as one JSON file under
``<cache>/rows/<model>@<size>/<part>-<key>.json``, ``<key>`` a hash of everything that decides
the result (model files' SHA-256, detector settings, protocol, image list): a run that stops
half-way continues where it stopped, and a new model file (a retrained facelite model) is
measured again without being asked. The dev-split predictions are also cached per image, so an
interrupted AP evaluation resumes within the model too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..registry import Entry

__all__ = ["HARNESS_VERSION", "PARTS", "QUICK", "Protocol", "RowRunner"]

HARNESS_VERSION = 1
"""Bump when a change to this harness or an adapter changes results (invalidates every cache)."""
PARTS: tuple[str, ...] = ("ap", "landmarks", "latency")


@dataclass(frozen=True)
class Protocol:
    """What is measured, and on how much data.

    Attributes:
        sizes: input sizes (longer image side) of the comparison.
        ap_images: evenly spaced dev images for AP (``None``: the whole dev split).
        landmark_crops: the first N held-out crops (``None``: all).
        landmark_size: the input size landmarks are measured at (the landmark protocol's 320: the
            240x240 padded crops are not upscaled); ``None``: at every size.
        latency_images: evenly spaced dev images for timing (facelite bench's selection).
        warmup, repeats: untimed runs per image; timed rounds over the images.
        ap_score_threshold, nms_threshold, keep_top_k: the WIDER evaluation settings.
        deploy_score_threshold: for landmarks (their protocol) and latency.
        threads: ONNX Runtime intra-op threads (OpenCV: 1 as well).
    """

    sizes: tuple[int, ...] = (640, 320)
    ap_images: int | None = None
    landmark_crops: int | None = None
    landmark_size: int | None = 320
    latency_images: int = 20
    warmup: int = 2
    repeats: int = 5
    ap_score_threshold: float = 0.02
    nms_threshold: float = 0.4
    keep_top_k: int = 750
    deploy_score_threshold: float = 0.5
    threads: int = 1
    quick: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sizes"] = list(self.sizes)
        return d


QUICK = Protocol(ap_images=4, landmark_crops=8, latency_images=2, warmup=1, repeats=2, quick=True)
"""A smoke test of the whole pipeline (a few seconds per model; numbers not for citing)."""


def spread(names: list[str], n: int | None) -> list[str]:
    """``n`` names evenly spaced over the list (all for ``None``), in list order."""
    if n is None or n >= len(names):
        return list(names)
    return [names[int(i * len(names) / n)] for i in range(n)]


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RowRunner:
    """Measures rows for one protocol, with the part caches under ``cache_root``.

    Args:
        force: recompute every part (clears the rows' caches first).
        retime: recompute only the latency part.
        log: one-line messages (to stderr).
    """

    def __init__(self, protocol: Protocol, cache_root: Path, force: bool = False, retime: bool = False,
                 show_progress: bool = True, log: Callable[[str], None] = print) -> None:
        from facelite.evaluation import widerface as wf

        self.protocol = protocol
        self.cache_root = Path(cache_root)
        self.force = force
        self.retime = retime
        self.show_progress = show_progress
        self.log = log
        split = wf.default_split_dir()
        self.ap_names = spread(wf.read_image_list(split), protocol.ap_images)
        self._latency_images: list[Any] | None = None
        self._latency_names: list[str] = []
        self._sha: dict[Path, str] = {}
        self.computed_last = False
        """Whether the last :meth:`row` measured anything (``False``: all parts from the cache)."""

    # ------------------------------------------------------------------ caching

    def _file_shas(self, entry: Entry) -> list[str]:
        from facelite.evaluation.widerface import file_sha256

        out = []
        for p in entry.files():
            if p not in self._sha:
                self._sha[p] = file_sha256(p)
            out.append(self._sha[p])
        return out

    def part_key(self, entry: Entry, size: int, part: str, settings: dict[str, Any]) -> str:
        p = self.protocol
        what: dict[str, Any] = {"harness": HARNESS_VERSION, "model": entry.name, "size": size, "part": part,
                                "files": self._file_shas(entry), "settings": settings}
        if part == "ap":
            what["images"] = _key(self.ap_names)
        elif part == "landmarks":
            what["crops"] = p.landmark_crops
        else:
            what.update(images=p.latency_images, warmup=p.warmup, repeats=p.repeats, threads=p.threads,
                        clocks="wall+cpu")
        return _key(what)

    def _row_dir(self, entry: Entry, size: int) -> Path:
        return self.cache_root / "rows" / f"{entry.name}@{size}"

    def _cached(self, path: Path, part: str) -> dict[str, Any] | None:
        if self.force or (self.retime and part == "latency") or not path.is_file():
            return None
        return json.loads(path.read_text())

    @staticmethod
    def _store(path: Path, value: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=1) + "\n")
        tmp.replace(path)

    # ------------------------------------------------------------------ measuring

    def latency_images(self) -> list[Any]:
        if self._latency_images is None:
            from facelite.bench.run import bench_images

            self._latency_images, self._latency_names, _ = bench_images(self.protocol.latency_images)
        return self._latency_images

    def _part(self, entry: Entry, size: int, part: str) -> tuple[Any, dict[str, Any], Path, dict[str, Any] | None]:
        """The detector for ``part``, its settings, the part's cache file and the cached value (or ``None``)."""
        p = self.protocol
        thr = p.ap_score_threshold if part == "ap" else p.deploy_score_threshold
        det = entry.build(size, thr, p.nms_threshold, p.threads)
        settings = det.settings()
        path = self._row_dir(entry, size) / f"{part}-{self.part_key(entry, size, part, settings)}.json"
        return det, settings, path, self._cached(path, part)

    def row(self, entry: Entry, size: int) -> dict[str, Any]:
        """Measure (or read from the cache) the accuracy parts of the row of ``entry`` at ``size``:
        AP, and landmarks where they apply. The latency comes from :meth:`latency`."""
        from .measure import measure_ap, measure_landmarks, model_size

        p = self.protocol
        if self.force:
            shutil.rmtree(self._row_dir(entry, size), ignore_errors=True)
        files = entry.files()
        row: dict[str, Any] = {"model": entry.name, "label": entry.label, "family": entry.family,
                               "licence": entry.licence, "facelite": entry.facelite, "input_size": size,
                               "note": entry.note, "landmark_points": entry.landmarks,
                               "files": [{"file": f.name, "sha256": h} for f, h in zip(files, self._file_shas(entry))],
                               **model_size(files)}
        self.computed_last = False
        with_landmarks = entry.landmarks == 5 and p.landmark_size in (None, size)
        for part in ["ap"] + (["landmarks"] if with_landmarks else []):
            det, settings, path, value = self._part(entry, size, part)
            pred_dir = path.parent / f"predictions-{path.stem.split('-', 1)[1]}"
            if value is None:
                t = time.perf_counter()
                if part == "ap":
                    value = measure_ap(det, self.ap_names, pred_dir, {**settings, "key": path.stem},
                                       self.show_progress, f"AP {entry.name} @{size}")
                else:
                    value = measure_landmarks(det, p.landmark_crops, settings, self.show_progress)
                value["settings"] = settings
                value["seconds"] = round(time.perf_counter() - t, 1)
                self._store(path, value)
                self.computed_last = True
                self.log(f"{entry.name} @{size}: {part} done in {value['seconds']:.0f} s")
            row[part] = value
            if part == "ap":
                shutil.rmtree(pred_dir, ignore_errors=True)
        return row

    def latency(self, tasks: list[tuple[Entry, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """Latency of every ``(entry, size)``: from the cache, and those not cached measured
        together, interleaved (:func:`.measure.measure_latency_interleaved`), so that on a shared
        machine every model sees the same background load. Returns ``(name, size) -> latency``."""
        from .measure import measure_latency_interleaved

        p = self.protocol
        out: dict[tuple[str, int], dict[str, Any]] = {}
        pending = []
        for entry, size in tasks:
            det, settings, path, value = self._part(entry, size, "latency")
            if value is None:
                pending.append((entry, size, det, settings, path))
            else:
                out[(entry.name, size)] = value
        if pending:
            labels = [f"{e.name}@{s}" for e, s, *_ in pending]
            self.log(f"latency, interleaved: {', '.join(labels)}")
            values = measure_latency_interleaved([d for _, _, d, _, _ in pending], self.latency_images(), p.warmup,
                                                 p.repeats, show_progress=self.show_progress)
            for (entry, size, _, settings, path), value in zip(pending, values):
                value.update(image_names=self._latency_names, interleaved_with=labels, settings=settings)
                self._store(path, value)
                out[(entry.name, size)] = value
        return out
