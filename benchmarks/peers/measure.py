"""What one comparison row measures: WIDER FACE AP, landmark error, latency, size.

Each ``measure_*`` function takes a built detector (see :mod:`benchmarks.registry`) and returns a
JSON-ready dict. The evaluation code is facelite's own (:mod:`facelite.evaluation`), the timing
statistics are facelite bench's (:func:`facelite.bench.measure.stats`), so every model, facelite's
included, goes through exactly the same code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["machine_info", "measure_ap", "measure_landmarks", "measure_latency", "model_size", "params_of"]


def measure_ap(detector: Callable, names: Sequence[str], cache_dir: Path | None, settings: dict[str, Any],
               show_progress: bool, desc: str) -> dict[str, Any]:
    """Dev-split AP (Easy / Medium / Hard) of ``detector`` (built with score threshold 0.02) on
    the images ``names``; per-image predictions cached in ``cache_dir`` (resumable)."""
    from facelite.evaluation import widerface as wf

    split = wf.default_split_dir()
    run = wf.run_detector_on_split(detector, split, names, cache_dir=cache_dir, cache_settings=settings,
                                   show_progress=show_progress, desc=desc)
    res = wf.evaluate_widerface(run.predictions, None, names)
    return {
        "ap": {k: None if np.isnan(v) else round(float(v), 4) for k, v in res.ap.items()},
        "num_images": res.num_images,
        "num_faces": res.num_faces,
        "num_predictions": res.num_predictions,
        "images_per_second": round(run.images_per_second, 2) if run.num_computed else None,
    }


def measure_landmarks(detector: Callable, limit: int | None, settings: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    """Landmark error on the held-out 5-point crops (:func:`facelite.evaluation.landmarks.evaluate_landmarks`,
    the code path of ``eval_peer --task landmarks``); ``detector`` built with score threshold 0.5."""
    from facelite.evaluation import landmarks as lm

    res = lm.evaluate_landmarks(detector, limit=limit, show_progress=show_progress, settings=settings)
    s = res.to_dict()
    keep = ("crops", "detected", "miss_rate", "nme_io_mean", "nme_io_median", "nme_box_mean", "failure_rate",
            "failure_or_miss_rate", f"ced_auc@{res.failure_threshold:g}", "failure_threshold")
    return {k: s[k] for k in keep if k in s}


def measure_latency(detector: Callable, images: Sequence[np.ndarray], warmup: int, repeats: int) -> dict[str, Any]:
    """End-to-end time of ``detector(image)`` (preprocessing, network, decoding, NMS; images already
    decoded), as facelite bench times its own pipeline: each image ``warmup`` times untimed, then
    the images round-robin ``repeats`` times. Median / p90 / mean / min over all timed runs (ms),
    and the load average before and after."""
    from facelite.bench.measure import stats

    for img in images:
        for _ in range(warmup):
            detector(img)
    load_before = _loadavg()
    samples = []
    for _ in range(repeats):
        for img in images:
            t = time.perf_counter()
            detector(img)
            samples.append(1000.0 * (time.perf_counter() - t))
    st = stats(samples)
    return {
        "median_ms": st["median"], "p90_ms": st["p90"], "mean_ms": st["mean"], "min_ms": st["min"], "samples": st["n"],
        "images": len(images), "warmup": warmup, "repeats": repeats,
        "load_average_before": load_before, "load_average_after": _loadavg(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def params_of(path: str | os.PathLike) -> int | None:
    """Parameters of an ONNX network as deployed: the elements of every convolution's weight and bias
    (:func:`facelite.bench.graph.count_params`; batch norm folded into them), plus, for a batch norm
    left unfolded in the file behind a convolution without bias, the bias that folding would add.
    A PyTorch state dict (``.pt``): the elements of its float tensors. Other files: ``None``."""
    import onnx

    from facelite.bench.graph import count_params

    if Path(path).suffix.lower() == ".pt":  # a PyTorch state dict (MTCNN): every float tensor
        import torch

        sd = torch.load(str(path), map_location="cpu", weights_only=True)
        return int(sum(v.numel() for v in sd.values() if v.is_floating_point()))
    if Path(path).suffix.lower() != ".onnx":
        return None
    m = onnx.load(str(path))
    total = count_params(m)
    producer = {o: n for n in m.graph.node for o in n.output}
    shapes = {i.name: tuple(i.dims) for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        conv = producer.get(node.input[0])
        if conv is not None and conv.op_type == "Conv" and (len(conv.input) < 3 or not conv.input[2]):
            total += int(np.prod(shapes.get(node.input[1], (0,))))
    return total


def model_size(files: Sequence[Path]) -> dict[str, Any]:
    """``{"file_bytes": total bytes, "params": parameters (ONNX files only, else None)}``."""
    size = sum(p.stat().st_size for p in files)
    params = [params_of(p) for p in files]
    return {"file_bytes": size, "params": None if any(p is None for p in params) else sum(params)}


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores, OS, load average, library versions. Like
    :func:`facelite.bench.run.machine_info`, but versions are read from the installed packages'
    metadata instead of importing them (importing torch alone takes seconds)."""
    import platform
    from importlib import metadata

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for dist in ("facelite", "onnxruntime", "numpy", "opencv-python-headless", "opencv-python", "onnx", "scipy",
                 "torch", "ai-edge-litert"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    import cv2

    versions["cv2"] = cv2.__version__
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "load_average_at_start": _loadavg(), "versions": versions}
