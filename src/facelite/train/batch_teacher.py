"""A per-anchor ONNX teacher (:mod:`facelite.train.teachers`) run on a whole augmented batch, for
``train.device_batches``: RetinaFace-mnet0.25 as one ONNX Runtime call per batch (CUDA execution
provider when the batch is on a CUDA device and ONNX Runtime has it, else the CPU), any other
anchor teacher image by image. Outputs are torch tensors on the batch's device, in the layout the
data loader's teacher items have after collation."""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import torch

from .teachers import AnchorTeacher, RetinaFaceTeacher, _with_head_inputs

log = logging.getLogger(__name__)


class BatchTeacher:
    """``teacher``: what :func:`facelite.train.teachers.make_anchor_teacher` returns.

    Called with images uint8 (B, S, S, 3) BGR (S a multiple of 32), returns ``(log-probabilities
    float32 (B, N, 2) [background, face], landmark offsets float32 (B, N, 10))`` and, for a
    RetinaFace teacher with features, its SSH outputs float16 (B, 64, S / s, S / s), s = 8, 16, 32."""

    def __init__(self, teacher, device: torch.device | str = "cpu", threads: int = 1) -> None:
        self.teacher = teacher
        self.device = torch.device(device)
        self.session: ort.InferenceSession | None = None
        if isinstance(teacher, AnchorTeacher):
            model = _with_head_inputs(teacher.path) if teacher.features else str(teacher.path)
            providers = ["CPUExecutionProvider"]
            if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            self.session = ort.InferenceSession(model, opts, providers=providers)
            self.input = self.session.get_inputs()[0].name
            self.features = teacher.features
            log.info("batch teacher: RetinaFace ONNX on %s", self.session.get_providers()[0])
        else:
            log.info("batch teacher: %s image by image (CPU)", type(teacher).__name__)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.session is None:
            per = [self.teacher(img) for img in images.cpu().numpy()]
            return tuple(torch.from_numpy(np.stack(parts)).to(self.device) for parts in zip(*per))
        mean = torch.tensor(RetinaFaceTeacher.spec.mean, dtype=torch.float32, device=images.device)
        x = (images.float() - mean).permute(0, 3, 1, 2).contiguous().cpu().numpy()
        out = self.session.run(None, {self.input: x})
        logp = torch.from_numpy(out[1]).to(self.device).clamp_(1e-7, 1.0).log_()
        result = (logp, torch.from_numpy(np.ascontiguousarray(out[2], np.float32)).to(self.device))
        if self.features:
            result += tuple(torch.from_numpy(f).to(self.device).half() for f in out[3:])
        return result
