"""``facelite export``: checkpoint -> float32 ONNX (+ static int8, + dynamic int8) with the spec in the metadata."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a training checkpoint to ONNX (float32 and int8)",
                       description="Export a checkpoint (best.pt or last.pt of a run; EMA weights when present) "
                                   "to <out-dir>/<name>-float32.onnx, and with --int8 a static int8 QDQ model "
                                   "calibrated on training images (<name>-int8.onnx). Needs the train extra.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (.pt) from `facelite train`")
    p.add_argument("--out-dir", required=True, help="folder for the .onnx files")
    p.add_argument("--name", help="file name stem (default: the spec's name, e.g. mobilenetv2-0.35)")
    p.add_argument("--int8", action="store_true", help="also write the static int8 (QDQ, per-channel) model")
    p.add_argument("--dynamic-int8", action="store_true", help="also write ONNX Runtime dynamic int8 (comparison)")
    p.add_argument("--calib-images", type=int, default=200, help="number of training images for calibration")
    p.add_argument("--calib-dir", default="data/widerface/train/images",
                   help="calibration image folder; a relative path is taken from the current folder if it is "
                   "there, else from the shared folder (default: %(default)s, the WIDER training images)")
    p.add_argument("--calib-size", type=int, default=640, help="input size used for calibration")
    p.add_argument("--calib-method", default="minmax", choices=["minmax", "entropy", "percentile"])
    p.add_argument("--update-checksums", action="store_true",
                   help="regenerate SHA256SUMS in --out-dir (for the package's models folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import random

    import torch

    from ..export.onnx import export_onnx
    from ..nn.retinaface import RetinaFace
    from ..spec import ModelSpec
    from ..train.config import resolve

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if "spec" not in ck:
        raise ValueError(f"{args.checkpoint}: not a facelite checkpoint (no 'spec')")
    spec = ModelSpec.from_json(ck["spec"])
    model = RetinaFace(spec)
    model.load_state_dict(ck.get("ema", ck["model"]))
    model.eval()
    out_dir = Path(args.out_dir)
    stem = args.name or spec.name
    f32 = export_onnx(model, out_dir / f"{stem}-float32.onnx")
    print(f"wrote {f32} ({f32.stat().st_size / 1e6:.2f} MB)")
    if args.int8:
        from ..export.quantize import quantize_static_int8

        exts = {".jpg", ".jpeg", ".png", ".webp"}
        calib_dir = Path(args.calib_dir).expanduser()
        calib_dir = calib_dir if calib_dir.is_dir() else resolve(args.calib_dir)
        pool = sorted(p for p in calib_dir.rglob("*") if p.suffix.lower() in exts)
        if not pool:
            raise FileNotFoundError(f"no calibration images under {calib_dir}")
        calib = random.Random(0).sample(pool, min(args.calib_images, len(pool)))
        q = quantize_static_int8(f32, out_dir / f"{stem}-int8.onnx", calib, args.calib_size, args.calib_method)
        print(f"wrote {q} ({q.stat().st_size / 1e6:.2f} MB, calibrated on {len(calib)} images)")
    if args.dynamic_int8:
        from ..export.quantize import quantize_dynamic_int8

        d = quantize_dynamic_int8(f32, out_dir / f"{stem}-dynamic-int8.onnx")
        print(f"wrote {d} ({d.stat().st_size / 1e6:.2f} MB)")
    if args.update_checksums:
        from ..models import update_checksums

        update_checksums(out_dir)
        print(f"updated {out_dir / 'SHA256SUMS'}")
    return 0
