"""The WIDER FACE evaluation: hand-built cases with known AP, a literal port of the official
loop code as a reference, the submission layout, the cache, and a small end-to-end run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facelite.evaluation import widerface as wf
from facelite.evaluation.widerface import ImageGroundTruth, evaluate_widerface
from facelite.paths import shared_dir

ROOT = Path(__file__).resolve().parents[1]


def gt_image(boxes, easy=None, medium=None, hard=None) -> ImageGroundTruth:
    """Faces ``x y w h``; per subset the 0-based indices that count (default: all)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    every = np.arange(len(b))
    keep = {
        s: every if v is None else np.asarray(v, dtype=np.int64)
        for s, v in (("easy", easy), ("medium", medium), ("hard", hard))
    }
    return ImageGroundTruth(boxes=b, keep=keep)


def det(box, score):
    return [*box, score]


def evaluate(preds, gt, **kw):
    return evaluate_widerface(preds, image_list=list(gt), ground_truth=gt, **kw)


# ---------------------------------------------------------------- literal official reference


def official_reference(preds, gt, subsets=wf.SUBSETS, iou_thresh=0.5, thresh_num=1000):
    """Line-by-line port of WiderFace-Evaluation / evaluation.m (loops, +1 overlaps)."""

    def overlaps(boxes, query):
        out = np.zeros((len(boxes), len(query)))
        for k in range(len(query)):
            qa = (query[k, 2] - query[k, 0] + 1) * (query[k, 3] - query[k, 1] + 1)
            for n in range(len(boxes)):
                iw = min(boxes[n, 2], query[k, 2]) - max(boxes[n, 0], query[k, 0]) + 1
                if iw > 0:
                    ih = min(boxes[n, 3], query[k, 3]) - max(boxes[n, 1], query[k, 1]) + 1
                    if ih > 0:
                        ua = (boxes[n, 2] - boxes[n, 0] + 1) * (boxes[n, 3] - boxes[n, 1] + 1) + qa - iw * ih
                        out[n, k] = iw * ih / ua
        return out

    p = {k: np.asarray(v, np.float64).reshape(-1, 5).copy() for k, v in preds.items()}
    hi = max(v[:, 4].max() for v in p.values() if len(v))
    lo = min(v[:, 4].min() for v in p.values() if len(v))
    for v in p.values():
        if len(v):
            v[:, 4] = (v[:, 4] - lo) / (hi - lo)
            v[:] = v[np.argsort(-v[:, 4], kind="stable")]
    aps = {}
    for s in subsets:
        count_face, pr_curve = 0, np.zeros((thresh_num, 2))
        for key, g in gt.items():
            pred, boxes = p[key], g.boxes.copy()
            keep = g.keep[s] + 1
            count_face += len(keep)
            if len(boxes) == 0 or len(pred) == 0:
                continue
            ignore = np.zeros(len(boxes))
            ignore[keep - 1] = 1
            pp, gg = pred.copy(), boxes.copy()
            pp[:, 2:4] += pp[:, 0:2]
            gg[:, 2:4] += gg[:, 0:2]
            ov = overlaps(pp[:, :4], gg)
            recall_list, proposal = np.zeros(len(gg)), np.ones(len(pp))
            pred_recall = np.zeros(len(pp))
            for h in range(len(pp)):
                j = ov[h].argmax()
                if ov[h, j] >= iou_thresh:
                    if ignore[j] == 0:
                        recall_list[j] = -1
                        proposal[h] = -1
                    elif recall_list[j] == 0:
                        recall_list[j] = 1
                pred_recall[h] = np.sum(recall_list == 1)
            for t in range(thresh_num):
                r = np.where(pred[:, 4] >= 1 - (t + 1) / thresh_num)[0]
                if len(r):
                    pr_curve[t, 0] += np.sum(proposal[: r[-1] + 1] == 1)
                    pr_curve[t, 1] += pred_recall[r[-1]]
        with np.errstate(all="ignore"):
            prec, rec = pr_curve[:, 1] / pr_curve[:, 0], pr_curve[:, 1] / count_face
        mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.fmax(mpre[i - 1], mpre[i])  # MATLAB max skips NaN
        i = np.where(mrec[1:] != mrec[:-1])[0]
        aps[s] = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    return aps


