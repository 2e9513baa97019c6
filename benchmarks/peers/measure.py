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

__all__ = ["machine_info", "measure_ap", "measure_landmarks", "measure_latency_interleaved", "model_size", "params_of",
           "tflite_conv_params"]


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


def measure_latency_interleaved(detectors: Sequence[Callable], images: Sequence[np.ndarray], warmup: int,
                                repeats: int, show_progress: bool = True) -> list[dict[str, Any]]:
    """Time of ``detector(image)`` for several detectors (preprocessing, network, decoding, NMS;
    images already decoded), as facelite bench times its own pipeline but interleaved: every
    detector runs each image ``warmup`` times untimed, then ``repeats`` rounds, each round every
    detector over all images in turn, so that a busy moment of a shared machine falls on all
    detectors alike.

    Two clocks per call: wall-clock (:func:`time.perf_counter`, what a user waits) and the process's
    CPU time (:func:`time.process_time`). Everything runs on one thread, so on a quiet machine the
    two agree; on a busy one the wall-clock time also counts the waits for a CPU, the CPU time does
    not (it still includes the slowdown from sharing caches and cores).

    Returns one dict per detector: ``median_ms`` / ``p90_ms`` / ``mean_ms`` / ``min_ms`` (wall) and
    ``cpu_median_ms`` / ``cpu_p90_ms`` / ``cpu_mean_ms`` over its timed runs (facelite bench's
    :func:`facelite.bench.measure.stats`), the load average and the time of the session.
    """
    from facelite.bench.measure import stats
    from facelite.progress import Progress

    for det in detectors:
        for img in images:
            for _ in range(warmup):
                det(img)
    load_before, started = _loadavg(), time.strftime("%Y-%m-%d %H:%M:%S")
    wall: list[list[float]] = [[] for _ in detectors]
    cpu: list[list[float]] = [[] for _ in detectors]
    with Progress(total=repeats, desc="latency", unit="round", enabled=show_progress) as bar:
        for _ in range(repeats):
            for det, w, c in zip(detectors, wall, cpu):
                for img in images:
                    t, u = time.perf_counter(), time.process_time()
                    det(img)
                    c.append(1000.0 * (time.process_time() - u))
                    w.append(1000.0 * (time.perf_counter() - t))
            bar.update(1)
    load_after = _loadavg()
    out = []
    for w, c in zip(wall, cpu):
        sw, sc = stats(w), stats(c)
        out.append({
            "median_ms": sw["median"], "p90_ms": sw["p90"], "mean_ms": sw["mean"], "min_ms": sw["min"],
            "cpu_median_ms": sc["median"], "cpu_p90_ms": sc["p90"], "cpu_mean_ms": sc["mean"],
            "samples": sw["n"], "images": len(images), "warmup": warmup, "repeats": repeats,
            "load_average_before": load_before, "load_average_after": load_after,
            "measured_at": started, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        })
    return out


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def params_of(path: str | os.PathLike) -> int | None:
    """Parameters of an ONNX network as deployed: the elements of every convolution's weight and bias
    (:func:`facelite.bench.graph.count_params`; batch norm folded into them), plus, for a batch norm
    left unfolded in the file behind a convolution without bias, the bias that folding would add.
    A PyTorch state dict (``.pt``): the elements of its float tensors. A ``.tflite`` file: the
    weights and biases of its convolutions (:func:`tflite_conv_params`; ``None`` without LiteRT).
    Other files: ``None``."""
    if Path(path).suffix.lower() == ".tflite":
        return tflite_conv_params(path)
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


def tflite_conv_params(path: str | os.PathLike) -> int | None:
    """Elements of the weight and bias inputs of every convolution (``CONV_2D``,
    ``DEPTHWISE_CONV_2D``, ``TRANSPOSE_CONV``, ``FULLY_CONNECTED``) of a ``.tflite`` file's graphs,
    counted from the tensor shapes (float16 weights behind ``DEQUANTIZE`` count once); ``None``
    when LiteRT's flatbuffer schema (``ai-edge-litert``) is not installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    ops = schema.BuiltinOperator
    conv = {ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.TRANSPOSE_CONV, ops.FULLY_CONNECTED}
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    total = 0
    for g in (model.Subgraphs(i) for i in range(model.SubgraphsLength())):
        for op in (g.Operators(i) for i in range(g.OperatorsLength())):
            if codes[op.OpcodeIndex()] not in conv:
                continue
            inputs = op.InputsAsNumpy()
            # TRANSPOSE_CONV: (output shape, weights, input, bias); the others: (input, weights, bias)
            which = [1, 3] if codes[op.OpcodeIndex()] == ops.TRANSPOSE_CONV else [1, 2]
            total += sum(int(np.prod(g.Tensors(int(inputs[k])).ShapeAsNumpy()))
                         for k in which if k < len(inputs) and inputs[k] >= 0)
    return total


def model_size(files: Sequence[Path]) -> dict[str, Any]:
    """``{"file_bytes": total bytes, "params": parameters (ONNX, ``.pt`` and ``.tflite`` files, else None)}``."""
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
