"""Markdown tables and the accuracy-speed plot of a bench result (:func:`facelite.bench.run.run_bench`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..evaluation.plots import save_figure
from . import paper

__all__ = ["plot_frontier", "to_markdown", "write_outputs"]

_STAGE_LABELS = {
    "preprocess": "image preprocessing",
    "backbone": "backbone (MobileNetV2)",
    "fpn": "FPN",
    "ssh_heads": "SSH + heads",
    "postprocess": "decoding + NMS",
}
_PAPER_STAGE = {"backbone": "backbone", "fpn": "fpn", "ssh_heads": "header", "postprocess": "nms"}


def _f(v: Any, digits: int = 2, suffix: str = "") -> str:
    if v is None or v != v:
        return "n/a"
    return f"{v:.{digits}f}{suffix}"


def _pct(v: Any, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.{digits}f} %"


def _mb(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 1e6:.2f}"


def _table(head: list[str], rows: list[list[str]], align: str | None = None) -> str:
    al = align or ("l" * len(head))
    sep = ["---:" if a == "r" else "---" for a in al]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _alpha(a: float) -> str:
    return f"{a:g}"


def to_markdown(result: dict[str, Any], plot_name: str | None = None) -> str:
    """The whole report as Markdown: Tables 1-4, the post-processing check, the paper's numbers."""
    mach = result["machine"]
    st = result["settings"]
    out: list[str] = []
    out.append(f"# facelite bench{' (--quick: reduced grid, not for citing)' if result.get('quick') else ''}\n")
    out.append(f"- command: `{result.get('command') or 'facelite bench'}`")
    out.append(f"- created {result['created']}, facelite {result['facelite_version']}, took {result['elapsed_s']:.0f} s")
    out.append(f"- CPU: {mach['cpu']} ({mach['logical_cores']} logical cores), {mach['platform']}; "
               f"load average at start: {mach.get('load_average_at_start')}")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in mach["versions"].items()))
    out.append(f"- timing: {len(st['image_names'])} image(s) from {st['images_source']}; {st['warmup']} warm-up run(s) per image "
               f"excluded, {st['repeats']} timed round(s); image decoding excluded; ONNX Runtime sessions and OpenCV with "
               f"the thread counts shown (OpenCV: 1); score threshold {st['score_threshold']}, NMS {st['nms_threshold']}")
    random = [m["label"] for m in result["models"] if not m["trained"]]
    if random:
        out.append(f"- **random weights**: {', '.join(random)}: latency only (AP n/a); their decoding + NMS is timed on "
                   "a trained model's outputs where one is available (see the post-processing column)")
    out.append("")

    # ---- Table 1
    s = result.get("stages")
    out.append("## Table 1: time per stage\n")
    if s:
        p1 = paper.TABLE1["CPU only"]
        out.append(f"{s['model']} float32 at {s['input_size']}, {s['threads']} thread(s); mean over {s['samples']} runs. "
                   f"The network stages are sub-models cut from the exported graph at the stage boundaries and run one "
                   f"after the other (their outputs equal the whole network's: max |difference| = {s['max_abs_diff']:.2g}).\n")
        rows = []
        for k, v in s["stages_ms"].items():
            pk = _PAPER_STAGE.get(k)
            rows.append([_STAGE_LABELS.get(k, k), _f(v), _pct(s["shares"].get(k)),
                         _f(p1[pk]) if pk else "not reported", _pct(p1[pk] / p1["total"]) if pk else ""])
        rows.append(["**sum of stages**", f"**{_f(s['sum_ms'])}**", "100 %", _f(p1["total"]), "100 %"])
        rows.append(["end-to-end, measured in the same runs (whole network)", _f(s["end_to_end_ms"]),
                     f"sum {100 * s['difference']:+.1f} %" if s.get("difference") is not None else "", "", ""])
        rows.append(["network: stages / whole", f"{_f(s['network_stages_ms'])} / {_f(s['network_whole_ms'])}", "", "", ""])
        c = s.get("crowded")
        if c:
            where = f"most crowded dev image (`{c['image'].split('/')[-1]}`, {c['annotated_faces']} faces), score {c['score_threshold']:g}"
            rows.append([f"decoding + NMS, {where}", _f(c["postprocess_ms"]),
                         f"{_pct(c['postprocess_share'])} of {_f(c['mean_ms'])} ms", "", ""])
            rows.append(["image preprocessing, same image", _f(c["preprocess_ms"]),
                         _pct(c["preprocess_ms"] / c["mean_ms"]) if c.get("mean_ms") else "n/a", "", ""])
        out.append(_table(["stage", "ms (ours)", "share", "paper ms (PC CPU, α=1.0, 640)", "paper share"], rows, "lrrrr"))
        out.append(f"\nDecoding + NMS timed on: {s['postprocess_outputs']}. The paper's NMS took "
                   f"{_pct(paper.nms_share_cpu())} of its CPU time; its Table 1 has no preprocessing row.")
        if c:
            out.append(f"The crowded-image rows: the same model and size on one image at the WIDER FACE evaluation's score "
                       f"threshold ({c['candidates']:.0f} candidates, {c['detections']:.0f} faces kept); share: median over "
                       f"{c['samples']} runs of decoding + NMS / end-to-end; decoded outputs: {c['postprocess_outputs']}.")
        out.append("")
    else:
        out.append(f"not measured: {result.get('stages_note') or 'disabled'}\n")

    # ---- Tables 2-3
    out.append("## Tables 2-3: end-to-end latency\n")
    out.append("Per image: preprocessing + network + decoding + NMS (ms). `speed-up` and `smaller` are relative to float32 "
               "of the same model, input size and threads. MACs at a square input of the given size (real images, "
               "resized by their longer side, are smaller). Paper: their hardware (see below), for orientation only.\n")
    rows = []
    for r in result["latency"]:
        pap = f"{_f(r['paper_ms'], 1)} ({r['paper_platform'].split(',')[0]})" if r.get("paper_ms") else ""
        rows.append([r["model"], str(r["input_size"]), r["precision"], r["backend"], str(r["threads"]),
                     _f(r["median_ms"]), _f(r["p90_ms"]), _f(r.get("speedup_vs_float32"), 2, "×"),
                     _pct(r["postprocess_share"]) + (" †" if "not representative" in r["postprocess_outputs"] else ""),
                     _mb(r["file_bytes"]), _f(r.get("size_reduction_vs_float32"), 2, "×"),
                     f"{r['params'] / 1e6:.3f} M" if r.get("params") else "n/a",
                     f"{r['macs'] / 1e9:.3f} G" if r.get("macs") else "n/a", pap])
    out.append(_table(["model", "input", "precision", "backend", "threads", "median ms", "p90 ms", "speed-up",
                       "post-proc.", "file MB", "smaller", "params", "MACs", "paper ms"], rows, "lrllrrrrrrrrrr"))
    if any("not representative" in r["postprocess_outputs"] for r in result["latency"]):
        out.append("\n† Random weights decoded on their own outputs (no trained model with the same anchors in this run): "
                   "far more candidates than a detector gives, so decoding + NMS, and the totals, are inflated. Add a "
                   "trained model (`--models NAME|PATH`) and random-weight networks are decoded on its outputs instead.")
    if result.get("missing_variants"):
        out.append("\nNot measured: " + "; ".join(f"{k}: {v}" for k, v in result["missing_variants"].items()))
    out.append(f"\nThe paper's conversion made the model {paper.SIZE_REDUCTION:g}× smaller and took α=1.0 at 640 on mobile "
               f"from {paper.TABLE2_MOBILE_MS['no optimization']:g} ms to {paper.TABLE2_MOBILE_MS['dynamic optimization']:g} ms "
               "(Table 2).\n")

    # ---- post-processing
    pp = result["postprocess"]
    out.append("## Post-processing share\n")
    verdict = {True: "under", False: "**over**", None: "n/a vs"}[pp["ok"]]
    out.append(f"Largest decoding + NMS share over {pp['checked_configurations']} checked configurations (timing images and "
               f"crowded images at score threshold 0.5; per configuration the median over runs): {_pct(pp['max_share'])} "
               f"({verdict} the {_pct(pp['limit'], 0)} limit; the paper: {_pct(pp['paper_nms_share'])}). "
               f"Stress case, crowded images at the evaluation threshold {pp.get('eval_score_threshold')}: up to "
               f"{_pct(pp.get('max_share_at_eval_threshold'))}.\n")
    if result.get("crowded"):
        out.append(f"The most crowded dev images, {result['crowded'][0]['threads']} thread(s) (candidates: anchors over the "
                   "score threshold; faces: detections after NMS):\n")
        rows = [[r["model"], str(r["input_size"]), r["precision"], f"{r['score_threshold']:g}",
                 f"`{r['image'].split('/')[-1]}` ({r['annotated_faces']})",
                 _f(r["mean_ms"]), _f(r["postprocess_ms"], 3), _pct(r["postprocess_share"]), f"{r['candidates']:.0f}",
                 f"{r['detections']:.0f}", r["postprocess_outputs"]]
                for r in result["crowded"]]
        out.append(_table(["model", "input", "precision", "score thr.", "image (annotated faces)", "total ms",
                           "decode + NMS ms", "share", "candidates", "faces", "decoded outputs"], rows, "lrlrlrrrrrl"))
        out.append("")

    # ---- Table 4
    out.append("## Table 4: WIDER FACE AP\n")
    acc = result.get("accuracy") or []
    out.append(f"{result.get('accuracy_note', '')}. Evaluation settings: score threshold 0.02, NMS 0.4, at most 750 faces "
               "per image, official algorithm (facelite.evaluation.widerface). Paper: full WIDER FACE val, their training "
               "data: not comparable.\n")
    if acc:
        rows = []
        for a in acc:
            ap = a.get("ap") or {}
            pap = a.get("paper_ap") or {}
            rows.append([a["model"], str(a["input_size"]), a["precision"],
                         *[_f(ap.get(k), 3) if ap else a.get("note", "n/a") for k in ("easy", "medium", "hard")],
                         *[_f(pap.get(k), 2) if pap else "" for k in ("easy", "medium", "hard")]])
        out.append(_table(["model", "input", "precision", "Easy", "Medium", "Hard", "paper Easy", "paper Medium",
                           "paper Hard"], rows, "lrlrrrrrr"))
        out.append("")
    if plot_name and result.get("frontier"):
        out.append(f"![AP (Medium) against latency]({plot_name})\n")
        front = [f"{d['model']} {d['precision']} @{d['input_size']}" for d in result["frontier"] if d["on_front"]]
        out.append("On the accuracy-speed front (nothing else is both faster and at least as accurate): "
                   + "; ".join(front) + "\n")

    # ---- paper
    out.append("## The paper's numbers (their hardware)\n")
    out.append(f"{paper.CITATION}. {paper.HARDWARE}.\n")
    rows = [[f"{a:g}", *[_f(paper.TABLE3_MS[(a, s)][k], 2) for k in ("pc", "mobile") for s in (640, 320)],
             *[_f(paper.TABLE4_AP[(a, s)]["medium"], 2) for s in (640, 320)]] for a in (1.0, 0.35)]
    out.append(_table(["α", "PC ms @640", "PC ms @320", "mobile ms @640", "mobile ms @320", "AP Medium @640",
                       "AP Medium @320"], rows, "lrrrrrr"))
    out.append("")
    return "\n".join(out)


