"""One bench run: prepare the models, measure, collect everything in one JSON-ready dict.

:func:`run_bench` produces what ``facelite bench`` prints and writes (see
:mod:`facelite.bench.report` for the tables):

- ``stages`` (Table 1): time per stage for one configuration (α = 1.0 at 640, float32, when
  available), with the check that the stages add up to the whole, and (``stages["crowded"]``) the
  same configuration's preprocessing / network / decoding + NMS on the most crowded dev image at the
  evaluation's score threshold 0.02;
- ``latency`` (Tables 2-3): end-to-end latency of every model x input size x precision x
  thread count, with file size, parameters and multiply-accumulates;
- ``crowded``: the post-processing share on the dev image with the most faces;
- ``accuracy`` (Table 4): WIDER FACE dev-split AP through :mod:`facelite.evaluation.widerface`;
- ``frontier``: the configurations on the accuracy-speed Pareto front.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..imageio import load_image
from ..models import MODEL_NAMES, file_sha256
from ..paths import data_path, shared_dir
from . import paper
from .journal import JOURNAL_NAME, Journal
from .models import (
    ONNX_EXTRA,
    PRECISIONS,
    BenchModel,
    Variant,
    bench_cache_dir,
    derive_dynamic_int8,
    derive_static_int8,
    derive_tflite,
    have_onnx,
    model_from_path,
    model_from_shipped,
    random_model,
)

__all__ = ["POSTPROCESS_LIMIT", "BenchConfig", "run_bench"]

EVAL_SCORE_THRESHOLD = 0.02
"""The WIDER FACE evaluation's score threshold: the crowded images are also timed with it (stress case)."""

POSTPROCESS_LIMIT = 0.10
"""Post-processing (decoding + NMS) must stay under this share of the end-to-end time."""


@dataclass
class BenchConfig:
    """What a bench run measures and how (the ``facelite bench`` options)."""

    models: Sequence[str] = ()
    """Shipped model names or paths of facelite ``.onnx`` files; empty: every shipped model installed."""
    random_weights: bool = False
    """Also export and measure random-weight networks of every width in :attr:`alphas`."""
    alphas: Sequence[float] = (1.0, 0.35)
    sizes: Sequence[int] = (640, 320)
    precisions: Sequence[str] = PRECISIONS
    threads: Sequence[int] = (1,)
    images: int = 20
    """Dev images timed (a fixed, evenly spaced selection of the split's list)."""
    warmup: int = 2
    repeats: int = 10
    crowded_repeats: int = 10
    accuracy: bool = True
    ap_images: int | None = None
    """AP on this many dev images (evenly spaced); ``None``: the whole dev split."""
    ap_threads: int | None = 1
    calibration: int = 100
    calibration_size: int = 640
    stage_split: bool = True
    crowded: int = 3
    """Also time the post-processing on this many of the most crowded dev images (0: none)."""
    quick: bool = False
    cache_root: Path | None = None
    out_dir: Path | None = None
    """Where ``bench.log`` and the measurements journal (:mod:`facelite.bench.journal`) go; ``None``: nowhere."""
    resume: bool = False
    """Reuse the measurements an interrupted run with the same settings left in :attr:`out_dir`."""
    show_progress: bool = True
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class _Log:
    """Progress lines on standard error (when ``enabled``) and, time-stamped, in ``file`` (always)."""

    def __init__(self, enabled: bool, file: Path | None = None) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.file = file
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, msg: str) -> None:
        el = time.perf_counter() - self.t0
        if self.enabled:
            print(f"[bench {_clock(el)}] {msg}", file=sys.stderr, flush=True)
        if self.file is not None:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(f"{datetime.now().isoformat(timespec='seconds')} [{_clock(el)}] {msg}\n")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Eta:
    """Time left in a loop of ``total`` items, from the items measured so far (reused ones are free)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.measured, self.seconds = total, 0, 0, 0.0

    def step(self, seconds: float | None) -> str:
        """Count one item (``seconds`` it took, ``None`` if reused); returns ``"ETA m:ss"``."""
        self.done += 1
        if seconds is not None:
            self.measured += 1
            self.seconds += seconds
        if not self.measured:
            return "ETA ?"
        return f"ETA {_clock(self.seconds / self.measured * (self.total - self.done))}"


# --------------------------------------------------------------------------- inputs


def _spread(names: Sequence[str], n: int | None) -> list[str]:
    """``n`` names evenly spaced over the list (all of them for ``None``), in list order."""
    if n is None or n >= len(names):
        return list(names)
    return [names[int(i * len(names) / n)] for i in range(n)]


def bench_images(count: int) -> tuple[list[np.ndarray], list[str], str]:
    """``count`` dev-split images (decoded), their names, and where they come from.
    Without the shared data folder: the package's sample image."""
    from ..evaluation.widerface import default_split_dir, read_image_list

    split = default_split_dir()
    if (split / "images.txt").is_file():
        names = _spread(read_image_list(split), count)
        return [load_image(split / "images" / n) for n in names], names, f"WIDER FACE dev split ({split})"
    p = data_path("astronaut.jpg")
    return [load_image(p)], [p.name], "the package's sample image (no shared data folder)"


