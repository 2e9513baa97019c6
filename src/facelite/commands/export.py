"""``facelite export``: checkpoint -> float32 ONNX (+ static int8, + dynamic int8, + TFLite) with the spec in the metadata."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to ONNX (float32 and int8) and TFLite",
                       description="Export a checkpoint (best.pt or last.pt of a run; EMA weights when present) "
                                   "to <out-dir>/<name>-float32.onnx, and with --int8 a static int8 QDQ model "
                                   "calibrated on training images (<name>-int8.onnx). Needs the train extra. "
                                   "--float32 starts from an exported float32 file instead (a weight soup, "
                                   "a shipped file) to make its int8 files. --tflite also writes TFLite files "
                                   "(the tflite extra), one per kind and input size: <name>-<kind>-<size>.tflite.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint file (.pt) from `facelite train`")
    source.add_argument("--float32", metavar="ONNX",
                        help="a facelite float32 .onnx to quantize (copied to <out-dir>/<name>-float32.onnx "
                        "unless it is that file)")
    p.add_argument("--out-dir", required=True, help="folder for the .onnx files")
    p.add_argument("--name", help="file name stem (default: the spec's name, e.g. mobilenetv2-0.35)")
    p.add_argument("--int8", action="store_true", help="also write the static int8 (QDQ, per-channel) model")
    p.add_argument("--dynamic-int8", action="store_true", help="also write ONNX Runtime dynamic int8 (comparison)")
    p.add_argument("--calib-images", type=int, default=200, help="number of training images for calibration")
    p.add_argument("--calib-dir", default="data/widerface/train/images",
                   help="calibration image folder; a relative path is taken from the current folder if it is "
                   "there, else from the shared folder (default: %(default)s, the WIDER training images)")
    p.add_argument("--calib-size", type=int, default=640,
                   help="input size of the ONNX int8 calibration (TFLite files calibrate at their own size)")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "entropy", "percentile"],
                   help="ONNX int8 calibration (TFLite int8: ai-edge-quantizer's min-max)")
    p.add_argument("--quantize-scores", action="store_true",
                   help="with --int8 or --tflite int8: quantize the score heads and the output nodes too (the "
                   "int8 files before 2026-12-05: 0.2-0.8 ms faster, up to 0.6 AP point further from float32 with box "
                   "voting); default: they stay float")
    p.add_argument("--tflite", nargs="+", metavar="KIND", choices=["float32", "dynamic-int8", "int8"],
                   help="also write TFLite files of these kinds: float32, dynamic-int8 (dynamic range), int8 "
                   "(full integer, calibrated like --int8; score heads float unless --quantize-scores); needs "
                   "the tflite extra")
    p.add_argument("--tflite-sizes", nargs="+", type=int, default=[640, 320], metavar="S",
                   help="TFLite input sizes: each file takes S x S inputs and smaller (default: 640 320)")
    p.add_argument("--update-checksums", action="store_true",
                   help="regenerate SHA256SUMS in --out-dir (for the package's models folder)")
    p.set_defaults(func=run)


def _from_checkpoint(checkpoint: str, out_dir: Path, name: str | None) -> Path:
    """Export ``checkpoint`` (EMA weights when present) to ``<out_dir>/<stem>-float32.onnx``."""
    import torch

    from ..export.onnx import export_onnx
    from ..nn.retinaface import RetinaFace
    from ..spec import ModelSpec

    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "spec" not in ck:
        raise ValueError(f"{checkpoint}: not a facelite checkpoint (no 'spec')")
    spec = ModelSpec.from_json(ck["spec"])
    model = RetinaFace(spec)
    model.load_state_dict(ck.get("ema", ck["model"]))
    model.eval()
    return export_onnx(model, out_dir / f"{name or spec.name}-float32.onnx")


def _from_float32(path: Path, out_dir: Path, name: str | None) -> Path:
    """``path`` at ``<out_dir>/<stem>-float32.onnx`` (copied unless it is that file)."""
    import shutil

    from ..export.onnx import read_metadata
    from ..spec import ModelSpec

    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        metadata = read_metadata(path)
    except Exception as e:  # onnx raises protobuf's DecodeError, among others, for a file that is not ONNX
        raise ValueError(f"{path}: not an ONNX model ({e})") from e
    spec = ModelSpec.from_metadata(metadata)  # ValueError naming the missing metadata
    dst = out_dir / f"{name or spec.name}-float32.onnx"
    if not (dst.exists() and dst.samefile(path)):
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
    return dst


def run(args: argparse.Namespace) -> int:
    import random

    from ..train.config import resolve

    if args.tflite:
        from ..export import tflite

        why = tflite.unavailable_reason()
        if why:
            raise RuntimeError(why)
        bad = [s for s in args.tflite_sizes if s < 32 or s % 32]
        if bad:
            raise ValueError(f"--tflite-sizes must be multiples of 32 (>= 32), got {bad}")
    out_dir = Path(args.out_dir)
    if args.checkpoint:
        f32 = _from_checkpoint(args.checkpoint, out_dir, args.name)
        print(f"wrote {f32} ({f32.stat().st_size / 1e6:.2f} MB)")
    else:
        f32 = _from_float32(Path(args.float32).expanduser(), out_dir, args.name)
        print(f"float32: {f32} ({f32.stat().st_size / 1e6:.2f} MB)")
    stem = f32.name.removesuffix("-float32.onnx")
    calib: list[Path] = []
    if args.int8 or "int8" in (args.tflite or []):
        exts = {".jpg", ".jpeg", ".png", ".webp"}
        calib_dir = Path(args.calib_dir).expanduser()
        calib_dir = calib_dir if calib_dir.is_dir() else resolve(args.calib_dir)
        pool = sorted(p for p in calib_dir.rglob("*") if p.suffix.lower() in exts)
        if not pool:
            raise FileNotFoundError(f"no calibration images under {calib_dir}")
        calib = random.Random(0).sample(pool, min(args.calib_images, len(pool)))
    if args.int8:
        from ..export.quantize import quantize_static_int8

        q = quantize_static_int8(f32, out_dir / f"{stem}-int8.onnx", calib, args.calib_size, args.calib_method,
                                 float_scores=not args.quantize_scores)
        print(f"wrote {q} ({q.stat().st_size / 1e6:.2f} MB, calibrated on {len(calib)} images)")
    if args.dynamic_int8:
        from ..export.quantize import quantize_dynamic_int8

        d = quantize_dynamic_int8(f32, out_dir / f"{stem}-dynamic-int8.onnx")
        print(f"wrote {d} ({d.stat().st_size / 1e6:.2f} MB)")
    if args.tflite:
        _write_tflite(f32, out_dir, stem, args, calib)
    if args.update_checksums:
        from ..models import update_checksums

        update_checksums(out_dir)
        print(f"updated {out_dir / 'SHA256SUMS'}")
    return 0


def _write_tflite(f32: Path, out_dir: Path, stem: str, args: argparse.Namespace, calib: list[Path]) -> None:
    """``<stem>-<kind>-<size>.tflite`` for each requested kind and size (the float32 file of a size
    is converted once and quantized from)."""
    from ..export.tflite import export_tflite, torch_model_from_onnx

    model = torch_model_from_onnx(f32)
    kinds = [k for k in ("float32", "dynamic-int8", "int8") if k in args.tflite]
    keep_float = "float32" in kinds
    for size in dict.fromkeys(args.tflite_sizes):
        float_file = out_dir / (f"{stem}-float32-{size}.tflite" if keep_float else f".{stem}-float32-{size}.tmp.tflite")
        try:
            export_tflite(model, float_file, "float32", (size, size))
            for kind in kinds:
                if kind == "float32":
                    path = float_file
                else:
                    path = export_tflite(model, out_dir / f"{stem}-{kind}-{size}.tflite", kind, (size, size), calib,
                                         float_model=float_file, float_scores=not args.quantize_scores)
                what = f", calibrated on {len(calib)} images" if kind == "int8" else ""
                print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB{what})")
        finally:
            if not keep_float:
                float_file.unlink(missing_ok=True)