def random_case(seed: int, n_images: int = 12):
    rng = np.random.default_rng(seed)
    gt, preds = {}, {}
    for i in range(n_images):
        g = rng.integers(0, 12)
        xy = rng.uniform(0, 400, (g, 2))
        wh = rng.uniform(4, 80, (g, 2))
        boxes = np.round(np.concatenate([xy, wh], 1))
        hard = np.flatnonzero(rng.random(g) < 0.8)
        medium = hard[rng.random(len(hard)) < 0.7]
        easy = medium[rng.random(len(medium)) < 0.6]
        key = f"ev/img{i}"
        gt[key] = gt_image(boxes, easy, medium, hard)
        # detections: jittered copies of some faces (some duplicated) plus clutter
        rows = []
        for b in boxes:
            for _ in range(rng.integers(0, 3)):
                jit = b + rng.normal(0, 0.12, 4) * b[[2, 3, 2, 3]]
                rows.append(det(jit, rng.uniform(0.02, 1.0)))
        for _ in range(rng.integers(0, 6)):
            rows.append(det([*rng.uniform(0, 400, 2), *rng.uniform(4, 80, 2)], rng.uniform(0.02, 0.6)))
        preds[key] = np.asarray(rows, np.float32).reshape(-1, 5)
    return gt, preds


# ---------------------------------------------------------------- hand-built cases


def test_iou_plus_one_convention():
    a = np.array([[0, 0, 9, 9]], float)  # spans pixels 0..9 inclusive: area (9+1)^2
    assert wf.iou_matrix_plus1(a, a)[0, 0] == pytest.approx(1.0)
    b = np.array([[0, 0, 1, 1]], float)
    c = np.array([[1, 1, 1, 1]], float)
    assert wf.iou_matrix_plus1(b, c)[0, 0] == pytest.approx(1 / 7)  # 1 shared pixel of 4 + 4
    d = np.array([[3, 0, 1, 1]], float)
    assert wf.iou_matrix_plus1(b, d)[0, 0] == 0.0


def test_perfect_detector_gives_one():
    gt = {
        "e/a": gt_image([[10, 10, 30, 40], [100, 50, 20, 20], [200, 200, 8, 8]], easy=[0], medium=[0, 1]),
        "e/b": gt_image([[0, 0, 50, 50]]),
    }
    preds = {k: [det(b, 0.9 - 0.1 * i) for i, b in enumerate(g.boxes)] for k, g in gt.items()}
    res = evaluate(preds, gt)
    assert res.ap == pytest.approx({"easy": 1.0, "medium": 1.0, "hard": 1.0})
    assert res.num_faces == {"easy": 2, "medium": 3, "hard": 4}


def test_detections_on_ignored_faces_are_neither_tp_nor_fp():
    gt = {"e/a": gt_image([[10, 10, 30, 30], [100, 100, 30, 30], [200, 10, 30, 30]], easy=[0], medium=[0])}
    base = {"e/a": [det([10, 10, 30, 30], 0.5)]}
    # the highest-scoring detections are on faces that Easy ignores
    extra = {"e/a": [det([100, 100, 30, 30], 0.99), det([200, 10, 30, 30], 0.98), det([10, 10, 30, 30], 0.5)]}
    assert evaluate(base, gt).ap["easy"] == pytest.approx(1.0)
    res = evaluate(extra, gt)
    assert res.ap["easy"] == pytest.approx(1.0)
    assert res.ap["hard"] == pytest.approx(1.0)
    # at the top thresholds the only predictions are on ignored faces: no proposal, precision undefined
    assert np.isnan(res.curves["easy"][0, 0])
    # only-ignored detections: no TP and no FP, AP 0
    only = {"e/a": [det([100, 100, 30, 30], 0.9), det([200, 10, 30, 30], 0.3)]}
    res = evaluate(only, gt)
    assert res.ap["easy"] == 0.0
    assert np.all(np.nan_to_num(res.curves["easy"][:, 1]) == 0)


