"""Training-batch throughput: the DataLoader path (``FaceDataset`` in 1 or 2 worker processes:
per-item NumPy/OpenCV augmentation, NumPy matching, the ONNX teacher per crop) against
``train.device_batches`` (image store, batch augmentation and torch matching on ``--device``,
the teacher as one ONNX Runtime call per batch), in training-ready images per second, and a few
full training steps of alpha 0.35 fed by each.

    python -m benchmarks.pipeline_throughput                          # 200 WIDER train images, 320 and 480 px
    python -m benchmarks.pipeline_throughput --device cuda --images 2281 --batches 20 --workers 0 7 14 --json out.json

Both paths do the same augmentation: crop, colour jitter, flip, and with ``--mosaic`` / ``--paste``
mosaic and landmark-crop pasting (the recipes' crops; no image degradations). Loader times include starting the workers (fork, the
teacher's session); the device path is timed after one warm-up batch; the store is built once,
beforehand, and its time reported apart. A benchmark, not a test: the numbers depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _samples(n: int, labels: str = "", images: str = "data/widerface/train/images"):
    """The first ``n`` images with faces: of ``labels`` (a RetinaFace label.txt, WIDER txt or COCO
    file, relative to the shared folder: a data pack has ``data/widerface/train/label.txt``) or of
    the WIDER train split's ground truth."""
    from facelite.annotations import read_labels, read_wider_txt
    from facelite.paths import shared_dir

    root = shared_dir()
    if labels:
        found = [s.without_ignored() for s in read_labels(root / labels, root / images)]
    else:
        found = read_wider_txt(root / "data/widerface/train/wider_face_train_bbx_gt.txt", root / images)
    return [s for s in found if len(s.boxes)][:n]


MOSAIC = [0.0]  # set from --mosaic
PASTE: dict = {"prob": 0.0, "crops": [], "images": []}  # set from --paste


def _aug(size: int):
    from facelite.train.augment import AugmentConfig

    return AugmentConfig(size=size, crop_scales=(0.3, 0.45, 0.6, 0.8, 1.0, 1.0, 1.25, 1.6, 2.0),
                         fill_bgr=(104, 117, 123), mosaic_prob=MOSAIC[0], paste_prob=PASTE["prob"])


def _loader_batches(samples, spec, size: int, batch: int, workers: int, teacher: bool):
    import torch
    from torch.utils.data import DataLoader

    from facelite.train.dataset import FaceDataset
    from facelite.train.teachers import make_anchor_teacher
    from facelite.train.trainer import EpochSampler, _single_threaded_opencv, _worker_init

    ds = FaceDataset(samples, spec, _aug(size), teacher=make_anchor_teacher("retinaface", spec) if teacher else None,
                     crops=PASTE["crops"])
    if workers:
        _single_threaded_opencv()
    torch.set_num_threads(1)
    return DataLoader(ds, batch_size=batch, sampler=EpochSampler(len(ds), 0), drop_last=True, num_workers=workers,
                      worker_init_fn=_worker_init, persistent_workers=False,
                      prefetch_factor=4 if workers else None)


def _device_batches(store, spec, size: int, device: str, teacher: bool):
    from facelite.train.batch_teacher import BatchTeacher
    from facelite.train.device_batches import DeviceBatches
    from facelite.train.teachers import make_anchor_teacher

    bt = BatchTeacher(make_anchor_teacher("retinaface", spec), device) if teacher else None
    return DeviceBatches(store, _aug(size), spec, device, teacher=bt, crops=PASTE["crops"],
                         crop_images=PASTE["images"])


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(args) -> dict:
    import torch

    from facelite.spec import default_spec
    from facelite.train.sources import SourceSampler
    from facelite.train.store import needed_short_side, open_store

    spec = default_spec(0.35)
    samples = _samples(args.images, args.labels, args.images_dir)
    results: dict = {"images": len(samples), "batch": args.batch, "device": args.device, "mosaic": args.mosaic,
                     "paste": args.paste,
                     "rows": [],
                     "load_average": os.getloadavg()}
    tmp = Path(tempfile.mkdtemp(prefix="facelite-store-"))
    for size in args.sizes:
        t0 = time.perf_counter()
        store, _ = open_store(samples, needed_short_side(size, _aug(size).crop_scales), tmp / str(size),
                              threads=args.store_threads)
        results[f"store_build_s_{size}"] = round(time.perf_counter() - t0, 2)
        results[f"store_mb_{size}"] = round(store.pixels.nbytes / 1e6, 1)
        for teacher in args.teacher:
            for w in args.workers:
                loader = _loader_batches(samples, spec, size, args.batch, w, teacher)
                t0 = time.perf_counter()
                it = iter(loader)
                for _ in range(args.batches):
                    next(it)
                dt = time.perf_counter() - t0
                del it, loader
                results["rows"].append({"path": f"loader, {w} workers", "size": size, "teacher": teacher,
                                        "images_per_s": round(args.batches * args.batch / dt, 1)})
                print(results["rows"][-1], flush=True)
            torch.set_num_threads(args.threads)
            db = _device_batches(store, spec, size, args.device, teacher)
            order = list(SourceSampler([len(store)], [float(args.batches + 1) * args.batch / len(store) + 1], 0))
            gen = db.epoch(order, args.batch)
            next(gen)
            _sync(args.device)
            t0 = time.perf_counter()
            for _ in range(args.batches):
                next(gen)
            _sync(args.device)
            dt = time.perf_counter() - t0
            results["rows"].append({"path": f"device batches ({args.device}, {args.threads} threads)", "size": size,
                                    "teacher": teacher, "images_per_s": round(args.batches * args.batch / dt, 1)})
            print(results["rows"][-1], flush=True)
        if args.train_steps:
            results["rows"] += train_steps(args, samples, store, spec, size)
        del store
    shutil.rmtree(tmp, ignore_errors=True)  # the stores were for this run only
    return results


