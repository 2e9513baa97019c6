"""Timed runs of facelite's own run-time path.

Every measurement calls the same functions :meth:`facelite.FaceDetector.detect_arrays` calls
(:func:`facelite.preprocess.preprocess`, the backend's ``run``, the detector's decoding + NMS)
and times each step with :func:`time.perf_counter`. Images are decoded beforehand (decoding is
not timed); each image is run ``warmup`` times untimed first (the first run on a new input
shape allocates), then the images are run round-robin ``repeats`` times, so that a slow
moment of the machine spreads over all images instead of one.

Medians and 90th percentiles are over all timed samples (every image, every repetition);
the per-step breakdowns are means, because means add up (medians do not).

*Post-processing of random-weight networks.* Decoding + NMS cost depends only on how many
anchors pass the score threshold, i.e. on the network's outputs, and a random network's
outputs are not those of a detector. For those, :class:`Pipeline` can decode the outputs of a
*trained* reference model (same anchors) for the same image at the same size instead: the
network time is the random network's own (it does not depend on the weights), the
post-processing time is a real detector's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..anchors import num_anchors
from ..detector import FaceDetector
from ..preprocess import letterbox_geometry, preprocess

__all__ = ["Pipeline", "stats", "time_pipeline", "time_stages"]

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


def stats(values: Sequence[float]) -> dict[str, float]:
    """``median``, ``p90``, ``mean``, ``min`` of ``values`` (ms), rounded to µs, and ``n``."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "mean": float("nan"), "min": float("nan"), "n": 0}
    return {
        "median": round(float(np.median(a)), 3),
        "p90": round(float(np.percentile(a, 90)), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "n": int(a.size),
    }


@dataclass
class Timing:
    """One pass through the pipeline: seconds per step, candidates (scores >= threshold), detections."""

    pre: float
    net: float
    post: float
    candidates: int
    detections: int

    @property
    def total(self) -> float:
        return self.pre + self.net + self.post


class Pipeline:
    """A :class:`~facelite.FaceDetector` whose steps are timed one by one.

    Args:
        model: model file (``.onnx`` or ``.tflite``).
        input_size, threads, score_threshold, nms_threshold, keep_top_k: as for FaceDetector.
    """

    def __init__(
        self,
        model: str | Any,
        input_size: int,
        threads: int | None = 1,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        keep_top_k: int = 750,
    ) -> None:
        self.detector = FaceDetector(
            model=model,
            input_size=input_size,
            threads=threads,
            score_threshold=score_threshold,
            nms_threshold=nms_threshold,
            keep_top_k=keep_top_k,
        )
        self.spec = self.detector.spec
        self.input_size = input_size

    def network_outputs(self, image: np.ndarray) -> Outputs:
        """The raw network outputs for ``image`` (untimed; for decoding them in another pipeline)."""
        tensor, _ = preprocess(image, self.spec, self.input_size)
        return self.detector.backend.run(tensor)

    def compatible(self, other: Pipeline, image: np.ndarray) -> bool:
        """Whether ``other``'s outputs for ``image`` can be decoded by this pipeline (same anchors)."""
        a, b = self.spec, other.spec
        if (a.strides, a.min_sizes, a.variances, a.pad_multiple) != (b.strides, b.min_sizes, b.variances, b.pad_multiple):
            return False
        box = letterbox_geometry(image.shape[0], image.shape[1], self.input_size, a.pad_multiple)
        return num_anchors(a, *box.padded_size) > 0 and self.input_size == other.input_size

    def run(self, image: np.ndarray, outputs: Outputs | None = None) -> Timing:
        """Preprocess, run the network and decode + NMS once, timing each step.

        ``outputs``: decode these network outputs (of a trained reference model, same image and
        size) instead of this network's own; the network is still run and timed.
        """
        det = self.detector
        t0 = time.perf_counter()
        tensor, box = preprocess(image, self.spec, self.input_size)
        t1 = time.perf_counter()
        own = det.backend.run(tensor)
        t2 = time.perf_counter()
        scores, deltas, lmk = outputs if outputs is not None else own
        boxes, _, _ = det._postprocess(scores[0], deltas[0], lmk[0], box)
        t3 = time.perf_counter()
        candidates = int(np.count_nonzero(scores[0] >= det.score_threshold))
        return Timing(t1 - t0, t2 - t1, t3 - t2, candidates, len(boxes))


def _summary(samples: list[Timing]) -> dict[str, Any]:
    ms = lambda xs: [1000.0 * x for x in xs]  # noqa: E731
    total = stats(ms([s.total for s in samples]))
    pre, net, post = (stats(ms([getattr(s, k) for s in samples]))["mean"] for k in ("pre", "net", "post"))
    return {
        "median_ms": total["median"],
        "p90_ms": total["p90"],
        "mean_ms": total["mean"],
        "min_ms": total["min"],
        "samples": total["n"],
        "preprocess_ms": pre,
        "network_ms": net,
        "postprocess_ms": post,
        # share per run, then the median: one run pre-empted by the OS (a spike in any step) does not move it
        "postprocess_share": round(float(np.median([s.post / s.total for s in samples])), 4) if samples else None,
        "postprocess_share_of_means": round(post / total["mean"], 4) if total["mean"] > 0 else None,
        "candidates": round(float(np.mean([s.candidates for s in samples])), 1) if samples else 0,
        "detections": round(float(np.mean([s.detections for s in samples])), 1) if samples else 0,
    }


def time_pipeline(
    pipe: Pipeline,
    images: Sequence[np.ndarray],
    warmup: int,
    repeats: int,
    reference: Sequence[Outputs] | None = None,
) -> dict[str, Any]:
    """End-to-end latency over ``images`` (see the module doc). ``reference``: per image, the
    outputs to decode instead of the network's own. Returns the summary dict of the samples."""
    refs = list(reference) if reference is not None else [None] * len(images)
    for img, ref in zip(images, refs):
        for _ in range(warmup):
            pipe.run(img, ref)
    samples = [pipe.run(img, ref) for _ in range(repeats) for img, ref in zip(images, refs)]
    return _summary(samples)


def time_stages(
    pipe: Pipeline,
    cuts: Sequence[Any],
    images: Sequence[np.ndarray],
    warmup: int,
    repeats: int,
    threads: int | None = 1,
    reference: Sequence[Outputs] | None = None,
) -> dict[str, Any]:
    """Time per stage: preprocessing, each network stage (sub-models ``cuts`` from
    :func:`facelite.bench.graph.split_stages`, run one after the other), decoding + NMS; and, in
    the same passes, the whole network as one model, for the check that the stages add up.

    Returns ``stages_ms`` (stage -> mean ms), ``sum_ms``, ``end_to_end_ms`` (mean of preprocess +
    whole network + post-processing), ``difference`` (sum / end-to-end - 1), ``shares`` (of the sum),
    and ``max_abs_diff``: the largest difference between the chained stages' outputs and the whole
    network's (0 means the cut computes exactly the same thing).
    """
    import onnxruntime as ort

    from ..runtime.onnx import INPUT_NAME, OUTPUT_NAMES, session_options

    sessions = [ort.InferenceSession(str(c.path), session_options(threads), providers=["CPUExecutionProvider"]) for c in cuts]
    refs = list(reference) if reference is not None else [None] * len(images)
    det = pipe.detector
    names = ["preprocess"] + [c.name for c in cuts] + ["postprocess"]
    acc = {n: [] for n in names}
    whole_net: list[float] = []
    end_to_end: list[float] = []
    max_diff = 0.0

    def one(img: np.ndarray, ref: Outputs | None, record: bool) -> None:
        nonlocal max_diff
        t0 = time.perf_counter()
        tensor, box = preprocess(img, pipe.spec, pipe.input_size)
        t1 = time.perf_counter()
        feed = {INPUT_NAME: tensor}
        times = []
        for cut, sess in zip(cuts, sessions):
            t = time.perf_counter()
            outs = sess.run(list(cut.outputs), {k: feed[k] for k in cut.inputs})
            times.append(time.perf_counter() - t)
            feed.update(zip(cut.outputs, outs))
        t2 = time.perf_counter()
        own = det.backend.run(tensor)
        t3 = time.perf_counter()
        scores, deltas, lmk = ref if ref is not None else own
        det._postprocess(scores[0], deltas[0], lmk[0], box)
        t4 = time.perf_counter()
        if record:
            acc["preprocess"].append(t1 - t0)
            for c, t in zip(cuts, times):
                acc[c.name].append(t)
            acc["postprocess"].append(t4 - t3)
            whole_net.append(t3 - t2)
            end_to_end.append((t1 - t0) + (t3 - t2) + (t4 - t3))
        else:
            for name, a in zip(OUTPUT_NAMES, own):
                max_diff = max(max_diff, float(np.max(np.abs(np.asarray(feed[name], np.float32) - a))))

    for img, ref in zip(images, refs):
        for _ in range(max(1, warmup)):
            one(img, ref, record=False)
    for _ in range(repeats):
        for img, ref in zip(images, refs):
            one(img, ref, record=True)
    means = {n: round(1000.0 * float(np.mean(v)), 3) for n, v in acc.items()}
    total = sum(means.values())
    e2e = 1000.0 * float(np.mean(end_to_end))
    return {
        "stages_ms": means,
        "sum_ms": round(total, 3),
        "network_stages_ms": round(sum(means[c.name] for c in cuts), 3),
        "network_whole_ms": round(1000.0 * float(np.mean(whole_net)), 3),
        "end_to_end_ms": round(e2e, 3),
        "difference": round(total / e2e - 1.0, 4) if e2e > 0 else None,
        "shares": {n: round(v / total, 4) for n, v in means.items()} if total > 0 else {},
        "samples": len(end_to_end),
        "max_abs_diff": max_diff,
    }