def test_duplicate_detection_is_a_false_positive():
    gt = {"e/a": gt_image([[10, 10, 40, 40], [100, 10, 40, 40]])}
    single = {"e/a": [det([10, 10, 40, 40], 1.0), det([100, 10, 40, 40], 0.8)]}
    assert evaluate(single, gt).ap["easy"] == pytest.approx(1.0)
    dup = {"e/a": [det([10, 10, 40, 40], 1.0), det([11, 10, 40, 40], 0.9), det([100, 10, 40, 40], 0.8)]}
    # normalised scores 1, 0.5, 0: P=1 at R=0.5; the duplicate enters at 0.5; P=2/3 at R=1
    assert evaluate(dup, gt).ap["easy"] == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)


def test_score_normalisation_does_not_change_ap():
    gt, preds = random_case(3)
    a = evaluate(preds, gt).ap
    shifted = {k: np.column_stack([v[:, :4], 0.3 * v[:, 4].astype(np.float64) + 0.1]) for k, v in preds.items()}
    b = evaluate(shifted, gt).ap
    for s in a:
        assert b[s] == pytest.approx(a[s], abs=1e-9)


def test_restricting_to_a_split_counts_only_its_faces():
    gt = {
        "e/a": gt_image([[10, 10, 30, 30]]),
        "e/b": gt_image([[10, 10, 30, 30], [50, 50, 30, 30]]),
        "e/c": gt_image([[10, 10, 30, 30]] * 1),
    }
    preds = {"e/a": [det([10, 10, 30, 30], 0.9)], "e/b": [det([10, 10, 30, 30], 0.8), det([50, 50, 30, 30], 0.7)],
             "e/c": []}  # image c: a missed face
    full = evaluate_widerface(preds, image_list=["e/a", "e/b", "e/c"], ground_truth=gt)
    assert full.num_faces["hard"] == 4 and full.ap["hard"] == pytest.approx(0.75)
    part = evaluate_widerface(preds, image_list=["e/a.jpg", "e/b.jpg"], ground_truth=gt)
    assert part.num_faces["hard"] == 3 and part.num_images == 2
    assert part.ap["hard"] == pytest.approx(1.0)


def test_subset_without_faces_has_undefined_ap():
    gt = {"e/a": gt_image([[10, 10, 30, 30]], easy=[])}
    res = evaluate({"e/a": [det([10, 10, 30, 30], 0.9)]}, gt)
    assert np.isnan(res.ap["easy"]) and res.ap["hard"] == pytest.approx(1.0)
    assert res.to_dict()["ap"]["easy"] is None


def test_missing_predictions_are_an_error_unless_asked():
    gt = {"e/a": gt_image([[10, 10, 30, 30]]), "e/b": gt_image([[10, 10, 30, 30]])}
    preds = {"e/a": [det([10, 10, 30, 30], 0.9)]}
    with pytest.raises(ValueError, match="no predictions for 1 of 2"):
        evaluate(preds, gt)
    assert evaluate(preds, gt, missing="empty").ap["easy"] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_literal_official_code(seed):
    gt, preds = random_case(seed)
    ours = evaluate(preds, gt).ap
    ref = official_reference(preds, gt)
    for s in ref:
        assert ours[s] == pytest.approx(ref[s], abs=1e-12)


def test_image_key_forms():
    assert wf.image_key("0--Parade/0_Parade_marchingband_1_465.jpg") == "0--Parade/0_Parade_marchingband_1_465"
    assert wf.image_key("/x/images/0--Parade/a.webp") == "0--Parade/a"
    assert wf.image_key("0--Parade/a") == "0--Parade/a"
    assert wf.image_key("a.jpg") == "a"


# ---------------------------------------------------------------- submission layout and cache


