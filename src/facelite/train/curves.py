"""Training curves: ``losses.csv`` and ``metrics.csv`` of a run folder -> one PNG (matplotlib, optional)."""

from __future__ import annotations

import csv
from pathlib import Path

from ..evaluation.plots import save_figure


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _loss_keys(rows: list[dict[str, str]]) -> list[str]:
    """The loss parts to draw: the four always logged, and the distillation terms where a run
    logged them non-zero (runs without a teacher log 0, older runs nothing)."""
    keys = ["total", "cls", "box", "landmarks"]
    for key in ("kd_cls", "kd_landmarks", "kd_features"):
        if any(r.get(key) and float(r[key]) > 0 for r in rows):
            keys.append(key)
    return keys


def plot_run(run_dir: str | Path, out: str | Path, title: str = "") -> Path:
    """Plot loss parts per epoch (left) and validation AP per evaluation (right) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir, out = Path(run_dir), Path(out)
    losses = _read(run_dir / "losses.csv")
    metrics = _read(run_dir / "metrics.csv")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in _loss_keys(losses):
        pts = [(int(r["epoch"]), float(r[key])) for r in losses if r.get(key)]
        ax1.plot([e for e, _ in pts], [v for _, v in pts], label=key)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (epoch mean)")
    ax1.set_yscale("log")
    ax1.grid(alpha=0.3)
    ax1.legend()
    labels = bool(metrics) and "ap" in metrics[0]  # data.eval_labels: AP on your own validation images
    keys = (("ap", "-"), ("ap_small", ":"), ("ap_large", "--")) if labels else (
        ("easy", "-"), ("medium", "--"), ("hard", ":"))
    for size in sorted({r["input_size"] for r in metrics}, key=int):
        rows = [r for r in metrics if r["input_size"] == size]
        for key, style in keys:
            ax2.plot([int(r["epoch"]) for r in rows], [float(r[key]) for r in rows], style, marker="o",
                     label=f"{key} @ {size}")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("AP on the validation labels" if labels else "WIDER FACE dev-split AP")
    ax2.grid(alpha=0.3)
    if metrics:
        ax2.legend(fontsize=8)
    fig.suptitle(title or run_dir.name)
    return save_figure(fig, out, dpi=110)


def plot_stages(stages: list[tuple[str, str | Path]], out: str | Path, title: str = "") -> Path:
    """Loss parts per epoch of consecutive training stages (each a ``losses.csv``) on one
    epoch axis, a dotted line and the stage name at each boundary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    offset = 0
    colors = {"total": "C0", "cls": "C1", "box": "C2", "landmarks": "C3"}
    for k, (name, path) in enumerate(stages):
        rows = _read(Path(path))
        ep = [offset + int(r["epoch"]) for r in rows]
        for key, color in colors.items():
            ax.plot(ep, [float(r[key]) for r in rows], color=color, label=key if k == 0 else None)
        ax.axvline(offset + 0.5, color="grey", ls=":", lw=1)
        ax.text(offset + 1, 0.98, name, transform=ax.get_xaxis_transform(), va="top", rotation=90, fontsize=8)
        offset = ep[-1] if ep else offset
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("training loss (epoch mean)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.suptitle(title)
    return save_figure(fig, out, dpi=110)
