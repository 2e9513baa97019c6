"""``facelite bench``: latency per stage and end to end, model sizes, AP, and the accuracy-speed front."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = "speed and accuracy tables (the paper's Tables 1-4) on this machine"

DESCRIPTION = """\
Measure facelite on this machine and write the paper's tables: time per stage (Table 1),
end-to-end latency, file size, parameters and MACs of every model x input size x precision
(Tables 2-3), WIDER FACE dev-split AP (Table 4), the post-processing share (also on the most
crowded dev image), and a plot of AP against latency. The paper's own numbers are printed
beside ours (their hardware).

Models: the shipped ones that are installed (default), --models NAME|PATH.onnx ..., and/or
--random-weights (exports random-weight networks, needs torch: latency only, AP n/a).
Derived files (dynamic / static int8, TFLite, stage sub-models) are cached under
~/.cache/facelite/bench/ ($FACELITE_CACHE), keyed by the source file's SHA-256.

Measure on a quiet machine: the numbers are only as good as the machine is idle.
Progress (with the time left) goes to standard error and to OUT/bench.log; every
measurement is written to OUT/bench-rows.jsonl as soon as it is made, and --resume
after an interruption measures only what is missing (same settings and machine).

  facelite bench --quick                           # reduced grid, < 2 minutes
  facelite bench --out docs/bench                  # the full run (RESULTS.md)
  facelite bench --random-weights --no-ap --out out/bench-random
"""

QUICK = {"alphas": [0.35], "sizes": [320], "images": 3, "warmup": 1, "repeats": 5, "crowded_repeats": 3,
         "ap_images": 20, "calibration": 8, "calibration_size": 320}
FULL = {"alphas": [1.0, 0.35], "sizes": [640, 320], "images": 20, "warmup": 2, "repeats": 10, "crowded_repeats": 10,
        "ap_images": None, "calibration": 100, "calibration_size": 640}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="reduced grid for a smoke test (α 0.35, input 320, 3 images, AP on 20 images; under 2 minutes)")
    p.add_argument("--models", nargs="+", metavar="NAME|PATH", default=[],
                   help="shipped model names and/or facelite .onnx files (default: every installed shipped model)")
    p.add_argument("--random-weights", action="store_true",
                   help="also measure random-weight networks of each --alphas width (needs torch; AP n/a)")
    p.add_argument("--alphas", nargs="+", type=float, help="widths for --random-weights (default 1.0 0.35; quick: 0.35)")
    p.add_argument("--sizes", nargs="+", type=int, help="input sizes, longer image side (default 640 320; quick: 320)")
    p.add_argument("--precisions", nargs="+",
                   help="variants: float32 dynamic-int8 static-int8, and tflite-float32 tflite-dynamic-int8 tflite-int8 "
                        "(default: the three ONNX ones, plus TFLite when the tflite extra is installed)")
    p.add_argument("--threads", nargs="+", type=int, default=[1], help="thread counts to time (default: 1)")
    p.add_argument("--images", type=int, help="dev images to time (default 20; quick: 3)")
    p.add_argument("--warmup", type=int, help="untimed runs per image and configuration (default 2; quick: 1)")
    p.add_argument("--repeats", type=int, help="timed rounds over the images (default 10; quick: 5)")
    p.add_argument("--ap-images", type=int, help="AP on this many dev images (default: all 502; quick: 20)")
    p.add_argument("--no-ap", action="store_true", help="skip the AP measurement (Table 4)")
    p.add_argument("--no-stages", action="store_true", help="skip the stage split (Table 1)")
    p.add_argument("--crowded", type=int, default=3, metavar="N",
                   help="time the post-processing on the N most crowded dev images (default: %(default)s; 0: skip)")
    p.add_argument("--calibration-images", type=int, help="training images for static int8 calibration (default 100)")
    p.add_argument("--calibration-size", type=int, help="input size for calibration (default 640; quick: 320)")
    p.add_argument("--out", type=Path, default=Path("out/bench"),
                   help="folder for bench.json, bench.md, bench-frontier.png (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, help="cache for derived models (default: ~/.cache/facelite/bench)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the measurements an interrupted run left in --out (same settings, same machine)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _default_precisions() -> list[str]:
    from ..bench.models import PRECISIONS

    precisions = list(PRECISIONS)
    try:
        from ..export import tflite
    except ImportError:
        return precisions
    if tflite.unavailable_reason() is None:
        precisions += [f"tflite-{k}" for k in tflite.KINDS]
    return precisions


def _command(args: argparse.Namespace) -> str:
    """The options of this run as a command line (for the report)."""
    parts = ["facelite", "bench"]
    for key, value in vars(args).items():
        if key in ("func", "command", "quiet", "resume") or value in (None, False, []) or (key, value) in (("threads", [1]), ("crowded", 3)):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            parts += [flag, *(str(v) for v in value)]
        elif not (key == "out" and str(value) == "out/bench"):
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from ..bench.report import to_markdown, write_outputs
    from ..bench.run import BenchConfig, run_bench

    preset = QUICK if args.quick else FULL
    pick = lambda value, key: preset[key] if value is None else value  # noqa: E731
    for name in ("images", "repeats", "ap_images", "calibration_images", "calibration_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.warmup is not None and args.warmup < 0:
        raise ValueError("--warmup must be >= 0")
    if args.crowded < 0:
        raise ValueError("--crowded must be >= 0")
    if any(t < 1 for t in args.threads):
        raise ValueError("--threads must be >= 1")
    models = list(args.models)
    random_weights = args.random_weights
    if args.quick and not models and not random_weights:
        from ..models import available_models

        installed = [n for n, p, present in available_models() if present]
        models = installed[:1]  # quick: one model
        random_weights = not models
    cfg = BenchConfig(
        models=models,
        random_weights=random_weights,
        alphas=pick(args.alphas, "alphas"),
        sizes=pick(args.sizes, "sizes"),
        precisions=args.precisions or _default_precisions(),
        threads=args.threads,
        images=pick(args.images, "images"),
        warmup=pick(args.warmup, "warmup"),
        repeats=pick(args.repeats, "repeats"),
        crowded_repeats=preset["crowded_repeats"],
        accuracy=not args.no_ap,
        ap_images=pick(args.ap_images, "ap_images"),
        calibration=pick(args.calibration_images, "calibration"),
        calibration_size=pick(args.calibration_size, "calibration_size"),
        stage_split=not args.no_stages,
        crowded=args.crowded,
        quick=args.quick,
        cache_root=args.cache_dir,
        out_dir=args.out,
        resume=args.resume,
        show_progress=not args.quiet,
        command=_command(args),
    )
    result = run_bench(cfg)
    paths = write_outputs(result, args.out)
    print(to_markdown(result, paths["plot"].name if "plot" in paths else None))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
