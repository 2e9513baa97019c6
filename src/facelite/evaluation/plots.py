"""Plots of evaluation results (matplotlib, an optional extra: ``pip install 'facelite[eval]'``).

* :func:`plot_pr_curves`: WIDER FACE precision-recall curves, one panel per subset
  (Easy / Medium / Hard) in one PNG, one curve per detector, AP in the legend.
* :func:`plot_ced`: cumulative landmark error distribution, one curve per detector.
* :func:`plot_labels_pr`: the precision-recall curve on labelled images (:mod:`.labels`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("plots need matplotlib: pip install 'facelite[eval]'") from exc
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _named(results: Any) -> dict[str, Any]:
    if isinstance(results, Mapping):
        return dict(results)
    return {"": results}


def plot_pr_curves(results: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the precision-recall curves of :class:`~facelite.evaluation.widerface.WiderFaceResult`
    objects (one, or a ``{name: result}`` mapping) to ``path`` (PNG)."""
    plt = _pyplot()
    named = _named(results)
    subsets = list(next(iter(named.values())).ap)
    fig, axes = plt.subplots(1, len(subsets), figsize=(4.2 * len(subsets), 4.2), squeeze=False)
    for ax, subset in zip(axes[0], subsets):
        for name, res in named.items():
            curve = res.curves[subset]
            precision, recall = curve[:, 0], curve[:, 1]
            ok = ~np.isnan(precision)
            label = f"{name} {res.ap[subset]:.3f}".strip()
            ax.plot(recall[ok], precision[ok], lw=1.6, label=label)
        ax.set_title(f"{subset.capitalize()}")
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8, title="AP")
    axes[0][0].set_ylabel("precision")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_ced(
    results: Any, path: str | os.PathLike, max_error: float = 0.2, title: str | None = None
) -> Path:
    """Write the cumulative error distribution (NME / inter-ocular) of
    :class:`~facelite.evaluation.landmarks.LandmarkResult` objects (one, or a mapping) to ``path``."""
    from .landmarks import ced_curve

    plt = _pyplot()
    named = _named(results)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, res in named.items():
        errors = np.where(res.detected, res.nme_io, np.inf)
        x, y = ced_curve(errors, max_error)
        s = res.summary()
        label = f"{name} NME {100 * s['nme_io_mean']:.2f} %, fail {100 * s['failure_or_miss_rate']:.1f} %".strip()
        ax.plot(100 * x, y, lw=1.6, label=label)
    ax.axvline(100 * next(iter(named.values())).failure_threshold, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("NME (% of inter-ocular distance)")
    ax.set_ylabel("fraction of faces")
    ax.set_xlim(0, 100 * max_error)
    ax.set_ylim(0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Cumulative landmark error (misses count as failures)")
    return save_figure(fig, path)


def plot_labels_pr(results: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write the precision-recall curve of :class:`~facelite.evaluation.labels.LabelsResult`
    objects (one, or a ``{name: result}`` mapping) to ``path``, each with its best-F1 point marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for name, res in _named(results).items():
        recall, precision = res.pr_curve
        line = ax.plot(recall, precision, lw=1.6, label=f"{name} AP {res.ap:.3f}".strip())[0]
        b = res.best_f1
        if np.isfinite(b["f1"]):
            ax.plot([b["recall"]], [b["precision"]], "o", color=line.get_color(), ms=5,
                    label=f"best F1 {b['f1']:.3f} at score {b['threshold']:.2f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "Precision-recall on the labelled images")
    return save_figure(fig, path)