def plot_frontier(result: dict[str, Any], path: str | os.PathLike) -> Path | None:
    """AP (Medium) against median latency for every configuration with an AP; the Pareto front
    joined by a line. ``None`` when there is nothing to plot (no AP, or no matplotlib)."""
    pts = result.get("frontier") or []
    if not pts:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    markers = {"float32": "o", "static-int8": "s", "dynamic-int8": "v"}
    colours = {}
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for d in pts:
        c = colours.setdefault(d["model"], f"C{len(colours)}")
        ax.scatter(d["median_ms"], d["ap_medium"], marker=markers.get(d["precision"], "D"), color=c,
                   facecolors=c if d["input_size"] >= 640 else "none", s=55, zorder=3)
        ax.annotate(f"{d['precision']} @{d['input_size']}", (d["median_ms"], d["ap_medium"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    front = [d for d in pts if d["on_front"]]
    ax.plot([d["median_ms"] for d in front], [d["ap_medium"] for d in front], "k--", lw=1, zorder=2,
            label="accuracy-speed front")
    for m, c in colours.items():
        ax.scatter([], [], color=c, label=m)
    ax.set_xscale("log")
    ax.set_xlabel(f"median latency per image, ms ({result['machine']['cpu']}, {pts and result['latency'][0]['threads']} thread)")
    ax.set_ylabel("AP, WIDER FACE dev split, Medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("facelite: accuracy against speed (filled: 640, open: 320; o float32, s static int8, v dynamic int8)",
                 fontsize=8)
    return save_figure(fig, path)


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike, stem: str = "bench") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and (when there is an AP) ``<stem>-frontier.png`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md"}
    png = plot_frontier(result, out / f"{stem}-frontier.png")
    if png is not None:
        paths["plot"] = png
    paths["json"].write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    paths["markdown"].write_text(to_markdown(result, png.name if png else None))
    return paths


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