def crowded_images(count: int = 3) -> list[tuple[np.ndarray, str, int]]:
    """The ``count`` dev images with the most annotated faces: ``(image, name, faces)``, most first.
    Empty without the shared data folder."""
    from ..evaluation.widerface import default_split_dir

    split = default_split_dir()
    gt = split / "wider_face_dev_bbx_gt.txt"
    if not gt.is_file() or count < 1:
        return []
    lines = gt.read_text().splitlines()
    found: list[tuple[int, str]] = []
    i = 0
    while i + 1 < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        found.append((n, name))
        i += 2 + max(n, 1)
    found.sort(key=lambda t: (-t[0], t[1]))
    return [(load_image(split / "images" / name), name, n) for n, name in found[:count]]


# --------------------------------------------------------------------------- models


def prepare_models(cfg: BenchConfig, log: Callable[[str], None]) -> tuple[list[BenchModel], dict[str, str]]:
    """The models of the run with every requested variant derived; and why variants are missing."""
    models: list[BenchModel] = []
    names = list(cfg.models)
    if not names and not cfg.random_weights:
        from ..models import available_models

        names = sorted({n for n, _, present in available_models() if present}, key=MODEL_NAMES.index)
        if not names:
            raise FileNotFoundError(
                "no shipped model is installed yet; benchmark a file with --models PATH.onnx, "
                "or random-weight networks with --random-weights"
            )
    for name in names:
        models.append(model_from_shipped(name, cfg.cache_root) if name in MODEL_NAMES else model_from_path(name))
    if cfg.random_weights:
        for a in cfg.alphas:
            log(f"random-weight model alpha={a} (exported once, then cached)")
            models.append(random_model(float(a), cache_root=cfg.cache_root))
    seen: dict[str, int] = {}
    for m in models:  # unique labels
        seen[m.label] = seen.get(m.label, 0) + 1
        if seen[m.label] > 1:
            m.label = f"{m.label} #{seen[m.label]}"
    missing: dict[str, str] = {}
    for m in models:
        for p in cfg.precisions:
            if p in m.variants:
                continue
            key = f"{m.label} {p}"
            if m.float32 is None:
                missing[key] = "no float32 file to derive it from"
                continue
            if p in ("dynamic-int8", "static-int8") and not have_onnx():
                missing[key] = f"derived from the float32 file: {ONNX_EXTRA}"
                continue
            if p == "dynamic-int8":
                log(f"{m.label}: dynamic int8 (cached under {m.key_dir(cfg.cache_root)})")
                v = derive_dynamic_int8(m, cfg.cache_root)
            elif p == "static-int8":
                log(f"{m.label}: static int8, calibrating on {cfg.calibration} images at {cfg.calibration_size} (cached)")
                v = derive_static_int8(m, cfg.calibration, cfg.calibration_size, cache_root=cfg.cache_root)
            elif p.startswith("tflite-"):
                v, why = _derive_tflite(m, p, cfg, log)
                if v is None:
                    missing[key] = why
                    continue
            else:
                raise ValueError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)} or tflite-*")
            if v is not None:
                m.variants[p] = v
        m.variants = {p: m.variants[p] for p in list(cfg.precisions) if p in m.variants}
    return models, missing


