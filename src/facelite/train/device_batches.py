"""Training-ready batches made on the training device (``train.device_batches = true``): images
from the precomputed store (:mod:`facelite.train.store`), augmented as a batch
(:mod:`facelite.train.batch_augment`), matched to the anchors in torch
(:mod:`facelite.train.match_torch`) and, when the recipe distils from an ONNX peer, scored by it
(:mod:`facelite.train.batch_teacher`). Each batch is the tuple the DataLoader path yields:
``(images uint8 (B, S, S, 3) BGR, labels int64 (B, N), box targets float32 (B, N, 4), landmark
targets float32 (B, N, 10), landmark mask bool (B, N)[, teacher log-probabilities (B, N, 2),
teacher landmarks (B, N, 10)[, teacher features]])``, already on the device."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..anchors import make_anchors
from ..annotations import LandmarkCrop
from ..spec import ModelSpec
from .augment import AugmentConfig
from .batch_augment import BatchAugmenter
from .batch_teacher import BatchTeacher
from .match import cxcywh_to_xyxy
from .match_torch import encode_batch, pad_labels
from .store import ImageStore


class DeviceBatches:
    """Makes batches from ``store`` on ``device``; ``teacher``: a :class:`BatchTeacher` or None;
    ``crops`` / ``crop_images``: landmark crops with face boxes to paste (``aug.paste_prob``)."""

    def __init__(self, store: ImageStore, aug: AugmentConfig, spec: ModelSpec, device: torch.device | str,
                 seed: int = 0, positive_iou: float = 0.35, teacher: BatchTeacher | None = None,
                 crops: list[LandmarkCrop] | None = None, crop_images: list[np.ndarray] | None = None,
                 min_forced_iou: float = 0.2) -> None:
        self.device = torch.device(device)
        self.spec, self.positive_iou, self.teacher = spec, positive_iou, teacher
        self.min_forced_iou = min_forced_iou
        self.augmenter = BatchAugmenter(store, aug, self.device, seed, crops, crop_images)
        anchors = make_anchors(spec, aug.size, aug.size)
        self.anchors = torch.from_numpy(anchors).to(self.device)
        self.anchors_xyxy = torch.from_numpy(cxcywh_to_xyxy(anchors)).to(self.device)

    def batch(self, indices: list[int], epoch: int, draws: list[int] | None = None) -> tuple[torch.Tensor, ...]:
        """One batch of the stored images ``indices`` (``draws``: their positions in the epoch)."""
        imgs, labels = self.augmenter(indices, epoch, draws)
        boxes, lmks, has, valid, ign = pad_labels([(lb.boxes, lb.landmarks, lb.has_landmarks, lb.ignore)
                                                   for lb in labels], self.device)
        args = (self.spec.variances, self.positive_iou, self.min_forced_iou)
        if self.device.type == "cuda":  # one call on the padded batch
            t = encode_batch(self.anchors, self.anchors_xyxy, boxes, lmks, has, valid, ign, *args)
            item = (imgs, t.labels, t.boxes, t.landmarks, t.landmark_mask)
        else:  # image by image: the padding to the batch's most faces (hundreds in crowds) costs more here
            per = []
            for k in range(len(labels)):
                m = max(int(valid[k].sum()), 1)
                per.append(encode_batch(self.anchors, self.anchors_xyxy, boxes[k:k + 1, :m], lmks[k:k + 1, :m],
                                        has[k:k + 1, :m], valid[k:k + 1, :m], ign[k:k + 1, :m], *args))
            item = (imgs, *(torch.cat([getattr(t, f) for t in per]) for f in ("labels", "boxes", "landmarks",
                                                                             "landmark_mask")))
        if self.teacher is not None:
            item += self.teacher(imgs)
        return item

    def epoch(self, order: Iterable[tuple[int, int]], batch_size: int,
              prefetch: bool | None = None) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of one epoch: ``order`` yields ``(epoch, index[, repeat])`` (the trainer's samplers);
        the last partial batch is dropped. ``prefetch`` (default: on CUDA) makes the next batch in
        a thread while the caller trains on this one."""
        pairs = list(order)
        chunks = [pairs[i:i + batch_size] for i in range(0, len(pairs) - batch_size + 1, batch_size)]

        def make(k: int) -> tuple[torch.Tensor, ...]:
            chunk = chunks[k]
            return self.batch([p[1] for p in chunk], chunk[0][0], list(range(k * batch_size, (k + 1) * batch_size)))

        if not (self.device.type == "cuda" if prefetch is None else prefetch):
            for k in range(len(chunks)):
                yield make(k)
            return
        with ThreadPoolExecutor(1) as pool:
            nxt = pool.submit(make, 0) if chunks else None
            for k in range(len(chunks)):
                cur = nxt.result()
                nxt = pool.submit(make, k + 1) if k + 1 < len(chunks) else None
                yield cur
