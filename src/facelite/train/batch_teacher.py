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

from ..anchors import num_anchors
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
            self.outputs = [o.name for o in self.session.get_outputs()]
            self.features = teacher.features
            # I/O binding to torch buffers (no host copies on CUDA) where the session runs where the batch is;
            # turned off after a failure
            on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
            self.bound = on_cuda or self.device.type == "cpu"
            log.info("batch teacher: RetinaFace ONNX on %s, %s", self.session.get_providers()[0],
                     "I/O bound to the batch's tensors" if self.bound else "through host memory")
        else:
            log.info("batch teacher: %s image by image (CPU)", type(teacher).__name__)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.session is None:
            per = [self.teacher(img) for img in images.cpu().numpy()]
            return tuple(torch.from_numpy(np.stack(parts)).to(self.device) for parts in zip(*per))
        mean = torch.tensor(RetinaFaceTeacher.spec.mean, dtype=torch.float32, device=images.device)
        x = (images.float() - mean).permute(0, 3, 1, 2).contiguous()
        out = None
        if self.bound:
            try:
                out = self._run_bound(x)
            except Exception as exc:  # any binding failure: fall back, and say so once
                log.warning("batch teacher: I/O binding failed (%s); copying through host memory instead", exc)
                self.bound = False
        if out is None:
            out = [torch.from_numpy(o).to(self.device) for o in self.session.run(None, {self.input: x.cpu().numpy()})]
        result = (out[1].clamp(1e-7, 1.0).log_(), out[2].float().contiguous())
        if self.features:
            result += tuple(f.half() for f in out[3:])
        return result

    def _out_shapes(self, b: int, h: int, w: int) -> list[tuple[int, ...]]:
        """The session's outputs for a (b, 3, h, w) input: loc (b, N, 4), conf (b, N, 2), landmarks
        (b, N, 10), then the SSH features (b, 64, h / s, w / s) for s = 8, 16, 32."""
        n = num_anchors(RetinaFaceTeacher.spec, h, w)
        shapes: list[tuple[int, ...]] = [(b, n, 4), (b, n, 2), (b, n, 10)]
        shapes += [(b, AnchorTeacher.feature_channels, h // s, w // s) for s in (8, 16, 32)][:len(self.outputs) - 3]
        return shapes

    def _run_bound(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One session run reading ``x`` (b, 3, h, w) float32 and writing into torch tensors on its
        device, through ONNX Runtime's I/O binding (CPU or CUDA memory, by the tensor's device)."""
        kind, idx = ("cuda", x.device.index or 0) if x.is_cuda else ("cpu", 0)
        outs = [torch.empty(shape, dtype=torch.float32, device=x.device) for shape in self._out_shapes(*x.shape[:1],
                                                                                                       *x.shape[2:])]
        if x.is_cuda:
            torch.cuda.current_stream(x.device).synchronize()  # ORT runs on its own stream
        io = self.session.io_binding()
        io.bind_input(self.input, kind, idx, np.float32, tuple(x.shape), x.data_ptr())
        for name, t in zip(self.outputs, outs):
            io.bind_output(name, kind, idx, np.float32, tuple(t.shape), t.data_ptr())
        self.session.run_with_iobinding(io)
        io.synchronize_outputs()
        return outs
