"""The comparison's Markdown tables and its AP (Medium) against latency plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["plot", "summary_table", "to_markdown", "update_doc", "write_outputs"]

PLOT_NAME = "peers-ap-latency.png"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if _missing(v) else f"{v:.{digits}f}"


def _pct(v: Any) -> str:
    return "n/a" if _missing(v) else f"{100 * v:.1f} %"


def _table(head: list[str], rows: list[list[str]], align: str) -> str:
    sep = ["---:" if a == "r" else "---" for a in align]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def _ms(lat: dict[str, Any] | None) -> float | None:
    """The latency the summary and the plot use: the median CPU time (wall-clock for old results)."""
    if not lat:
        return None
    return lat.get("cpu_median_ms", lat.get("median_ms"))


def _label(r: dict[str, Any]) -> str:
    name = f"**{r['label']}**" if r.get("facelite") else r["label"]
    return name + (" †" if r.get("note", "").startswith("fixed") else "")


def _size_table(rows: list[dict[str, Any]], landmark_size: int | None) -> str:
    out = []
    for r in rows:
        ap = (r.get("ap") or {}).get("ap") or {}
        lm = r.get("landmarks")
        dash = ("–" if r.get("landmark_points") != 5
                else f"at {landmark_size}" if landmark_size and r["input_size"] != landmark_size else "n/a")
        lat = r.get("latency") or {}
        out.append([
            _label(r), *[_f(ap.get(k)) for k in ("easy", "medium", "hard")],
            _pct(lm["nme_io_mean"]) if lm else dash, _pct(lm["failure_rate"]) if lm else dash,
            _pct(lm["miss_rate"]) if lm else dash,
            _f(lat.get("cpu_median_ms"), 1), _f(lat.get("cpu_p90_ms"), 1), _f(lat.get("median_ms"), 1),
            f"{r['params'] / 1e3:,.0f} k" if r.get("params") else "n/a", f"{r['file_bytes'] / 1e6:.2f}",
        ])
    return _table(["model", "AP Easy", "AP Medium", "AP Hard", "NME", "failures", "misses", "CPU ms", "CPU p90",
                   "wall ms", "params", "file MB"], out, "lrrrrrrrrrrr")


def to_markdown(result: dict[str, Any], plot_name: str | None = PLOT_NAME) -> str:
    """The whole report: setup, one table per input size, the plot, notes, licences."""
    p = result["protocol"]
    m = result["machine"]
    rows = result["rows"]
    ap_images = {r["ap"]["num_images"] for r in rows if r.get("ap")}
    crops = {r["landmarks"]["crops"] for r in rows if r.get("landmarks")}
    quick = " (--quick: a smoke test, not for citing)" if result.get("quick") else ""
    out = [f"# facelite side by side with other CPU face detectors{quick}\n"]
    out.append(f"- command: `{result['command']}`")
    out.append(f"- created {result['created']} (this invocation took {result['elapsed_s']:.0f} s); "
               f"{m['cpu']}, {m['logical_cores']} logical cores, {m['platform']}")
    out.append(f"- load average (1/5/15 min) at the start / end of this invocation: {m.get('load_average_at_start')} / "
               f"{m.get('load_average_at_end')}; each row's latency records its own (`peers.json`)")
    out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    out.append(f"- **AP**: WIDER FACE val, dev split ({', '.join(map(str, sorted(ap_images))) or '?'} images), "
               f"facelite's official-algorithm evaluation; score threshold {p['ap_score_threshold']}, NMS "
               f"{p['nms_threshold']}, at most {p['keep_top_k']} faces, top 5000 candidates into NMS; the image's "
               "longer side resized to the input size (area averaging when shrinking more than 2x, else bilinear) "
               "and padded bottom/right to a multiple of 32, unless the model has a fixed input (†)")
    lm_at = f"at input {p['landmark_size']} only" if p.get("landmark_size") else "at each input size"
    out.append(f"- **landmarks** (models with 5 points, {lm_at}): {', '.join(map(str, sorted(crops))) or '?'} held-out "
               "crops (`facelite.evaluation.landmarks`: 80x80 crops padded to 240x240, resized to the input size), score "
               f"threshold {p['deploy_score_threshold']}; NME = mean point error / inter-ocular distance over detected "
               "crops; failures: NME > 10 % (of detected crops); misses: no detection with IoU >= 0.3")
    out.append(f"- **latency**: end to end per image (preprocessing, network, decoding, NMS; image decoding excluded), "
               f"{p['latency_images']} dev images (facelite bench's selection), {p['warmup']} warm-up run(s) per image "
               f"excluded, {p['repeats']} timed rounds, all models interleaved round by round: median and 90th "
               f"percentile; {p['threads']} thread (ONNX Runtime intra-op threads, OpenCV, torch); score threshold "
               f"{p['deploy_score_threshold']}. **CPU ms**: the process's CPU time per call; **wall ms**: wall-clock. "
               "Single-threaded, the two agree on a quiet machine; on a busy one the wall-clock time also counts the "
               "waits for a CPU, so compare CPU times (the plot uses them)")
    out.append("- **params**: convolution weights and biases of the ONNX graph, batch norm folded (as facelite bench "
               "counts them); **file MB**: the model file on disk")
    out.append("")
    for size in p["sizes"]:
        sel = [r for r in rows if r["input_size"] == size]
        if sel:
            out.append(f"## Input {size}\n")
            out.append(_size_table(sel, p.get("landmark_size")))
            out.append("")
    if plot_name:
        out.append(f"![AP (Medium) against latency]({plot_name})\n")
    notes = []
    for r in rows:
        if r.get("note", "").startswith("fixed") and r["model"] not in {n.split(":")[0] for n in notes}:
            notes.append(f"{r['model']}: {r['note']}")
    if notes:
        out.append("† " + "; ".join(notes) + ". They appear only at their own size.\n")
    own = {}
    for r in rows:
        s = ((r.get("ap") or {}).get("settings") or {}).get("own_nms_threshold")
        if s is not None and s != p["nms_threshold"]:
            own[r["label"]] = s
    if own:
        out.append(f"Every model is evaluated with NMS {p['nms_threshold']}; their own projects use "
                   + ", ".join(f"{k} {v}" for k, v in own.items()) + ".\n")
    sessions: dict[str, list[str]] = {}
    for r in rows:
        if r.get("latency"):
            sessions.setdefault(r["latency"]["measured_at"], []).append(f"{r['model']}@{r['input_size']}")
    if len(sessions) > 1:
        out.append(f"**Latency comes from {len(sessions)} timing sessions** ("
                   + "; ".join(f"{t}: {', '.join(v)}" for t, v in sorted(sessions.items()))
                   + "): rows of different sessions ran under different machine load. For a like-for-like "
                   "latency comparison, re-time all rows together: `python -m benchmarks.peers --retime`.\n")
    elif sessions:
        (t, _), = sessions.items()
        out.append(f"All latencies were measured in one session starting {t}, all models interleaved round by "
                   "round, so that the machine's background load falls on all of them alike.\n")
    if result.get("skipped"):
        out.append("Not measured: " + "; ".join(f"{k} ({v})" for k, v in result["skipped"].items()) + "\n")
    out.append("## Licences of the weights\n")
    seen: dict[str, list[str]] = {}
    lic: dict[str, str] = {}
    for r in rows:
        seen.setdefault(r["family"], [])
        if r["label"] not in seen[r["family"]]:
            seen[r["family"]].append(r["label"])
        lic[r["family"]] = r["licence"]
    out.append(_table(["family", "models", "licence"], [[f, ", ".join(v), lic[f]] for f, v in seen.items()], "lll"))
    out.append("")
    return "\n".join(out)


def summary_table(result: dict[str, Any]) -> str:
    """One row per model: AP Easy / Medium / Hard at each size, landmark NME (failures) at the
    landmark protocol's size (320, else the largest), median latency at each size, params, MB."""
    sizes = result["protocol"]["sizes"]
    from ..registry import entries

    order = {e.name: i for i, e in enumerate(entries())}
    by_model: dict[str, dict[int, dict[str, Any]]] = {}
    for r in sorted(result["rows"], key=lambda r: order.get(r["model"], len(order))):
        by_model.setdefault(r["model"], {})[r["input_size"]] = r
    lm_size = 320 if 320 in sizes else max(sizes)
    out = []
    for rows in by_model.values():
        any_row = next(iter(rows.values()))
        cells = [_label(any_row)]
        for s in sizes:
            ap = ((rows.get(s) or {}).get("ap") or {}).get("ap")
            cells.append(" / ".join(_f(ap.get(k)) for k in ("easy", "medium", "hard")) if ap else "–")
        lm = (rows.get(lm_size) or {}).get("landmarks") or (rows.get(max(rows)) or {}).get("landmarks")
        cells.append(f"{_pct(lm['nme_io_mean'])} ({_pct(lm['failure_rate'])})" if lm else "–")
        for s in sizes:
            lat = (rows.get(s) or {}).get("latency")
            cells.append(_f(_ms(lat), 1) if lat else "–")
        cells += [f"{any_row['params'] / 1e3:,.0f} k" if any_row.get("params") else "n/a",
                  f"{any_row['file_bytes'] / 1e6:.2f}"]
        out.append(cells)
    head = (["model"] + [f"AP @{s} E / M / H" for s in sizes] + [f"NME @{lm_size} (failures)"]
            + [f"CPU ms @{s}" for s in sizes] + ["params", "file MB"])
    return _table(head, out, "l" + "r" * (len(head) - 1))


