"""The peer adapters (benchmarks/adapters) and the comparison command (python -m benchmarks.peers).

Each adapter runs on one dev image; the command runs on tiny settings. Both need the shared
folder (peer model files, WIDER FACE dev split) and are skipped without it, or without a
model's file, or without a library an adapter needs beyond the development install (BlazeFace:
LiteRT's ``ai_edge_litert``, the ``tflite`` extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import finish
from benchmarks.registry import ENTRIES, entries, select
from facelite.paths import shared_dir

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "12--Group/12_Group_Group_12_Group_Group_12_84.jpg"  # eleven medium-sized faces
MIN_FACES = {"blazeface-short": 1}
"""Fewer faces expected on :data:`IMAGE` than 5: the selfie model sees 40-px faces as 5 px at 128x128."""


@pytest.fixture(scope="module")
def dev_image() -> np.ndarray:
    from facelite.evaluation.widerface import default_split_dir, read_bgr

    path = default_split_dir() / "images" / IMAGE
    if not path.is_file():
        pytest.skip(f"dev image not found at {path} (set FACELITE_SHARED to the shared folder)")
    return read_bgr(path)


@pytest.mark.shared
@pytest.mark.parametrize("name", [e.name for e in entries()])
def test_adapter_sane_on_a_dev_image(name: str, dev_image: np.ndarray) -> None:
    entry = ENTRIES[name]
    missing = [p for p in entry.files() if not p.is_file()]
    if missing:
        pytest.skip(f"{name}: model file not found: {missing[0]}")
    for module in entry.requires:
        pytest.importorskip(module, reason=f"{name} needs {module}")
    size = 320 if 320 in entry.sizes else entry.sizes[0]
    det = entry.build(size, score_threshold=0.3)
    assert det.model_path.is_file() and det.settings()["input_size"] == entry.extra.get("network_input", size)
    boxes, scores, points = det(dev_image)
    h, w = dev_image.shape[:2]
    assert MIN_FACES.get(name, 5) <= len(boxes) <= 60, f"{name}: {len(boxes)} faces for an image with 11"
    assert boxes.shape == (len(scores), 4) and boxes.dtype == np.float32 and scores.dtype == np.float32
    assert np.all(boxes[:, [0, 1]] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all(np.diff(scores) <= 0) and scores.min() >= 0.3 and scores.max() <= 1.0
    if entry.landmarks == 5:
        assert points is not None and points.shape == (len(boxes), 5, 2)
        # the eyes lie in the upper half of the best face's box, the mouth corners below the eyes
        b, p = boxes[0], points[0]
        assert b[0] - 5 <= p[:, 0].min() and p[:, 0].max() <= b[2] + 5
        assert p[0:2, 1].max() < (b[1] + b[3]) / 2 < p[3:5, 1].min()
    else:
        assert points is None


def test_fixed_input_models_refuse_other_sizes() -> None:
    with pytest.raises(ValueError, match="fixed input"):
        ENTRIES["yolo5face-0.5g"].build(640)
    with pytest.raises(ValueError, match="fixed input"):
        ENTRIES["ultralight-rfb-320"].build(640)
    for name in ("blazeface-short", "blazeface-full"):  # refused before the adapter (or LiteRT) is touched
        with pytest.raises(ValueError, match="fixed input"):
            ENTRIES[name].build(640)


def test_blazeface_anchors_are_mediapipes() -> None:
    from benchmarks.adapters.blazeface import VARIANTS, ssd_anchors

    short = ssd_anchors(128, VARIANTS["short"]["strides"], VARIANTS["short"]["per_layer"])
    full = ssd_anchors(192, VARIANTS["full"]["strides"], VARIANTS["full"]["per_layer"])
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # stride 8: 16 x 16 cells, 2 anchors each, row-major; then stride 16 (three layers): 8 x 8 cells, 6 each
    assert short[0].tolist() == short[1].tolist() == pytest.approx([0.5 / 16, 0.5 / 16])
    assert short[2].tolist() == pytest.approx([1.5 / 16, 0.5 / 16]) and short[32].tolist() == pytest.approx(
        [0.5 / 16, 1.5 / 16])
    assert (short[512:518] == short[512]).all() and short[512].tolist() == pytest.approx([0.5 / 8, 0.5 / 8])
    assert short[518].tolist() == pytest.approx([1.5 / 8, 0.5 / 8]) and short[-1].tolist() == pytest.approx(
        [7.5 / 8, 7.5 / 8])
    # full range: stride 4 on 192 x 192, one anchor per cell
    assert full[1].tolist() == pytest.approx([1.5 / 48, 0.5 / 48]) and full[48].tolist() == pytest.approx(
        [0.5 / 48, 1.5 / 48])


def test_blazeface_without_litert_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.adapters.blazeface import BlazeFace
    from benchmarks.common import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # "import ai_edge_litert..." raises ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    model = ENTRIES["blazeface-short"].files()[0]
    if not model.is_file():
        pytest.skip(f"BlazeFace model file not found: {model}")
    with pytest.raises(MissingDependencyError, match="'tflite' extra"):
        BlazeFace("short")


@pytest.mark.shared
@pytest.mark.parametrize("variant", ["short", "full"])
def test_blazeface_finds_the_astronaut(variant: str, dev_image: np.ndarray) -> None:
    pytest.importorskip("ai_edge_litert", reason="BlazeFace needs LiteRT (the 'tflite' extra)")
    model = ENTRIES[f"blazeface-{variant}"].files()[0]
    if not model.is_file():
        pytest.skip(f"BlazeFace model file not found: {model}")
    from benchmarks.adapters.blazeface import BlazeFace
    from facelite import load_image
    from facelite.paths import data_path

    det = BlazeFace(variant, score_threshold=0.5)
    boxes, scores, points = det(load_image(data_path("astronaut.jpg")))
    assert points is None and boxes.shape == (1, 4) and scores[0] > 0.9  # one face, boxes only
    x1, y1, x2, y2 = boxes[0]  # her face: about x 180-275, y 80-175 of the 512 x 512 image
    assert 160 < x1 < 200 and 255 < x2 < 295 and 55 < y1 < 100 and 155 < y2 < 195

    # a letterboxed wide image (padding above and below): boxes in the image's pixels, sorted
    boxes, scores, points = BlazeFace(variant, score_threshold=0.02)(dev_image)
    h, w = dev_image.shape[:2]
    assert points is None and len(boxes) > 0 and np.all(np.diff(scores) <= 0)
    assert np.all(boxes[:, [0, 1]] >= 0) and np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)


def test_select_groups_and_unknown_names() -> None:
    assert [e.name for e in select(["scrfd"])] == ["scrfd-0.5g", "scrfd-2.5g"]
    assert [e.name for e in select(["blazeface"])] == ["blazeface-short", "blazeface-full"]
    assert all(e.facelite for e in select(["facelite"]))
    with pytest.raises(ValueError, match="unknown model"):
        select(["no-such-model"])


def test_finish_maps_back_clips_and_sorts() -> None:
    boxes = np.array([[10, 10, 30, 30], [12, 10, 32, 30], [-20, 50, 40, 90]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    pts = np.tile(np.array([[20, 20]], np.float32), (3, 5, 1))
    b, s, p = finish(boxes, scores, pts, (100, 50, 3), scale=(2.0, 2.0), offset=(0.0, 10.0), nms_threshold=0.4)
    assert s.tolist() == pytest.approx([0.9, 0.7])  # the 0.5 box overlaps the 0.9 one
    assert b[0].tolist() == pytest.approx([6, 0, 16, 10])
    assert b[1].tolist() == pytest.approx([0, 20, 20, 40])  # clipped at x = 0
    assert p.shape == (2, 5, 2) and p[0, 0].tolist() == pytest.approx([10, 5])


@pytest.mark.shared
def test_peers_quick_command_writes_and_resumes(tmp_path: Path) -> None:
    from facelite.evaluation.widerface import default_gt_dir

    pytest.importorskip("scipy", reason="reading the WIDER FACE ground truth needs scipy")
    needed = [ENTRIES["retinaface-mnet0.25"].files()[0], ENTRIES["yunet-n"].files()[0],
              default_gt_dir() / "wider_face_val.mat"]
    if not all(p.is_file() for p in needed):
        pytest.skip(f"needs {', '.join(map(str, needed))} under {shared_dir()}")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = ["--quick", "--models", "retinaface-mnet0.25", "yunet-n", "--sizes", "320", "--ap-images", "2",
            "--landmark-crops", "3", "--latency-images", "1", "--out", str(out), "--cache", str(cache), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "FACELITE_SHARED": str(shared_dir().resolve())}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.peers", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "peers.json").read_text())
    assert result["quick"] and [r["model"] for r in result["rows"]] == ["retinaface-mnet0.25", "yunet-n"]
    for r in result["rows"]:
        assert r["input_size"] == 320 and r["ap"]["num_images"] == 2 and r["landmarks"]["crops"] == 3
        assert set(r["ap"]["ap"]) == {"easy", "medium", "hard"} and r["latency"]["median_ms"] > 0
        assert r["params"] > 10_000 and r["file_bytes"] > 100_000
    md = (out / "peers.md").read_text()
    assert "## Input 320" in md and "YuNet-n" in md and "Apache-2.0" in md

    # a second run of one model: everything from the cache, the other model's rows kept
    from benchmarks.peers.__main__ import main

    parts = sorted(cache.rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    assert main([a for a in args if a != "retinaface-mnet0.25"]) == 0
    assert [p.stat().st_mtime_ns for p in sorted(cache.rglob("*.json"))] == stamps
    again = json.loads((out / "peers.json").read_text())
    assert [r["model"] for r in again["rows"]] == ["retinaface-mnet0.25", "yunet-n"]
    assert again["rows"][1]["ap"] == result["rows"][1]["ap"]


def test_gap_stats_on_a_hand_made_image():
    from benchmarks.gap import SIZE_BINS, gap_stats
    from facelite.evaluation.widerface import ImageGroundTruth

    # faces (x y w h) of 20, 100 and 300 px in a 1000-px image; at input 500 they are 10, 50, 150 px
    gt = {"a": ImageGroundTruth(np.array([[0, 0, 20, 20], [100, 100, 100, 100], [400, 400, 300, 300]], float),
                                {"easy": np.array([1, 2]), "medium": np.array([0, 1, 2])})}
    preds = {"a": np.array([[100, 100, 100, 100, 0.9],     # finds the 100-px face
                            [400, 400, 300, 300, 0.3],     # the 300-px face, below 0.5
                            [800, 0, 50, 50, 0.7],         # nowhere near a face: FP at both thresholds
                            [5, 0, 20, 20, 0.6]])}         # IoU 0.6 with the ignored-in-easy 20-px face
    r = gap_stats(preds, gt, {"a": 1000.0}, 500, "easy")
    b50, b150 = (int(np.searchsorted(SIZE_BINS, s, side="right") - 1) for s in (50, 150))
    assert r["faces"][b50] == 1 and r["faces"][b150] == 1 and sum(r["faces"]) == 2
    assert r["recall"]["0.5"][b50] == 1.0 and r["recall"]["0.5"][b150] == 0.0 and r["recall"]["0.2"][b150] == 1.0
    assert r["false_positives"] == {"0.5": 1, "0.2": 1}
    m = gap_stats(preds, gt, {"a": 1000.0}, 500, "medium")
    assert m["faces"][0] == 1 and m["recall"]["0.5"][0] == 1.0  # the 10-px face counts in medium


def test_gap_takes_model_files_and_refuses_missing_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.gap import _model_file, main

    assert _model_file("facelite-0.35") is None  # a registry name
    shipped = Path(__file__).parents[1] / "src/facelite/models/mobilenetv2-0.35-float32.onnx"
    assert _model_file(str(shipped)) == ("mobilenetv2-0.35-float32", shipped)
    assert _model_file(f"mine={shipped}") == ("mine", shipped)
    assert main(["--models", f"x={tmp_path / 'missing.onnx'}", "--limit", "1"]) == 2
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.shared
def test_gap_runs_a_model_file_as_its_registry_name(tmp_path: Path) -> None:
    """The shipped file given as a path gives the registry entry's numbers (same detector, same
    defaults)."""
    from benchmarks.gap import main

    shipped = Path(__file__).parents[1] / "src/facelite/models/mobilenetv2-0.35-float32.onnx"
    out = tmp_path / "gap.json"
    assert main(["--models", "facelite-0.35", f"file={shipped}", "--input-size", "320", "--limit", "4",
                 "--subsets", "hard", "--threads", "1", "--json", str(out)]) == 0
    hard = json.loads(out.read_text())["hard"]
    assert list(hard) == ["facelite-0.35", "file"] and sum(hard["file"]["faces"]) > 0
    assert hard["file"] == hard["facelite-0.35"]


@pytest.mark.shared
def test_eval_peer_on_a_label_file_scores_like_facelite_eval_labels(tmp_path: Path) -> None:
    """``--task labels`` runs an adapter on a label file's images; its cache is what
    ``facelite eval labels --predictions`` scores, to the same AP."""
    from benchmarks.eval_peer import main
    from facelite.evaluation.widerface import default_split_dir

    images = default_split_dir() / "images"
    if not (images / IMAGE).is_file():
        pytest.skip("dev image not found")
    gt = default_split_dir() / "wider_face_dev_bbx_gt.txt"
    lines = gt.read_text().splitlines()
    start = lines.index(IMAGE)
    n = int(lines[start + 1])
    (tmp_path / "val.txt").write_text("\n".join(lines[start:start + 2 + n]) + "\n")
    cache, out = tmp_path / "pred.jsonl", tmp_path / "out.json"
    assert main(["yunet-n", "--task", "labels", "--labels", str(tmp_path / "val.txt"), "--images", str(images),
                 "--input-size", "320", "--cache", str(cache), "--json", str(out), "--quiet"]) == 0
    ap = json.loads(out.read_text())["ap"]
    assert 0.3 < ap <= 1.0
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run([sys.executable, "-m", "facelite", "eval", "labels", str(tmp_path / "val.txt"), "--images",
                          str(images), "--predictions", str(cache), "--json", str(tmp_path / "cli.json")],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "cli.json").read_text())["ap"] == pytest.approx(ap, abs=1e-6)
