"""Throughput of ``facelite detect`` on a folder: the plain path (``--workers`` decoding threads,
the network on all cores, then on 1 thread) against ``--ray`` with 1 and 2 actors (1 thread
each), on this machine.

    python -m benchmarks.ray_throughput                       # the WIDER FACE dev split (502 images)
    python -m benchmarks.ray_throughput --limit 100 --actors 1 2 --input-size 320 --json

Each mode runs ``facelite detect FOLDER --jsonl ...`` in this process. The time counted is the
whole command (listing, actor start-up and model loading, reading, detection, writing the JSONL);
the Ray instance itself is started once beforehand (``ray.init``, a few seconds, reported
separately), as a cluster would already be running. A benchmark, not a test: the numbers depend
on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEV_IMAGES = Path("data") / "widerface" / "dev" / "images"


def _detect(args: list[str]) -> tuple[int, float, str]:
    from facelite.cli import main

    err = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stderr(err):
        rc = main(["detect", *args])
    return rc, time.perf_counter() - t, err.getvalue()


def _records(jsonl: Path) -> list[dict]:
    """The records of a JSONL output without their timings (which differ between any two runs)."""
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    for r in records:
        r.pop("timings_ms", None)
    return records


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return None


def run(
    images: str | os.PathLike[str],
    limit: int | None = None,
    actors: tuple[int, ...] = (1, 2),
    workers: int = 2,
    input_size: int = 640,
    model: str = "mobilenetv2-0.35",
    precision: str = "float32",
    work_dir: str | os.PathLike[str] | None = None,
    plain_threads: tuple[int | None, ...] = (None, 1),
) -> list[dict[str, Any]]:
    """One row per mode: ``mode`` (plain with each of ``plain_threads``, None = all cores; then ray
    with each of ``actors``, 1 thread each), ``actors``, ``threads``, ``workers``, ``images``,
    ``wall_s`` and ``images_per_s`` (of the whole command), ``detector_ms`` (mean per image),
    ``load`` (the 1-minute load average before it), ``same_records`` (its JSONL equals the first
    mode's, timings aside); ``ray_init_s`` on the first Ray row when this call started Ray."""
    import ray

    from facelite.commands.detect import iter_images

    files = [str(p) for p, _ in iter_images([str(images)])][:limit]
    if not files:
        raise ValueError(f"no images in {images}")
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="ray-throughput-") as tmp:
            return run(images, limit=limit, actors=actors, workers=workers, input_size=input_size, model=model,
                       precision=precision, work_dir=tmp, plain_threads=plain_threads)
    work = Path(work_dir)
    common = ["--model", model, "--precision", precision, "--input-size", str(input_size), "-q"]
    rows = []

    def row(mode: str, n_actors: int | None, threads: int | None, rc: int, wall: float, err: str) -> dict:
        if rc not in (0, 1):
            raise RuntimeError(f"facelite detect ({mode}) failed: {err.strip()}")
        m = re.search(r"(\d+) images?.*?, ([\d.]+) ms/image in the detector", err)
        done = int(m.group(1)) if m else 0
        return {"mode": mode, "actors": n_actors, "threads": threads, "workers": workers if mode == "plain" else None,
                "images": done, "wall_s": round(wall, 2), "images_per_s": round(done / wall, 2),
                "detector_ms": float(m.group(2)) if m else None, "load": load}

    for threads in plain_threads:
        load = _load()
        extra = ["--threads", str(threads)] if threads is not None else []
        rc, wall, err = _detect([*files, *common, *extra, "--workers", str(workers),
                                 "--jsonl", str(work / f"plain-{threads}.jsonl")])
        rows.append(row("plain", None, threads, rc, wall, err))
    started, init_s = False, None
    if not ray.is_initialized():
        t = time.perf_counter()
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        started, init_s = True, round(time.perf_counter() - t, 2)
    try:
        for n in actors:
            load = _load()
            out = work / f"ray-{n}.jsonl"
            rc, wall, err = _detect([*files, *common, "--ray", "--ray-actors", str(n), "--threads", "1",
                                     "--jsonl", str(out)])
            rows.append(row("ray", n, 1, rc, wall, err))
    finally:
        if started:
            ray.shutdown()
    outputs = sorted(work.glob("*.jsonl"), key=lambda f: f.stat().st_mtime)
    reference = _records(outputs[0])
    for r, out in zip(rows, outputs):
        r["same_records"] = _records(out) == reference
    if init_s is not None and len(rows) > len(plain_threads):
        rows[len(plain_threads)]["ray_init_s"] = init_s
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| mode | network threads | decoding workers | images | wall s | images/s | detector ms/image | load "
             "| same records |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r["mode"] == "ray":
            mode, who = f"--ray, {r['actors']} actor{'s' if r['actors'] != 1 else ''}", f"{r['threads']} per actor"
        else:
            mode, who = "plain", str(r["threads"]) if r["threads"] is not None else "all cores"
        lines.append(f"| {mode} | {who} | {r['workers'] if r['workers'] is not None else '—'} | {r['images']} | "
                     f"{r['wall_s']:.1f} | {r['images_per_s']:.1f} | {r['detector_ms']} | {r['load']} | "
                     f"{'yes' if r.get('same_records') else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from facelite.paths import shared_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=Path, default=shared_dir() / DEV_IMAGES,
                   help="folder of images (default: $FACELITE_SHARED/data/widerface/dev/images)")
    p.add_argument("--limit", type=int, default=None, help="the first N images only")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="Ray actor counts (default: 1 2)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads of the plain path (default: 2)")
    p.add_argument("--plain-threads", type=int, nargs="*", default=[0, 1],
                   help="network threads of the plain runs, 0 = all cores (default: 0 1)")
    p.add_argument("--input-size", type=int, default=640)
    p.add_argument("--model", default="mobilenetv2-0.35")
    p.add_argument("--precision", default="float32")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    a = p.parse_args(argv)
    rows = run(a.images, limit=a.limit, actors=tuple(a.actors), workers=a.workers, input_size=a.input_size,
               model=a.model, precision=a.precision, plain_threads=tuple(t or None for t in a.plain_threads))
    print(json.dumps(rows, indent=2) if a.json else table(rows))
    print(f"{os.cpu_count()} logical cores; {a.model} {a.precision} @{a.input_size}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