def _derive_tflite(m: BenchModel, precision: str, cfg: BenchConfig, log: Callable[[str], None]) -> tuple[Variant | None, str]:
    try:
        from ..export import tflite
    except ImportError as exc:  # pragma: no cover - the module is part of the package
        return None, f"facelite.export.tflite unavailable: {exc}"
    why = tflite.unavailable_reason()
    if why:
        return None, why
    log(f"{m.label}: {precision} (converting; cached)")
    try:
        v = derive_tflite(m, precision.removeprefix("tflite-"), cfg)
    except Exception as exc:  # conversion problems must not sink the whole run
        return None, f"conversion failed: {type(exc).__name__}: {exc}"
    return v, ""


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    """CPU model, cores, OS and library versions."""
    import cv2
    import onnxruntime

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {
        "python": platform.python_version(),
        "facelite": __version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }
    for mod in ("onnx", "torch", "ai_edge_litert", "litert_torch", "ai_edge_quantizer"):
        if mod in sys.modules and sys.modules[mod] is None:  # import blocked
            continue
        if mod in sys.modules or _importable(mod):
            try:
                versions[mod] = str(__import__(mod).__version__)
            except Exception:
                from importlib import metadata

                try:
                    versions[mod] = metadata.version(mod.replace("_", "-"))
                except metadata.PackageNotFoundError:
                    pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu or "unknown",
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "versions": versions,
    }


