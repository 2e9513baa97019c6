"""``facelite pseudolabel``: landmark labels and crop boxes from licence-cleared teachers."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pseudolabel", help="pseudo-labels from teacher detectors (RetinaFace-mnet0.25, YuNet, SCRFD)",
                       description="Produce training labels with licence-cleared teachers. 'train-images' writes "
                                   "a RetinaFace-format label.txt: the WIDER boxes plus 5 landmarks where all "
                                   "teachers agree. 'crops' writes face boxes for the 5-landmark crops (used to "
                                   "paste them into training images). 'crops-nme' measures the landmark error "
                                   "of such pseudo-labels on the held-out 5-point crops.")
    p.add_argument("what", choices=["train-images", "crops", "crops-nme"])
    p.add_argument("--teachers", default="retinaface,yunet", help="comma list from: retinaface, yunet, scrfd")
    p.add_argument("--landmarks-from", choices=["mean", "first"], default="mean",
                   help="the label: the teachers' mean, or the first teacher's points (the others check them)")
    p.add_argument("--out", help="output file (default: under ~/.cache/facelite)")
    p.add_argument("--gt", default="data/widerface/train/wider_face_train_bbx_gt.txt",
                   help="WIDER ground truth (relative to the shared folder)")
    p.add_argument("--images", default="data/widerface/train/images", help="image root (relative to shared)")
    p.add_argument("--crops", default="data/landmarks5/landmarks.txt", help="landmark crops list")
    p.add_argument("--min-iou", type=float, default=0.7)
    p.add_argument("--min-score", type=float, default=0.8)
    p.add_argument("--min-size", type=float, default=0.0,
                   help="train-images: no landmarks for faces under this many pixels, sqrt(w*h) (default: 0)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..paths import cache_dir
    from ..train.config import resolve
    from ..train.teachers import make_teacher

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.what == "crops":
        from ..annotations import read_landmark_crops
        from ..train.pseudolabel import box_landmark_crops, save_crop_boxes

        out = Path(args.out) if args.out else cache_dir() / "landmark_crop_boxes.npz"
        crops = read_landmark_crops(resolve(args.crops))
        boxes = box_landmark_crops(crops, make_teacher("retinaface", args.threads))
        save_crop_boxes(out, crops, boxes)
        print(f"{int((boxes[:, 0] == boxes[:, 0]).sum())} of {len(crops)} crops boxed -> {out}")
        return 0
    teachers = [make_teacher(t.strip(), args.threads) for t in args.teachers.split(",") if t.strip()]
    if args.what == "crops-nme":
        import json

        from ..train.pseudolabel import pseudolabel_nme

        r = pseudolabel_nme(teachers, min_iou=args.min_iou, min_score=args.min_score,
                            landmarks_from=args.landmarks_from)
        out = {"teachers": args.teachers, "landmarks_from": args.landmarks_from, "min_score": args.min_score, **r}
        if args.out:  # with the NME of every labelled crop
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print(json.dumps({k: v for k, v in out.items() if k != "per_crop"}))
        return 0
    from ..annotations import read_wider_txt, write_retinaface_labels
    from ..train.pseudolabel import label_training_images

    root = resolve(args.images)
    out = Path(args.out) if args.out else cache_dir() / "pseudolabels" / "label.txt"
    samples = read_wider_txt(resolve(args.gt), root)
    labelled, stats = label_training_images(samples, teachers, min_iou=args.min_iou, min_score=args.min_score,
                                            landmarks_from=args.landmarks_from, min_size=args.min_size)
    write_retinaface_labels(labelled, out, root)
    print(f"{stats['with_landmarks']} of {stats['faces']} faces in {stats['images']} images got landmarks -> {out}")
    return 0
