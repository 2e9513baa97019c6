"""``facelite bench``: the quick run end to end, the stage split, MAC counting, the front."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from facelite.bench.graph import STAGES, count_macs, count_params, find_stage_boundaries, split_stages
from facelite.bench.run import _digest, pareto_front
from facelite.cli import main


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same folder as in test_quantize.py: derived models are made once per session."""
    return tmp_path_factory.getbasetemp() / "bench-cache"


def _crowded_rows() -> int:
    """Crowded-image rows of the quick run: one per precision (3) and score threshold (0.5, 0.02),
    timed on the most crowded dev image, so none without the shared data folder."""
    from facelite.bench.run import crowded_images

    return 6 if crowded_images(1) else 0


def _quick_argv(model: Path, cache: Path, out: Path) -> list[str]:
    return ["bench", "--quick", "--models", str(model), "--images", "1", "--warmup", "1", "--repeats", "2",
            "--ap-images", "2", "--crowded", "1", "--calibration-images", "2", "--cache-dir", str(cache),
            "--out", str(out), "--quiet"]


@pytest.fixture(scope="module")
def quick_run(random_model_path: Path, bench_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench-out")
    assert main(_quick_argv(random_model_path, bench_cache, out)) == 0
    return json.loads((out / "bench.json").read_text()), out


def test_progress_log_and_journal(quick_run) -> None:
    result, out = quick_run
    log = (out / "bench.log").read_text()  # written even with --quiet
    assert "latency 1/3" in log and "ETA" in log and "latency 3/3" in log
    lines = [json.loads(line) for line in (out / "bench-rows.jsonl").read_text().splitlines()]
    assert lines[0]["fingerprint"]["repeats"] == 2
    kinds = [e["key"][0] for e in lines[1:]]
    assert kinds.count("stages") == 1 and kinds.count("latency") == 3 and kinds.count("crowded") == _crowded_rows()
    assert result["reused_measurements"] == 0


def test_resume_measures_only_what_is_missing(quick_run, random_model_path, bench_cache, tmp_path, monkeypatch,
                                              capsys) -> None:
    import shutil

    import facelite.bench.measure as measure

    first, out = quick_run
    resumed = tmp_path / "out"
    shutil.copytree(out, resumed)
    journal = resumed / "bench-rows.jsonl"
    lines = journal.read_text().splitlines()
    # an interruption: the last latency row was never written, and a line was cut short
    cut = [i for i, line in enumerate(lines) if '"latency"' in line][-1]
    journal.write_text("\n".join(lines[:cut]) + "\n" + lines[cut][:40])
    calls = []
    real = measure.time_pipeline
    monkeypatch.setattr(measure, "time_pipeline", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(measure, "time_stages", lambda *a, **k: pytest.fail("stages were measured again"))
    argv = _quick_argv(random_model_path, bench_cache, resumed)
    assert main([*argv, "--resume"]) == 0
    result = json.loads((resumed / "bench.json").read_text())
    assert len(calls) == 1 + _crowded_rows()  # the missing latency row; the crowded rows came after it
    assert result["reused_measurements"] == 1 + 2  # stages and two latency rows
    for a, b in zip(result["latency"][:2], first["latency"][:2]):
        assert a["median_ms"] == b["median_ms"]
    # other settings: refused, not mixed
    capsys.readouterr()
    assert main([*argv[:-1], "--repeats", "3", "--quiet", "--resume", "--no-ap"]) == 1
    assert "what differs: accuracy, repeats" in capsys.readouterr().err


def test_quick_run_writes_json_and_markdown(quick_run, capsys) -> None:
    result, out = quick_run
    for key in ("machine", "settings", "models", "stages", "latency", "crowded", "postprocess", "accuracy",
                "frontier", "paper", "elapsed_s", "command"):
        assert key in result, key
    assert result["quick"] is True
    assert result["machine"]["cpu"] and "onnxruntime" in result["machine"]["versions"]
    md = (out / "bench.md").read_text()
    for title in ("Table 1", "Tables 2-3", "Table 4", "Post-processing share", "The paper's numbers"):
        assert title in md
    assert "162.90" in md  # the paper's Table 1 total, beside ours


def test_latency_rows(quick_run) -> None:
    result, _ = quick_run
    rows = result["latency"]
    assert {r["precision"] for r in rows} == {"float32", "dynamic-int8", "static-int8"}
    for r in rows:
        assert r["input_size"] == 320 and r["threads"] == 1 and r["samples"] == 2
        assert 0 < r["median_ms"] <= r["p90_ms"]
        assert r["params"] > 100_000 and r["macs"] > 10**8
        for k in ("preprocess_ms", "network_ms", "postprocess_ms", "postprocess_share", "file_bytes",
                  "speedup_vs_float32", "size_reduction_vs_float32"):
            assert r[k] is not None, k
    by = {r["precision"]: r for r in rows}
    assert by["float32"]["speedup_vs_float32"] == 1.0
    assert by["dynamic-int8"]["file_bytes"] < by["float32"]["file_bytes"]
    assert by["static-int8"]["size_reduction_vs_float32"] > 2.0
    assert by["float32"]["paper_ms"] == 31.97  # paper Table 3, PC, alpha 0.35 at 320


def test_stages_add_up(quick_run) -> None:
    s = quick_run[0]["stages"]
    assert list(s["stages_ms"]) == ["preprocess", *(name for name, _ in STAGES), "postprocess"]
    assert s["max_abs_diff"] == 0.0  # the chained sub-models compute exactly the whole network
    assert s["sum_ms"] == pytest.approx(sum(s["stages_ms"].values()), abs=0.01)
    # How close the timed stages come to the timed whole is a benchmark result (printed in Table 1),
    # not a test: on a busy machine two timings of the same work differ by 2x. Check they were taken.
    for key in ("end_to_end_ms", "network_stages_ms", "network_whole_ms"):
        assert 0 < s[key] < 60_000, key
    assert sum(s["shares"].values()) == pytest.approx(1.0, abs=0.01)


def test_stages_have_a_crowded_image_row(quick_run) -> None:
    result, out = quick_run
    c = result["stages"].get("crowded")
    if not result["postprocess"]["crowded_images"]:  # no shared data folder
        assert c is None
        return
    assert c["image"] == result["postprocess"]["crowded_images"][0]["image"] and c["score_threshold"] == 0.02
    assert c["samples"] >= 1 and 0 < c["postprocess_ms"] < c["mean_ms"] and 0 < c["postprocess_share"] < 1
    assert "decoding + NMS, most crowded dev image" in (out / "bench.md").read_text()


def test_postprocess_and_accuracy_sections(quick_run) -> None:
    result, _ = quick_run
    post = result["postprocess"]
    assert post["limit"] == 0.1 and post["paper_nms_share"] == pytest.approx(0.267, abs=0.001)
    if result["accuracy"]:  # the shared data folder is there
        assert {a["precision"] for a in result["accuracy"]} == {"float32", "dynamic-int8", "static-int8"}
        for a in result["accuracy"]:
            assert set(a["ap"]) == {"easy", "medium", "hard"} and a["num_images"] == 2
        assert len(post["crowded_images"]) == 1 and post["crowded_images"][0]["annotated_faces"] > 100
        assert len(result["crowded"]) == 3 * 2  # one image x three precisions x two score thresholds
        assert {r["score_threshold"] for r in result["crowded"]} == {0.5, 0.02}
        assert len(result["frontier"]) == 3 and any(d["on_front"] for d in result["frontier"])
    else:
        assert result["accuracy_note"].startswith("not measured")


def test_ap_cache_is_kept_per_post_processing(quick_run, bench_cache: Path) -> None:
    """The AP predictions cached by the bench record the voting settings they were made with (the
    detector's defaults), each setting in its own folder: a change of defaults is measured anew."""
    result, _ = quick_run
    if not result["accuracy"]:
        pytest.skip("no shared data folder: AP not measured")
    caches = sorted(bench_cache.glob("*/ap-*/settings.json"))
    assert caches
    for path in caches:
        settings = json.loads(path.read_text())
        assert settings["box_voting"] is True and settings["landmark_voting"] is True
        assert path.parent.name == f"ap-{settings['input_size']}-{_digest(settings)}"


def test_stage_split_is_exact(random_model_path: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    from facelite.runtime.onnx import session_options

    bounds = find_stage_boundaries(random_model_path)
    assert len(bounds) == 2 and all(len(b) == 3 for b in bounds)  # three pyramid levels cross each cut
    assert all(t.startswith("/model/backbone/") for t in bounds[0])
    assert all(t.startswith("/model/fpn/") for t in bounds[1])
    cuts = split_stages(random_model_path, tmp_path)
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 128)).astype(np.float32)
    whole = ort.InferenceSession(str(random_model_path), session_options(1)).run(None, {"input": x})
    feed = {"input": x}
    for c in cuts:
        outs = ort.InferenceSession(str(c.path), session_options(1)).run(list(c.outputs), {k: feed[k] for k in c.inputs})
        feed.update(zip(c.outputs, outs))
    for name, ref in zip(("scores", "boxes", "landmarks"), whole):
        np.testing.assert_array_equal(feed[name], ref)


def test_count_macs_and_params_on_a_known_graph() -> None:
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(8, np.float32), "b1")
    w2 = numpy_helper.from_array(np.zeros((8, 1, 3, 3), np.float32), "w2")  # depthwise
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["a", "w2"], ["out"], pads=[1, 1, 1, 1], group=8),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w1, b1, w2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    # conv1: 3*3*3 * 8 * (32*16); depthwise: 3*3*1 * 8 * (32*16)
    assert count_macs(m, 64, 32) == 27 * 8 * 512 + 9 * 8 * 512
    assert count_params(m) == 8 * 27 + 8 + 8 * 9


