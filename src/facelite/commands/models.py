"""``facelite models``: the shipped models (verified against their checksums), or what a model file holds."""

from __future__ import annotations

import argparse
import json

HELP = "list the shipped models (checksums verified), or show the geometry a model file carries"

DESCRIPTION = """\
Without MODEL: one line per shipped model file (name, precision, size, SHA-256,
whether it matches the package's SHA256SUMS); exit code 1 if any is missing or
corrupt. With MODEL (a shipped name, or the path of an .onnx or .tflite file
written by `facelite export`): the geometry and input convention the file
carries in its metadata, which is what the run-time code uses.

With --pick --budget-ms MS: times the shipped configurations (2 widths x 2
input sizes x float32/int8) on this machine (the bundled sample image, or
--images; warm-up excluded; a few seconds, cached per machine and version, so
a second call is instant), prints them with their WIDER FACE dev-split AP, and
names the most accurate one whose median time per image is within MS, with the
options to use it; exit code 1 if none fits (the fastest is named).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="shipped model name or model file path")
    p.add_argument("--precision", default="float32", choices=("float32", "int8"),
                   help="for a shipped name (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    g = p.add_argument_group("picking a configuration for a latency budget")
    g.add_argument("--pick", action="store_true", help="measure the shipped configurations here and pick one")
    g.add_argument("--budget-ms", type=float, metavar="MS", help="with --pick: milliseconds per image")
    g.add_argument("--input-size", type=int, nargs="+", choices=(320, 640), default=[320, 640],
                   help="with --pick: input sizes to consider (default: 320 640)")
    g.add_argument("--threads", type=int, default=None,
                   help="with --pick: ONNX Runtime threads to measure with (default: all cores)")
    g.add_argument("--images", nargs="+", metavar="IMAGE",
                   help="with --pick: images to time on (default: the bundled sample image)")
    g.add_argument("--p90", action="store_true",
                   help="with --pick: the 90th-percentile time must be within the budget (default: the median)")
    g.add_argument("--remeasure", action="store_true", help="with --pick: ignore the cached measurement")
    p.set_defaults(func=run)


def shipped_table() -> list[dict]:
    """One record per shipped name and precision: ``status`` is ok, missing or corrupt."""
    from ..models import MODEL_NAMES, PRECISIONS, ModelChecksumError, ModelNotFoundError, resolve_model, shipped_path

    rows = []
    for name in MODEL_NAMES:
        for precision in PRECISIONS:
            path = shipped_path(name, precision)
            row = {"name": name, "precision": precision, "path": str(path), "bytes": None, "sha256": None,
                   "status": "ok", "default": (name, precision) == (MODEL_NAMES[0], PRECISIONS[0])}
            try:
                resolved = resolve_model(name, precision)
                row.update(bytes=path.stat().st_size, sha256=resolved.sha256)
            except ModelNotFoundError:
                row["status"] = "missing"
            except ModelChecksumError:
                row.update(status="corrupt", bytes=path.stat().st_size)
            rows.append(row)
    return rows


def describe(model: str, precision: str) -> dict:
    """What a model file carries: its resolved path, SHA-256, precision and spec (as a dict)."""
    from dataclasses import asdict

    from ..detector import FaceDetector

    detector = FaceDetector(model, precision=precision, threads=1)
    info = detector.model_info
    return {
        "name": detector.name,
        "path": str(info.path),
        "bytes": info.path.stat().st_size,
        "sha256": info.sha256,
        "shipped": info.shipped,
        "precision": detector.precision,
        "spec": asdict(detector.spec),
    }


def _text(d: dict) -> str:
    s = d["spec"]
    std = s["std"]
    norm = f"(x - {_nums(s['mean'])}) / {_nums(std)}" if len(set(std)) > 1 else f"(x - {_nums(s['mean'])}) / {std[0]:g}"
    sizes = " ".join("(" + ", ".join(str(m) for m in level) + ")" for level in s["min_sizes"])
    return "\n".join([
        f"{d['name']} ({d['precision'] or 'precision not recorded'}){'' if d['shipped'] else ', not a shipped file'}",
        f"  file:       {d['path']} ({d['bytes'] / 1e6:.2f} MB, sha256 {d['sha256'][:16]}...)",
        f"  network:    width multiplier {s['alpha']:g}, FPN + SSH with {s['fpn_channels']} channels",
        f"  anchors:    strides {'/'.join(str(x) for x in s['strides'])}, sizes {sizes} input pixels, "
        f"variances {_nums(s['variances'])}",
        f"  input:      {s['channel_order']}, {norm}, padded to a multiple of {s['pad_multiple']}",
        f"  landmarks:  {', '.join(s['landmark_names'])}",
    ])


def _nums(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def run_pick(args: argparse.Namespace) -> int:
    """``facelite models --pick``: 0 when a configuration fits the budget, 1 when none does."""
    from ..budget import format_table, pick

    if args.budget_ms is None:
        raise ValueError("--pick needs --budget-ms MS (milliseconds per image)")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    result = pick(args.budget_ms, input_sizes=args.input_size, threads=args.threads, images=args.images,
                  statistic="p90" if args.p90 else "median", remeasure=args.remeasure,
                  progress=True)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return 0 if result.chosen is not None else 1


def run(args: argparse.Namespace) -> int:
    if args.pick:
        if args.model is not None:
            raise ValueError("--pick measures the shipped models; give no MODEL with it")
        return run_pick(args)
    if args.budget_ms is not None:
        raise ValueError("--budget-ms goes with --pick")
    if args.model is not None:
        d = describe(args.model, args.precision)
        print(json.dumps(d, indent=2) if args.json else _text(d))
        return 0
    rows = shipped_table()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':<18} {'precision':<9} {'size':>8}  {'sha256':<12}  status")
        for r in rows:
            size = f"{r['bytes'] / 1e6:.2f} MB" if r["bytes"] is not None else "-"
            mark = "  (default)" if r["default"] else ""
            print(f"{r['name']:<18} {r['precision']:<9} {size:>8}  {(r['sha256'] or '-')[:12]:<12}  {r['status']}{mark}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