def test_submission_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    preds = {
        "0--Parade/img_1.jpg": rng.uniform(0, 500, (7, 5)).astype(np.float32),
        "12--Group/img_2": np.zeros((0, 5), np.float32),
    }
    assert wf.write_submission(preds, tmp_path) == 2
    text = (tmp_path / "0--Parade" / "img_1.txt").read_text().splitlines()
    assert text[0] == "img_1" and text[1] == "7" and len(text[2].split()) == 5
    back = wf.read_submission(tmp_path)
    assert set(back) == {"0--Parade/img_1", "12--Group/img_2"}
    np.testing.assert_array_equal(back["0--Parade/img_1"], preds["0--Parade/img_1.jpg"])  # float32 exact
    assert back["12--Group/img_2"].shape == (0, 5)


def test_submission_parse_errors():
    with pytest.raises(ValueError, match="says 2 faces"):
        wf.parse_submission("a\n2\n1 2 3 4 0.5\n")
    with pytest.raises(ValueError, match="x y w h score"):
        wf.parse_submission("a\n1\n1 2 3 4\n")
    # the classic format: trailing spaces, blank lines at the end
    out = wf.parse_submission("a\n1\n1 2 3 4 0.5 \n\n")
    np.testing.assert_allclose(out, [[1, 2, 3, 4, 0.5]])


def _tiny_split(root: Path, names, scale=None):
    import cv2

    (root / "images").mkdir(parents=True)
    for n in names:
        p = root / "images" / n
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), np.full((40, 60, 3), 100, np.uint8))
    (root / "images.txt").write_text("\n".join(names) + "\n")
    if scale is not None:
        rows = ["name\torig_w\torig_h\tw\th\tscale"] + [f"{n}\t120\t80\t60\t40\t{scale:.6f}" for n in names]
        (root / "images.tsv").write_text("\n".join(rows) + "\n")


def test_run_detector_cache_resumes_and_refuses_other_settings(tmp_path):
    names = ["0--Parade/a.jpg", "0--Parade/b.jpg", "1--Handshaking/c.jpg"]
    _tiny_split(tmp_path / "split", names)
    calls = []

    def detect(img):
        calls.append(img.shape)
        boxes = np.array([[1, 2, 11, 22], [5, 5, 6, 6], [0, 0, 30, 30]], np.float32)
        return boxes, np.array([0.9, 0.01, 0.5], np.float32)  # the 0.01 one is below 0.02

    cache = tmp_path / "cache"
    first = wf.run_detector_on_split(detect, tmp_path / "split", limit=2, cache_dir=cache,
                                     cache_settings={"m": 1}, show_progress=False)
    assert len(calls) == 2 and first.num_computed == 2
    np.testing.assert_allclose(first.predictions["0--Parade/a"], [[1, 2, 10, 20, 0.9], [0, 0, 30, 30, 0.5]], rtol=1e-6)
    second = wf.run_detector_on_split(detect, tmp_path / "split", cache_dir=cache, cache_settings={"m": 1},
                                      show_progress=False)
    assert len(calls) == 3 and second.num_computed == 1
    for k, v in first.predictions.items():
        np.testing.assert_array_equal(second.predictions[k], v)
    assert (cache / "settings.json").is_file() and (cache / "1--Handshaking" / "c.txt").is_file()
    with pytest.raises(ValueError, match="other settings"):
        wf.run_detector_on_split(detect, tmp_path / "split", cache_dir=cache, cache_settings={"m": 2},
                                 show_progress=False)


def test_run_detector_accepts_faces_and_maps_rescaled_images_back(tmp_path):
    from facelite import Face

    _tiny_split(tmp_path / "split", ["0--Parade/a.webp"], scale=0.5)

    def detect(img):
        return [Face(box=(10.0, 10.0, 20.0, 30.0), score=0.8, landmarks=np.zeros((5, 2), np.float32))]

    run = wf.run_detector_on_split(detect, tmp_path / "split", show_progress=False, max_faces=1)
    np.testing.assert_allclose(run.predictions["0--Parade/a"], [[20, 20, 20, 40, 0.8]], rtol=1e-6)


def test_max_faces_keeps_the_best():
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (5, 1))
    scores = np.array([0.1, 0.9, 0.5, 0.03, 0.7], np.float32)
    out = wf.to_wider_predictions(boxes, scores, 0.02, 3)
    np.testing.assert_allclose(out[:, 4], [0.9, 0.7, 0.5])


