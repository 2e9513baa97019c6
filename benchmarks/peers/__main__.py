"""facelite side by side with the detectors users would pick instead.

    python -m benchmarks.peers --out docs/peers                   # everything (20-40 min on 2 cores)
    python -m benchmarks.peers --out docs/peers --models facelite --doc docs/PEERS.md
                                              # re-measure facelite's rows only, refresh PEERS.md's table
    python -m benchmarks.peers --quick                            # smoke test (about a minute)
    python -m benchmarks.peers --list                             # the model names

For facelite's shipped models and every peer of ``<shared>/peers`` at input 640 and 320: dev-split
AP Easy / Medium / Hard (score 0.02), landmark NME and failure rate on the held-out crops (models
with 5 landmarks), single-thread end-to-end latency (median, p90), parameters and file size.
Writes ``<out>/peers.json``, ``<out>/peers.md`` and ``<out>/peers-ap-latency.png``.

Resumable: every (model, size, part) result is cached under ``<cache>`` keyed by the model file's
SHA-256 and the settings, so an interrupted run continues and a replaced model file is measured
again. ``--models`` measures only those; the other rows are kept from an existing
``<out>/peers.json`` of the same protocol. ``--force`` recomputes the selected rows, ``--retime``
only their latency (e.g. on a quieter machine). Latencies not in the cache are measured last, all
models interleaved, so that the background load of a shared machine falls on all of them alike.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, metavar="NAME",
                   help="model names or groups (all, facelite, peers, yunet, scrfd, ultralight, blazeface); "
                        "default all")
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="input sizes (default 640 320)")
    p.add_argument("--out", type=Path, default=Path("out/peers"), help="output folder (default out/peers)")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder (default <FACELITE_CACHE>/peers, i.e. ~/.cache/facelite/peers)")
    p.add_argument("--quick", action="store_true", help="tiny settings: a few images and crops; not for citing")
    p.add_argument("--force", action="store_true", help="recompute the selected rows (ignore their cache)")
    p.add_argument("--retime", action="store_true", help="recompute only the latency of the selected rows")
    p.add_argument("--ap-images", type=int, default=None, help="evenly spaced dev images for AP (default: all)")
    p.add_argument("--landmark-crops", type=int, default=None, help="held-out crops (default: all)")
    p.add_argument("--latency-images", type=int, default=None, help="dev images timed (default 20)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds over the images (default 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs per image (default 2)")
    p.add_argument("--doc", type=Path, default=None,
                   help="also rewrite the summary table between the peers-summary markers of this Markdown file "
                        "(docs/PEERS.md)")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _protocol(args: argparse.Namespace):
    from .run import QUICK, Protocol

    proto = QUICK if args.quick else Protocol()
    changes: dict[str, Any] = {}
    for arg, field in (("ap_images", "ap_images"), ("landmark_crops", "landmark_crops"),
                       ("latency_images", "latency_images"), ("repeats", "repeats"), ("warmup", "warmup")):
        if getattr(args, arg) is not None:
            changes[field] = getattr(args, arg)
    if args.sizes:
        changes["sizes"] = tuple(args.sizes)
    return replace(proto, **changes)


def _previous_rows(path: Path, protocol: dict[str, Any], log) -> list[dict[str, Any]]:
    """Rows of an existing ``peers.json`` measured with the same protocol (else none)."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    keys = [k for k in protocol if k != "sizes"]
    if any(old.get("protocol", {}).get(k) != protocol[k] for k in keys):
        log(f"{path}: measured with another protocol; its rows are not kept")
        return []
    return old.get("rows", [])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import cv2

    from facelite.paths import cache_dir
    from facelite.progress import Progress

    from ..common import MissingDependencyError
    from ..registry import entries, select
    from .measure import _loadavg, machine_info
    from .report import update_doc, write_outputs
    from .run import RowRunner

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[peers] {msg}", file=sys.stderr, flush=True)

    if args.list:
        for e in entries():
            sizes = "/".join(map(str, e.sizes))
            print(f"{e.name:22s} {sizes:8s} {e.label}{' - ' + e.note if e.note else ''}")
        return 0
    if args.force and args.retime:
        raise ValueError("--force already recomputes the latency; give one of --force and --retime")
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    protocol = _protocol(args)
    chosen = select(args.models)
    cache = args.cache or (cache_dir() / "peers" / ("quick" if protocol.quick else "full"))
    runner = RowRunner(protocol, cache, force=args.force, retime=args.retime, show_progress=not args.quiet, log=log)
    machine = machine_info()
    tasks = [(e, s) for e in chosen for s in protocol.sizes if s in e.sizes]
    log(f"{len(tasks)} row(s): {', '.join(f'{e.name}@{s}' for e, s in tasks)}; cache {cache}")

    rows: dict[tuple[str, int], dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    unavailable: dict[str, str] = {}  # its library is not installed here: earlier rows are kept
    with Progress(total=len(tasks), desc="peers", unit="row", enabled=not args.quiet, log_interval=0.0) as bar:
        for e, s in tasks:
            try:
                rows[(e.name, s)] = runner.row(e, s)
            except FileNotFoundError as exc:
                skipped[e.name] = str(exc)
                log(f"skip {e.name} @{s}: {exc}")
                runner.computed_last = False
            except MissingDependencyError as exc:
                unavailable[e.name] = str(exc)
                log(f"skip {e.name} @{s}: {exc}; its rows in {args.out / 'peers.json'}, if any, are kept")
                runner.computed_last = False
            if runner.computed_last:
                bar.update(1, last=f"{e.name}@{s}")
            else:  # from the cache (or skipped): not counted in the rate, so the ETA stays honest
                bar.total = (bar.total or 1) - 1
    timed = [(e, s) for e, s in tasks if (e.name, s) in rows]
    for k, value in runner.latency(timed).items():
        rows[k]["latency"] = value

    # rows of models not measured now: from the previous output of the same protocol
    proto = protocol.to_dict()
    order = {e.name: i for i, e in enumerate(entries())}
    for r in _previous_rows(args.out / "peers.json", proto, log):
        k = (r["model"], r["input_size"])
        if k not in rows and r["model"] in order and r["input_size"] in protocol.sizes and r["model"] not in skipped:
            rows[k] = r
    for name, why in unavailable.items():
        if not any(m == name for m, _ in rows):
            skipped[name] = why
    ordered = sorted(rows.values(), key=lambda r: (protocol.sizes.index(r["input_size"]), order[r["model"]]))

    machine["load_average_at_end"] = _loadavg()
    result = {
        "command": "python -m benchmarks.peers " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "quick": protocol.quick,
        "machine": machine,
        "protocol": proto,
        "rows": ordered,
        "skipped": skipped,
    }
    paths = write_outputs(result, args.out)
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    if args.doc is not None:
        if not update_doc(result, args.doc):
            raise ValueError(f"{args.doc}: no peers-summary markers to replace")
        log(f"updated the summary table in {args.doc}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"peers: error: {exc}", file=sys.stderr)
        sys.exit(1)