DOC_BEGIN = "<!-- peers-summary:begin (written by python -m benchmarks.peers --doc) -->"
DOC_END = "<!-- peers-summary:end -->"


def update_doc(result: dict[str, Any], path: str | os.PathLike) -> bool:
    """Replace the text between :data:`DOC_BEGIN` and :data:`DOC_END` in ``path`` with
    :func:`summary_table` and the run's date and load; ``False`` when the markers are absent."""
    path = Path(path)
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        return False
    m = result["machine"]
    lat = [r["latency"] for r in result["rows"] if r.get("latency")]
    when = sorted(x["measured_at"] for x in lat)
    loads = [x["load_average_before"][0] for x in lat if x.get("load_average_before")]
    body = (f"\n{summary_table(result)}\n\nLatency (median CPU time per image, one thread) measured "
            f"{when[0] if when else '?'}{'' if len(set(when)) < 2 else ' to ' + when[-1]} on {m['cpu']} "
            f"({m['logical_cores']} logical cores), 1-minute load average {min(loads, default=0):.2f}"
            f"{'' if len(set(loads)) < 2 else f' to {max(loads):.2f}'} when timing started. "
            f"Written by `{result['command']}`.\n")
    a, b = text.index(DOC_BEGIN) + len(DOC_BEGIN), text.index(DOC_END)
    path.write_text(text[:a] + body + text[b:])
    return True