def test_progress_printer(capsys):
    import io

    from facelite.progress import Progress, format_duration, progress

    buf = io.StringIO()
    assert list(progress(range(5), desc="x", stream=buf)) == list(range(5))
    assert "x  5/5 (100%)" in buf.getvalue()
    with Progress(total=10, desc="y", stream=buf, log_interval=0) as bar:
        bar.update(4, loss="0.5")
        assert "ETA" in bar.line() and "loss=0.5" in bar.line()
    assert format_duration(75) == "1:15" and format_duration(3700) == "1:01:40" and format_duration(float("nan")) == "?"


# ---------------------------------------------------------------- with the shared data


GT_DIR = shared_dir() / "data" / "widerface" / "eval"
DEV = shared_dir() / "data" / "widerface" / "dev"


@pytest.mark.shared
def test_official_ground_truth_of_the_dev_split():
    pytest.importorskip("scipy")
    names = wf.read_image_list(DEV)
    gt = wf.load_ground_truth(GT_DIR, names)
    assert len(gt) == len(names) == 502
    counts = {s: sum(len(g.keep[s]) for g in gt.values()) for s in wf.SUBSETS}
    assert counts == {"easy": 1220, "medium": 1939, "hard": 4151}
    # the .mat boxes are the dev text file's boxes (original coordinates)
    assert sum(len(g.boxes) for g in gt.values()) == 5071
    # hard contains medium contains easy
    for g in list(gt.values())[:50]:
        assert set(g.keep["easy"]) <= set(g.keep["medium"]) <= set(g.keep["hard"])


@pytest.mark.shared
def test_end_to_end_with_the_retinaface_peer(tmp_path):
    pytest.importorskip("scipy")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.adapters.retinaface_mnet025 import RetinaFaceMnet025, default_model_path

    if not default_model_path().is_file():
        pytest.skip(f"peer model not found at {default_model_path()}")
    detector = RetinaFaceMnet025(input_size=640)
    names = [wf.read_image_list(DEV)[i] for i in (3, 8, 9)]  # 14 Easy, 16 Medium, 16 Hard faces
    run = wf.run_detector_on_split(detector, DEV, names, cache_dir=tmp_path / "c", show_progress=False)
    res = evaluate_widerface(run.predictions, GT_DIR, names)
    assert res.num_images == 3 and res.num_predictions > 0
    assert res.num_faces == {"easy": 14, "medium": 16, "hard": 16}
    assert all(0.5 < v <= 1.0 for v in res.ap.values())
    again = evaluate_widerface(wf.read_submission(tmp_path / "c"), GT_DIR, names)
    assert again.ap == res.ap


@pytest.mark.shared
def test_cli_eval_widerface_and_landmarks_with_facelite_detector(peer_model_path, tmp_path, capsys):
    """``facelite eval`` through FaceDetector (the peer rewrapped as a facelite model), a few images."""
    pytest.importorskip("scipy")
    import json

    from facelite.cli import main

    out = tmp_path / "w.json"
    args = ["eval", "widerface", "--model", str(peer_model_path), "--limit", "10", "--quiet", "--json", str(out),
            "--cache", str(tmp_path / "cache"), "--submission", str(tmp_path / "sub")]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["num_images"] == 10 and res["settings"]["score_threshold"] == 0.02
    assert res["model"]["sha256"] and res["timing"]["num_computed"] == 10
    assert 0.5 < res["ap"]["easy"] <= 1.0
    assert "Easy" in capsys.readouterr().out
    # scoring the submission folder it wrote gives the same AP
    out2 = tmp_path / "s.json"
    assert main(["eval", "widerface", "--predictions", str(tmp_path / "sub"), "--limit", "10", "--json", str(out2)]) == 0
    assert json.loads(out2.read_text())["ap"] == res["ap"]
    # landmarks
    out3 = tmp_path / "l.json"
    assert main(["eval", "landmarks", "--model", str(peer_model_path), "--limit", "5", "--quiet", "--json", str(out3)]) == 0
    lmr = json.loads(out3.read_text())
    assert lmr["crops"] == 5 and lmr["settings"]["input_size"] == 320 and lmr["miss_rate"] == 0.0
