"""Start training from an exported float32 ONNX file: a shipped model or one ``facelite export`` wrote.

The export folds every batch norm into the convolution before it, so the file holds one
weight and one bias per convolution. :func:`load_onnx_weights` puts them back: each conv gets
its folded weight, the batch norm after it becomes the identity plus the folded bias (mean 0,
variance 1, scale sqrt(1 + eps)); the network then computes exactly what the file computes,
which is checked against ONNX Runtime. :func:`recalibrate_batchnorm` then gives those batch
norms the statistics of the training images (the same function in eval mode, and batch
statistics in train mode that match the running ones), so fine-tuning starts where the file is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..modelfile import is_quantized
from ..spec import ModelSpec

log = logging.getLogger(__name__)


def module_path(node_name: str) -> str:
    """The PyTorch module path of an exported node: ``/model/fpn/merges.0/merges.0.0/Conv`` ->
    ``fpn.merges.0.0`` (each scope names a child by its path from the nearest named parent)."""
    parts = node_name.strip("/").split("/")[1:-1]  # drop the wrapper's "model" and the op name
    path: list[str] = []
    for p in parts:
        if path and p.startswith(path[-1] + "."):
            path[-1] = p  # "conv" then "conv.0": the child of a container, named with its prefix
        else:
            path.append(p)
    return ".".join(path)


def _batchnorm_after(modules: dict[str, torch.nn.Module], conv_path: str) -> torch.nn.BatchNorm2d | None:
    parent, _, index = conv_path.rpartition(".")
    if not index.isdigit():
        return None
    nxt = modules.get(f"{parent}.{int(index) + 1}" if parent else str(int(index) + 1))
    return nxt if isinstance(nxt, torch.nn.BatchNorm2d) else None


def onnx_spec(path: str | Path, proto: Any = None) -> ModelSpec:
    """The geometry a facelite ONNX file carries in its metadata (``proto``: the file, if already loaded)."""
    import onnx

    proto = proto if proto is not None else onnx.load(str(path), load_external_data=False)
    try:
        return ModelSpec.from_metadata({p.key: p.value for p in proto.metadata_props})
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def check_same_network(path: str | Path, other: ModelSpec, spec: ModelSpec) -> None:
    """Raise ``ValueError`` unless the file at ``path`` (spec ``other``) holds weights of the network
    ``spec`` builds: the same width, FPN width and backbone taps."""
    if (other.alpha, other.fpn_channels, other.backbone_taps) != (spec.alpha, spec.fpn_channels, spec.backbone_taps):
        raise ValueError(f"{path}: alpha {other.alpha} / FPN {other.fpn_channels} / taps {other.backbone_taps} does "
                         f"not match the recipe's {spec.alpha} / {spec.fpn_channels} / {spec.backbone_taps}")


def load_onnx_weights(model: torch.nn.Module, path: str | Path, spec: ModelSpec) -> int:
    """Copy the convolutions of a facelite float32 ONNX file into ``model`` (a
    :class:`~facelite.nn.retinaface.RetinaFace` of the same spec); returns the number of convs.

    Raises:
        ValueError: an int8 file, another network (alpha, FPN width), or a graph whose convs do
            not map onto the model's, or outputs that differ from ONNX Runtime's.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    proto = onnx.load(str(path))
    other = onnx_spec(path, proto)
    check_same_network(path, other, spec)
    if is_quantized(proto):
        raise ValueError(f"{path}: an int8 file; start training from the float32 one")
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    modules = dict(model.named_modules())
    convs = {name for name, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    done: set[str] = set()
    with torch.no_grad():
        for node in proto.graph.node:
            if node.op_type != "Conv":
                continue
            name = module_path(node.name)
            conv = modules.get(name)
            if not isinstance(conv, torch.nn.Conv2d) or name in done:
                raise ValueError(f"{path}: conv {node.name!r} has no counterpart in the model ({name!r})")
            weight = torch.from_numpy(np.array(inits[node.input[1]], np.float32))
            bias = torch.from_numpy(np.array(inits[node.input[2]], np.float32)) if len(node.input) > 2 else None
            if weight.shape != conv.weight.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(weight.shape)}, the model {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            bn = _batchnorm_after(modules, name)
            if conv.bias is not None:
                conv.bias.copy_(bias if bias is not None else torch.zeros_like(conv.bias))
            elif bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0)
                bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))
                bn.bias.copy_(bias if bias is not None else torch.zeros_like(bn.bias))
            elif bias is not None and bias.abs().max() > 0:
                raise ValueError(f"{path}: {name} has a bias but neither the conv nor a batch norm after it can hold it")
            done.add(name)
    if done != convs:
        raise ValueError(f"{path}: no weights for {len(convs - done)} conv(s), e.g. {sorted(convs - done)[0]}")
    _check_against_onnxruntime(model, path)
    return len(done)


def _check_against_onnxruntime(model: torch.nn.Module, path: Path) -> None:
    import onnxruntime as ort

    from ..nn.retinaface import InferenceWrapper

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 96, 128)).astype(np.float32))
    was_training = model.training
    with torch.no_grad():
        ours = [t.numpy() for t in InferenceWrapper(model).eval()(x)]
    model.train(was_training)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    if diff > 1e-3:
        raise ValueError(f"{path}: the imported network differs from the file (max |difference| {diff:.3g})")


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Give every batch norm the mean and variance of its input over ``batches`` (normalised
    network inputs, float32 (B, 3, H, W)) and rescale it so that, in eval mode, the network
    computes the same function as before. Returns the number of batch norms changed."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    sums: dict[torch.nn.Module, list[torch.Tensor]] = {}

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        z = inputs[0].detach().float()
        s = sums.setdefault(module, [torch.zeros(z.shape[1], dtype=torch.float64)] * 2 + [0])
        s[0] = s[0] + z.sum(dim=(0, 2, 3)).double()
        s[1] = s[1] + (z * z).sum(dim=(0, 2, 3)).double()
        s[2] += z.numel() // z.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in bns]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m in bns:
        if m not in sums:
            continue
        s1, s2, n = sums[m]
        mu = s1 / n
        var = (s2 / n - mu * mu).clamp_min(0)
        # output before: gamma * (z - mean) / sqrt(var0 + eps) + beta; keep it, with the new statistics
        scale = m.weight.double() / torch.sqrt(m.running_var.double() + m.eps)
        shift = m.bias.double() - scale * m.running_mean.double()
        m.running_mean.copy_(mu)
        m.running_var.copy_(var)
        m.weight.copy_(scale * torch.sqrt(var + m.eps))
        m.bias.copy_(shift + scale * mu)
    return len(sums)