def plot(result: dict[str, Any], path: str | os.PathLike) -> Path | None:
    """AP (Medium) against median latency, every row with both: one colour per model, filled
    markers at 640, open at 320, facelite's models as stars. ``None`` without matplotlib."""
    pts = [r for r in result["rows"] if (r.get("ap") or {}).get("ap", {}).get("medium") is not None and r.get("latency")]
    if not pts:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ModuleNotFoundError:
        return None
    from facelite.evaluation.plots import save_figure

    fig, ax = plt.subplots(figsize=(10.5, 5.5))
    palette = plt.get_cmap("tab20").colors
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the strong colours first, then their light variants
    colours: dict[str, Any] = {}
    for r in pts:
        c = colours.setdefault(r["label"], palette[order[len(colours) % 20]])
        big = r["input_size"] >= 640
        x, y = _ms(r["latency"]), r["ap"]["ap"]["medium"]
        ax.scatter(x, y, marker="*" if r.get("facelite") else "o", s=160 if r.get("facelite") else 50,
                   color=c, facecolors=c if big else "none", zorder=3, linewidths=1.3)
        ax.annotate(f"@{r['input_size']}", (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for label, c in colours.items():
        fac = any(r.get("facelite") and r["label"] == label for r in pts)
        ax.scatter([], [], color=c, marker="*" if fac else "o", label=label)
    for label, c in colours.items():  # join a model's two sizes
        mine = sorted((r for r in pts if r["label"] == label), key=lambda r: r["input_size"])
        if len(mine) > 1:
            ax.plot([_ms(r["latency"]) for r in mine], [r["ap"]["ap"]["medium"] for r in mine],
                    color=c, lw=0.8, alpha=0.5, zorder=2)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if str(int(v))[0] in "2356" else ""))
    m = result["machine"]
    ax.set_xlabel(f"median CPU time per image (end to end), ms, 1 thread ({m['cpu']})", fontsize=8)
    ax.set_ylabel("AP Medium, WIDER FACE dev split")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("AP (Medium) against latency: filled 640, open 320 (longer image side); stars: facelite"
                 + (" [--quick]" if result.get("quick") else ""), fontsize=9)
    return save_figure(fig, path)


def write_outputs(result: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """``<out>/peers.json``, ``<out>/peers.md`` and (with matplotlib) ``<out>/peers-ap-latency.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "peers.json", "markdown": out / "peers.md"}
    png = plot(result, out / PLOT_NAME)
    if png is not None:
        paths["plot"] = png
    paths["json"].write_text(json.dumps(result, indent=1) + "\n")
    paths["markdown"].write_text(to_markdown(result, png.name if png else None))
    return paths