def test_count_params_matches_torch(random_model) -> None:
    torch_model, path = random_model
    import torch

    # exported convolutions carry the folded batch norm as a bias: torch's count minus the BN
    # parameters, plus one bias per folded conv output channel
    n_torch = sum(p.numel() for p in torch_model.parameters())
    bn = [m for m in torch_model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert count_params(path) == n_torch - sum(2 * m.num_features for m in bn) + sum(m.num_features for m in bn)


def test_pareto_front() -> None:
    lat = [{"model": "m", "alpha": 1.0, "input_size": s, "precision": p, "threads": 1, "median_ms": t}
           for s, p, t in ((640, "a", 50.0), (640, "b", 30.0), (320, "a", 10.0), (320, "b", 12.0))]
    acc = [{"model": "m", "input_size": s, "precision": p, "ap": {"medium": ap}}
           for s, p, ap in ((640, "a", 0.80), (640, "b", 0.79), (320, "a", 0.60), (320, "b", 0.55))]
    front = pareto_front(lat, acc, 1)
    assert [d["median_ms"] for d in front] == [10.0, 12.0, 30.0, 50.0]
    assert [d["on_front"] for d in front] == [True, False, True, True]


def test_bench_without_models_says_what_to_do(tmp_path: Path, capsys, monkeypatch) -> None:
    import facelite.models as fm

    monkeypatch.setattr(fm, "available_models", lambda: [(n, p, False) for n in fm.MODEL_NAMES for p in fm.PRECISIONS])
    assert main(["bench", "--no-ap", "--out", str(tmp_path), "--quiet"]) == 1
    assert "--random-weights" in capsys.readouterr().err