def train_steps(args, samples, store, spec, size: int) -> list[dict]:
    """Seconds per full training step (alpha 0.35, batch ``args.batch``, the trainer's loss and
    optimiser, RetinaFace teacher scores + landmarks) fed by each path; the first step is not timed."""
    import torch

    from facelite.nn.retinaface import RetinaFace
    from facelite.train.dataset import Normalizer
    from facelite.train.loss import LossWeights, distill_loss, multibox_loss
    from facelite.train.sources import SourceSampler
    from facelite.train.trainer import cpu_has_bf16

    device = torch.device(args.device)
    bf16 = device.type == "cuda" or cpu_has_bf16()
    rows = []
    for name in ("loader, 1 workers", "device batches"):
        torch.manual_seed(0)
        model = RetinaFace(spec).to(device).to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        norm = Normalizer(spec).to(device)
        torch.set_num_threads(args.threads)
        if name.startswith("loader"):
            source = iter(_loader_batches(samples, spec, size, args.batch, 1, True))
        else:
            db = _device_batches(store, spec, size, args.device, True)
            order = list(SourceSampler([len(store)], [float(args.train_steps + 2) * args.batch / len(store) + 1], 0))
            source = db.epoch(order, args.batch)
        times = []
        for _ in range(args.train_steps + 1):
            t0 = time.perf_counter()
            imgs, labels, box_t, lmk_t, mask, t_logits, t_lmks = (t.to(device) for t in next(source))
            x = norm(imgs).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, boxes, lmks = model(x)
            losses = multibox_loss(logits, boxes, lmks, labels, box_t, lmk_t, mask, LossWeights())
            kd = distill_loss(logits, lmks, t_logits, t_lmks, labels, mask)
            total = losses["total"] + kd["cls"] + 0.5 * kd["landmarks"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            _sync(args.device)
            times.append(time.perf_counter() - t0)
        del source
        s = float(np.mean(times[1:]))
        rows.append({"path": f"train steps, {name}", "size": size, "teacher": True, "s_per_step": round(s, 2),
                     "images_per_s": round(args.batch / s, 1)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200, help="first N WIDER train-split images with faces")
    p.add_argument("--labels", default="", help="label file under the shared folder (default: WIDER train gt)")
    p.add_argument("--images-dir", default="data/widerface/train/images", help="their image folder, under it")
    p.add_argument("--sizes", type=int, nargs="+", default=[320, 480])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=3, help="batches timed per measurement")
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="loader worker counts to measure")
    p.add_argument("--teacher", type=lambda v: v.lower() in ("1", "true", "yes"), nargs="+", default=[False, True],
                   help="without / with the RetinaFace teacher (true/false)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the device path and the steps (1: on cores another job uses, 2 ran 10x slower)")
    p.add_argument("--store-threads", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=2, help="timed training steps per path (0: none)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--mosaic", type=float, default=0.0, help="mosaic probability on both paths")
    p.add_argument("--paste", type=float, default=0.0, help="landmark-crop paste probability on both paths")
    args = p.parse_args(argv)
    MOSAIC[0] = args.mosaic
    if args.paste > 0:  # the recipes' landmark crops (needs `facelite pseudolabel crops` first)
        from facelite.imageio import load_image
        from facelite.paths import shared_dir
        from facelite.train.config import Config
        from facelite.train.trainer import load_paste_crops

        cfg = Config()
        cfg.data.paste_prob = args.paste
        if (shared_dir() / "data/landmarks5/crop_boxes.npz").is_file():  # a data pack's crop boxes
            cfg.data.landmark_crop_boxes = "data/landmarks5/crop_boxes.npz"
        PASTE.update(prob=args.paste, crops=[c for c in load_paste_crops(cfg) if c.box is not None])
        PASTE["images"] = [load_image(c.path) for c in PASTE["crops"]]
    res = measure(args)
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