def _importable(mod: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- the run


def _pick_stage_config(models: list[BenchModel], sizes: Sequence[int]) -> tuple[BenchModel, int] | None:
    with_float = [m for m in models if m.float32 is not None]
    if not with_float:
        return None
    best = sorted(with_float, key=lambda m: (abs(m.alpha - 1.0) > 1e-6, -m.alpha, not m.trained))[0]
    size = 640 if 640 in sizes else max(sizes)
    return best, size


def _paper_ms(alpha: float, size: int, precision: str) -> dict[str, Any]:
    row = paper.TABLE3_MS.get((round(alpha, 2), size))
    if row is None:
        return {}
    if precision == "float32":
        return {"paper_ms": row["pc"], "paper_platform": "PC, float (TF 2.3, Xeon 2.6 GHz)"}
    if precision in ("dynamic-int8", "tflite-dynamic-int8"):
        return {"paper_ms": row["mobile"], "paper_platform": "mobile, dynamic optimization (Galaxy S10)"}
    return {}


def _rel(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run everything ``cfg`` asks for; returns the JSON-ready result (see the module doc)."""
    import cv2

    log = _Log(cfg.show_progress, cfg.out_dir / "bench.log" if cfg.out_dir is not None else None)
    t_start = time.perf_counter()
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # preprocessing on one core too
    journal = Journal(cfg.out_dir / JOURNAL_NAME if cfg.out_dir is not None else None, _fingerprint(cfg), cfg.resume)
    if journal.rows:
        log(f"resuming: {len(journal.rows)} measurement(s) of an earlier run in {journal.path}")
    try:
        return _run(cfg, log, t_start, journal)
    finally:
        journal.close()
        cv2.setNumThreads(cv2_threads)


_NOT_SETTINGS = ("cache_root", "show_progress", "command", "extra", "out_dir", "resume")


def _fingerprint(cfg: BenchConfig) -> dict[str, Any]:
    """What must not change for measurements to be reused: the settings and the machine."""
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items() if k not in _NOT_SETTINGS}
    machine = machine_info()
    return {**settings, "models": list(cfg.models), "cpu": machine["cpu"], "logical_cores": machine["logical_cores"],
            "versions": machine["versions"]}


def _run(cfg: BenchConfig, log: _Log, t_start: float, journal: Journal) -> dict[str, Any]:
    from .measure import Pipeline, time_pipeline, time_stages

    graphs = have_onnx()  # parameter / MAC counts and the stage split read the graph with onnx
    if graphs:
        from .graph import count_macs, count_params
    else:
        log(f"parameters, MACs, the stage split and derived int8 files: {ONNX_EXTRA}")

    sha = functools.lru_cache(maxsize=None)(file_sha256)  # each model file is hashed once per run

    cache_root = cfg.cache_root or bench_cache_dir()
    models, missing = prepare_models(cfg, log)
    images, image_names, image_source = bench_images(cfg.images)
    crowds = crowded_images(cfg.crowded) if cfg.crowded else []
    log(f"{len(models)} model(s), {len(images)} timing image(s) from {image_source}")

    # ---- per-model facts: sizes, parameters, MACs
    model_rows = []
    facts: dict[tuple[str, int], dict[str, Any]] = {}
    for m in models:
        graph_src = m.float32 or next((v for v in m.variants.values() if v.backend == "onnxruntime"), None)
        if not graphs:
            graph_src = None
        params = count_params(graph_src.path) if graph_src else None
        macs = {}
        for s in cfg.sizes:
            try:
                macs[s] = count_macs(graph_src.path, s, s) if graph_src else None
            except ValueError:
                macs[s] = None
            facts[(m.label, s)] = {"params": params, "macs": macs[s]}
        model_rows.append({
            "label": m.label,
            "name": m.spec.name,
            "alpha": m.alpha,
            "trained": m.trained,
            "source": m.source,
            "params": params,
            "macs": {str(s): v for s, v in macs.items()},
            "variants": {
                p: {"path": str(v.path), "sha256": sha(v.path), "file_bytes": v.file_bytes, "origin": v.origin,
                    "backend": v.backend, **({"files_by_size": {str(k): str(f) for k, f in v.sized.items()}} if v.sized else {})}
                for p, v in m.variants.items()
            },
        })

    # ---- pipelines and reference outputs for random-weight networks
    pipes: dict[tuple[str, str, int, int], Pipeline] = {}

    def pipe_for(m: BenchModel, p: str, size: int, threads: int, score_threshold: float = 0.5) -> Pipeline:
        key = (m.label, p, size, threads, score_threshold)
        if key not in pipes:
            pipes[key] = Pipeline(m.variants[p].path_for(size), size, threads, score_threshold=score_threshold)
        return pipes[key]

    reference_model = next((m for m in models if m.trained and m.float32 is not None), None)
    references: dict[int, tuple[Pipeline, list[Any], list[Any]]] = {}

    def reference_for(m: BenchModel, size: int, pipe: Pipeline) -> tuple[list[Any] | None, list[Any] | None, str]:
        """Outputs to decode for a random-weight network: a trained model's, same images and size
        (for the timing images and for the crowded images)."""
        if m.trained:
            return None, None, "own"
        if reference_model is None:
            return None, None, "own (random weights: decoding cost not representative)"
        if size not in references:
            ref_pipe = Pipeline(reference_model.float32.path, size, 1)
            outs = [ref_pipe.network_outputs(img) for img in images]
            c = [ref_pipe.network_outputs(img) for img, _, _ in crowds]
            references[size] = (ref_pipe, outs, c)
        ref_pipe, outs, c = references[size]
        if not pipe.compatible(ref_pipe, images[0]):
            return None, None, "own (random weights; no trained reference with the same anchors: not representative)"
        return outs, c, f"decoded outputs of {reference_model.label} float32 (trained, same anchors)"

    def measure_stages(m: BenchModel, size: int, t: int, cuts: Any) -> dict[str, Any]:
        pipe = pipe_for(m, "float32", size, t)
        refs, _, what = reference_for(m, size, pipe)
        st = time_stages(pipe, cuts, images, cfg.warmup, cfg.repeats, threads=t, reference=refs)
        stages = {"model": m.label, "alpha": m.alpha, "trained": m.trained, "input_size": size, "precision": "float32",
                  "threads": t, "postprocess_outputs": what, **st}
        log(f"  stages sum {st['sum_ms']:.2f} ms vs end-to-end {st['end_to_end_ms']:.2f} ms ({100 * st['difference']:+.1f} %)")
        if crowds:
            # the stress case beside it: the most crowded dev image at the evaluation's score threshold
            img, name, faces = crowds[0]
            cpipe = pipe_for(m, "float32", size, t, EVAL_SCORE_THRESHOLD)
            _, crefs, cwhat = reference_for(m, size, cpipe)
            r = time_pipeline(cpipe, [img], cfg.warmup, cfg.crowded_repeats, [crefs[0]] if crefs is not None else None)
            stages["crowded"] = {"image": name, "annotated_faces": faces, "score_threshold": EVAL_SCORE_THRESHOLD,
                                 "postprocess_outputs": cwhat, **r}
            log(f"  crowded image {name} at score {EVAL_SCORE_THRESHOLD}: decoding + NMS "
                f"{r['postprocess_ms']:.2f} ms, {100 * (r['postprocess_share'] or 0):.1f} % of end-to-end")
        return stages

    # ---- Table 1: stages
    stages: dict[str, Any] | None = None
    stage_note = ""
    pick = _pick_stage_config(models, cfg.sizes) if cfg.stage_split else None
    if cfg.stage_split and pick is None:
        stage_note = "no float32 model to cut into stages"
    if pick is not None and not graphs:
        stage_note, pick = f"cutting the model into stages {ONNX_EXTRA}", None
    if pick is not None:
        from .graph import split_stages

        m, size = pick
        t = cfg.threads[0]
        log(f"Table 1: stages of {m.label} float32 @{size}, {t} thread(s)")
        stage_key = ("stages", sha(m.float32.path), size, t, crowds[0][1] if crowds else None)
        try:
            cuts = split_stages(m.float32.path, m.key_dir(cache_root) / "stages")
        except ValueError as exc:
            stage_note = str(exc)
        else:
            stages = journal.get(stage_key)
            if stages is not None:
                log("  reused from the earlier run")
            else:
                stages = journal.put(stage_key, measure_stages(m, size, t, cuts))

    # ---- Tables 2-3: latency
    configs = [(m, s, p, t) for m in models for s in cfg.sizes for p in m.variants for t in cfg.threads]
    latency: list[dict[str, Any]] = []
    eta = _Eta(len(configs))
    for i, (m, s, p, t) in enumerate(configs, 1):
        v = m.variants[p]
        key = ("latency", sha(v.path_for(s)), p, s, t)
        row = journal.get(key)
        t0 = time.perf_counter()
        if row is None:
            pipe = pipe_for(m, p, s, t)
            refs, _, what = reference_for(m, s, pipe)
            r = time_pipeline(pipe, images, cfg.warmup, cfg.repeats, refs)
            row = journal.put(key, {
                "model": m.label, "alpha": m.alpha, "trained": m.trained, "input_size": s, "precision": p,
                "backend": v.backend, "threads": t, **r, "postprocess_outputs": what,
                "file_bytes": v.path_for(s).stat().st_size, **facts[(m.label, s)], **_paper_ms(m.alpha, s, p)})
            left = eta.step(time.perf_counter() - t0)
        else:
            left = eta.step(None) + ", reused"
        latency.append(row)
        log(f"latency {i}/{len(configs)}: {m.label} {p} @{s} threads={t}: median {row['median_ms']:.2f} ms, "
            f"p90 {row['p90_ms']:.2f} ms, post-processing {100 * (row['postprocess_share'] or 0):.1f} % ({left})")
    for row in latency:
        base = next((b for b in latency if b["model"] == row["model"] and b["input_size"] == row["input_size"]
                     and b["threads"] == row["threads"] and b["precision"] == "float32"), None)
        row["speedup_vs_float32"] = _rel(base["median_ms"], row["median_ms"]) if base else None
        f32 = next((mr["variants"].get("float32") for mr in model_rows if mr["label"] == row["model"]), None)
        row["size_reduction_vs_float32"] = _rel(f32["file_bytes"], row["file_bytes"]) if f32 else None

    # ---- post-processing on the most crowded images
    crowded_rows: list[dict[str, Any]] = []
    if crowds:
        t = cfg.threads[0]
        log("crowded images: " + ", ".join(f"{name} ({faces} faces)" for _, name, faces in crowds))
        jobs = [(m, s, p, thr) for m in models for s in cfg.sizes for p in m.variants
                for thr in (0.5, EVAL_SCORE_THRESHOLD)]
        eta = _Eta(len(jobs))
        for i, (m, s, p, thr) in enumerate(jobs, 1):
            key = ("crowded", sha(m.variants[p].path_for(s)), p, s, t, thr, [name for _, name, _ in crowds])
            rows = journal.get(key)
            t0 = time.perf_counter()
            if rows is None:
                pipe = pipe_for(m, p, s, t, thr)
                _, crefs, what = reference_for(m, s, pipe)
                rows = {"rows": []}
                for k, (img, name, faces) in enumerate(crowds):
                    r = time_pipeline(pipe, [img], cfg.warmup, cfg.crowded_repeats,
                                      [crefs[k]] if crefs is not None else None)
                    rows["rows"].append({"model": m.label, "alpha": m.alpha, "trained": m.trained,
                                         "input_size": s, "precision": p, "threads": t, "score_threshold": thr,
                                         "image": name, "annotated_faces": faces, **r, "postprocess_outputs": what})
                journal.put(key, rows)
                left = eta.step(time.perf_counter() - t0)
            else:
                left = eta.step(None) + ", reused"
            crowded_rows += rows["rows"]
            if i % 4 == 0 or i == len(jobs):
                log(f"crowded images {i}/{len(jobs)} ({left})")
    # the limit applies at the deployment threshold; the evaluation threshold (0.02, hundreds of
    # candidates on a crowd) is the stress case, reported beside it
    checked = [r for r in latency + crowded_rows if "not representative" not in r["postprocess_outputs"]
               and r.get("score_threshold", 0.5) == 0.5]
    stress = [r["postprocess_share"] for r in crowded_rows if r["score_threshold"] != 0.5
              and "not representative" not in r["postprocess_outputs"] and r["postprocess_share"] is not None]
    shares = [r["postprocess_share"] for r in checked if r["postprocess_share"] is not None]
    post = {
        "limit": POSTPROCESS_LIMIT,
        "max_share": max(shares) if shares else None,
        "ok": (max(shares) < POSTPROCESS_LIMIT) if shares else None,
        "checked_configurations": len(shares),
        "share_statistic": "median over runs of decoding + NMS / end-to-end, per configuration",
        "max_share_at_eval_threshold": max(stress) if stress else None,
        "eval_score_threshold": EVAL_SCORE_THRESHOLD,
        "crowded_images": [{"image": name, "annotated_faces": faces} for _, name, faces in crowds],
        "paper_nms_share": round(paper.nms_share_cpu(), 4),
    }
    pipes.clear()

    # ---- Table 4: accuracy
    accuracy, acc_note = _accuracy(cfg, models, cache_root, log, sha)

    # ---- frontier
    frontier = pareto_front(latency, accuracy, cfg.threads[0])

    return {
        "facelite_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": cfg.command,
        "quick": cfg.quick,
        "machine": machine_info(),
        "settings": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()
               if k not in ("cache_root", "show_progress", "command", "extra", "models")},
            "models": list(cfg.models),
            "images_source": image_source,
            "image_names": image_names,
            "score_threshold": 0.5,
            "nms_threshold": 0.4,
            "cv2_threads": 1,
            "cache_root": str(cache_root),
            **cfg.extra,
        },
        "models": model_rows,
        "missing_variants": missing,
        "stages": stages,
        "stages_note": stage_note,
        "latency": latency,
        "crowded": crowded_rows,
        "postprocess": post,
        "accuracy": accuracy,
        "accuracy_note": acc_note,
        "frontier": frontier,
        "paper": paper.as_dict(),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
        "reused_measurements": journal.reused,
    }


def _accuracy(cfg: BenchConfig, models: list[BenchModel], cache_root: Path, log: _Log,
              sha: Callable[[Path], str]) -> tuple[list[dict[str, Any]], str]:
    if not cfg.accuracy:
        return [], "not measured (--no-ap)"
    from ..evaluation import widerface as wf

    split = wf.default_split_dir()
    if not (split / "images.txt").is_file() or not (wf.default_gt_dir() / "wider_face_val.mat").is_file():
        return [], f"not measured: no WIDER FACE dev split / ground truth under {shared_dir()}"
    try:
        import scipy  # noqa: F401
    except ModuleNotFoundError:
        return [], "not measured: reading the ground truth needs scipy (pip install 'facelite[eval]')"
    from ..detector import FaceDetector

    names = _spread(wf.read_image_list(split), cfg.ap_images)
    subset = len(names) < len(wf.read_image_list(split))
    rows = []
    for m in models:
        for s in cfg.sizes:
            for p, v in m.variants.items():
                base = {"model": m.label, "alpha": m.alpha, "trained": m.trained, "input_size": s, "precision": p}
                pap = paper.TABLE4_AP.get((round(m.alpha, 2), s))
                if pap:
                    base["paper_ap"] = pap
                if not m.trained:
                    rows.append({**base, "ap": None, "note": "random weights"})
                    continue
                det = FaceDetector(model=v.path_for(s), input_size=s, score_threshold=wf.EVAL_SCORE_THRESHOLD,
                                   nms_threshold=wf.EVAL_NMS_THRESHOLD, keep_top_k=wf.EVAL_MAX_FACES,
                                   threads=cfg.ap_threads)
                digest = sha(v.path_for(s))
                settings = {"model_sha256": digest, "input_size": s, "score_threshold": wf.EVAL_SCORE_THRESHOLD,
                            "nms_threshold": wf.EVAL_NMS_THRESHOLD, "keep_top_k": wf.EVAL_MAX_FACES,
                            "landmark_voting": det.landmark_voting, "box_voting": det.box_voting,
                            "facelite_version": __version__}
                log(f"AP: {m.label} {p} @{s} on {len(names)} dev images")
                run = wf.run_detector_on_split(
                    # one folder per setting (the prediction cache refuses other settings)
                    det.detect_arrays, split, names, cache_dir=cache_root / digest[:16] / f"ap-{s}-{_digest(settings)}",
                    cache_settings=settings, show_progress=cfg.show_progress, desc=f"AP {m.label} {p} @{s}",
                )
                res = wf.evaluate_widerface(run.predictions, None, names)
                rows.append({**base, "ap": {k: round(float(a), 4) for k, a in res.ap.items()},
                             "num_images": res.num_images, "num_faces": res.num_faces})
    note = f"WIDER FACE val, dev split: {len(names)} images" + (" (an evenly spaced subset: not comparable with the full split)" if subset else "")
    return rows, note


def _digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def pareto_front(latency: list[dict[str, Any]], accuracy: list[dict[str, Any]], threads: int) -> list[dict[str, Any]]:
    """Configurations (``threads`` threads) with an AP (Medium), sorted by latency, flagged
    ``on_front`` when no other configuration is both faster and at least as accurate."""
    ap = {(a["model"], a["input_size"], a["precision"]): a["ap"]["medium"] for a in accuracy if a.get("ap")}
    pts = []
    for r in latency:
        k = (r["model"], r["input_size"], r["precision"])
        if r["threads"] == threads and k in ap:
            pts.append({"model": r["model"], "alpha": r["alpha"], "input_size": r["input_size"], "precision": r["precision"],
                        "median_ms": r["median_ms"], "ap_medium": ap[k]})
    pts.sort(key=lambda d: (d["median_ms"], -d["ap_medium"]))
    best = -1.0
    for d in pts:
        d["on_front"] = d["ap_medium"] > best
        best = max(best, d["ap_medium"])
    return pts
