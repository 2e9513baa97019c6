"""The PyTorch dataset: decoded images kept in memory, augmentation and anchor matching per item."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..anchors import make_anchors
from ..annotations import LandmarkCrop, Sample
from ..imageio import load_image
from ..spec import ModelSpec
from .augment import AugmentConfig, Labels, augment, mosaic_partners
from .match import cxcywh_to_xyxy, encode_targets

log = logging.getLogger(__name__)


class FaceDataset(Dataset):
    """Items are ``(image uint8 (S, S, 3) BGR, labels (N,), box targets (N, 4), landmark targets (N, 10),
    landmark mask (N,))`` for the anchors of an S x S input. Randomness is a pure function of
    ``(seed, epoch, index)``, so a resumed run sees the same augmentations.

    With a ``teacher`` (:class:`facelite.train.teachers.AnchorTeacher`), items end with the
    teacher's ``(log-probabilities (N, 2), landmark offsets (N, 10))`` for the augmented image,
    computed in the data-loading worker, and its SSH features (3 x (C, S / s, S / s) float16)
    when it gives them. Samples' ``ignore`` rows are ignore regions (label -1 on their anchors);
    with ``live_ignore`` a teacher finds them on each augmented crop instead."""

    def __init__(self, samples: list[Sample], spec: ModelSpec, aug: AugmentConfig, seed: int = 0,
                 crops: list[LandmarkCrop] | None = None, positive_iou: float = 0.35,
                 teacher: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                 live_ignore: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                 live_ignore_on: np.ndarray | None = None, min_forced_iou: float = 0.2) -> None:
        self.samples = samples
        self.spec = spec
        self.aug = aug
        self.seed = seed
        self.epoch = 0
        self.positive_iou, self.min_forced_iou = positive_iou, min_forced_iou
        self.teacher = teacher
        self.live_ignore = live_ignore  # (crop, labelled boxes) -> ignore regions (facelite.train.teacher_cache)
        # bool (len(samples),): the samples it runs on (those of sets that are not exhaustive); default all
        self.live_ignore_on = np.ones(len(samples), bool) if live_ignore_on is None else np.asarray(live_ignore_on)
        self.anchors = make_anchors(spec, aug.size, aug.size)
        self.anchors_xyxy = cxcywh_to_xyxy(self.anchors)
        log.info("decoding %d training images into memory", len(samples))
        self.images = [load_image(s.path) for s in samples]
        self.crops = [c for c in (crops or []) if c.box is not None]
        self.crop_images = [load_image(c.path) for c in self.crops]
        if crops:
            log.info("landmark crops for pasting: %d (of %d with a face box)", len(self.crops), len(crops))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int | tuple[int, ...]):
        """``index``, ``(epoch, index)`` (from :class:`facelite.train.trainer.EpochSampler`) or
        ``(epoch, index, repeat)`` (:class:`facelite.train.sources.SourceSampler`: the repeat-th
        extra draw of the image in that epoch, which gets augmentations of its own)."""
        epoch, repeat = self.epoch, 0
        if isinstance(index, tuple):
            epoch, index, repeat = (*index, 0)[:3]
        rng = np.random.default_rng((self.seed, epoch, index) if repeat == 0 else (self.seed, epoch, index, repeat))
        others = [(self.images[j], Labels.of(self.samples[j]))
                  for j in mosaic_partners(len(self.samples), self.aug, rng)]
        img, lab = augment(self.images[index], Labels.of(self.samples[index]), self.aug, rng, self.crops,
                           self.crop_images, others)
        if self.live_ignore is not None and self.live_ignore_on[index]:
            regions = self.live_ignore(img, lab.boxes[~lab.ignore])
            if len(regions):
                n = len(regions)
                lab = Labels(np.concatenate([lab.boxes, regions.astype(np.float32)]),
                             np.concatenate([lab.landmarks, np.zeros((n, 5, 2), np.float32)]),
                             np.concatenate([lab.has_landmarks, np.zeros(n, bool)]),
                             np.concatenate([lab.ignore, np.ones(n, bool)]))
        t = encode_targets(self.anchors, lab.boxes, lab.landmarks, lab.has_landmarks, self.spec.variances,
                           self.positive_iou, self.min_forced_iou, anchors_xyxy=self.anchors_xyxy,
                           ignore=lab.ignore)
        item = (torch.from_numpy(img), torch.from_numpy(t.labels), torch.from_numpy(t.boxes),
                torch.from_numpy(t.landmarks), torch.from_numpy(t.landmark_mask))
        if self.teacher is not None:
            soft = self.teacher(img)
            if len(soft[0]) != len(self.anchors):
                raise ValueError(f"teacher gives {len(soft[0])} anchors, the student has {len(self.anchors)}")
            item += tuple(torch.from_numpy(a) for a in soft)
        return item


class Normalizer(torch.nn.Module):
    """BGR uint8 (B, H, W, 3) -> float (B, 3, H, W) (a channels-last view) normalised per the spec
    (channel order, mean, std)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.swap = spec.channel_order == "RGB"
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()
        if self.swap:
            x = x.flip(1)
        return (x - self.mean) / self.std
