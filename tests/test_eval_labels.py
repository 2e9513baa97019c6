"""`facelite eval labels`: AP, operating points and landmark error on your own labelled images."""

import json

import cv2
import numpy as np
import pytest
from test_detector import ASTRONAUT_BOX, ASTRONAUT_LANDMARKS

from facelite.annotations import Sample, write_retinaface_labels
from facelite.cli import main
from facelite.evaluation.labels import (
    FP,
    LEFT_OUT,
    TP,
    Detections,
    evaluate_labels,
    match_image,
    read_labels,
)
from facelite.paths import data_path


def _sample(name, boxes, ignore=None, landmarks=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    has = None if landmarks is None else np.ones(len(boxes), bool)
    return Sample(name, boxes, landmarks=landmarks, has_landmarks=has, ignore=ignore)


def _dets(boxes, scores, landmarks=None):
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), landmarks)


def test_match_best_first_duplicates_and_ignore_faces():
    gt = np.array([[0, 0, 10, 10], [100, 100, 120, 120], [50, 0, 60, 10]], np.float32)
    ignore = np.array([False, False, True])
    dets = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [100, 100, 119, 121], [50, 0, 60, 10], [200, 200, 210, 210],
                     [103, 100, 123, 120]], np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.7, 0.6, 0.95])
    status, gt_index = match_image(dets, scores, gt, ignore)
    # 0.9 takes face 0 before the exact box scored 0.5 (a duplicate), 0.95 (IoU 0.74) takes face 1
    # before 0.8 (IoU 0.86); on an ignore face: left out; far from every face: false
    np.testing.assert_array_equal(status, [FP, TP, FP, LEFT_OUT, FP, TP])
    np.testing.assert_array_equal(gt_index, [-1, 0, -1, -1, -1, 1])
    status, _ = match_image(dets[:1], scores[:1], gt, ignore, iou_threshold=0.99)
    assert status[0] == TP  # identical boxes: IoU 1
    status, _ = match_image(dets[1:2], scores[1:2], gt, ignore, iou_threshold=0.9)
    assert status[0] == FP  # IoU 9/11 < 0.9


def test_ap_operating_points_and_best_f1_known_numbers():
    a = _sample("a.jpg", [[0, 0, 40, 40], [100, 0, 140, 40]])
    b = _sample("b.jpg", [[0, 0, 40, 40]])
    dets = {"a.jpg": _dets([[0, 0, 40, 40], [300, 0, 340, 40], [100, 0, 140, 40]], [0.9, 0.8, 0.7]),
            "b.jpg": _dets([[200, 200, 240, 240]], [0.6])}
    r = evaluate_labels([a, b], dets, thresholds=(0.75, 0.65))
    # ranked TP FP TP FP over 3 faces: precision envelope 1 up to recall 1/3, then 2/3 up to 2/3
    assert r.ap == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))
    assert (r.num_faces, r.num_detections, r.num_ignored) == (3, 4, 0)
    p75, p65 = r.operating_points
    assert (p75["tp"], p75["fp"], p75["fn"]) == (1, 1, 2) and p75["precision"] == 0.5
    assert (p65["tp"], p65["fp"], p65["fn"]) == (2, 1, 1) and p65["recall"] == pytest.approx(2 / 3)
    assert r.best_f1["threshold"] == pytest.approx(0.7) and r.best_f1["f1"] == pytest.approx(2 / 3)
    assert "AP 0.5556" in r.table() and "(best F1)" in r.table()
    # at the best-F1 threshold 0.7: a has both faces and one false detection, b misses its face
    assert r.per_image == [{"path": "a.jpg", "faces": 2, "found": 2, "false": 1, "missed": 0},
                           {"path": "b.jpg", "faces": 1, "found": 0, "false": 0, "missed": 1}]
    assert [w["path"] for w in r.worst_images(1)] == ["a.jpg"] and "0 + 1 / 2  a.jpg" in r.table()
    perfect = evaluate_labels([a, b], {"a.jpg": _dets(a.boxes, [0.9, 0.8]), "b.jpg": _dets(b.boxes, [0.7])})
    assert perfect.ap == pytest.approx(1.0) and perfect.best_f1["f1"] == 1.0 and perfect.worst_images() == []


def test_ap_by_size_counts_only_faces_and_false_detections_of_that_size():
    s = _sample("a.jpg", [[0, 0, 20, 20], [100, 100, 220, 220]])  # 20 px (small) and 120 px (large)
    dets = _dets([[400, 400, 410, 410], [100, 100, 220, 220], [0, 0, 20, 20]], [0.95, 0.9, 0.5])  # 10-px false one first
    r = evaluate_labels([s], {"a.jpg": dets})
    assert r.faces_by_size == {"small": 1, "medium": 0, "large": 1}
    assert r.ap_by_size["large"] == pytest.approx(1.0)  # the small false detection is not its business
    assert r.ap_by_size["small"] == pytest.approx(0.5)  # found, ranked after a false small one
    assert np.isnan(r.ap_by_size["medium"])
    ignored = evaluate_labels([s], {"a.jpg": dets}, min_size=25)
    assert ignored.num_faces == 1 and ignored.num_ignored == 1 and ignored.ap == pytest.approx(1.0)


def test_ignore_faces_are_neither_found_nor_missed():
    s = _sample("a.jpg", [[0, 0, 40, 40], [100, 0, 140, 40]], ignore=[False, True])
    r = evaluate_labels([s], {"a.jpg": _dets([[100, 0, 140, 40], [0, 0, 40, 40]], [0.9, 0.8])})
    assert r.num_faces == 1 and r.ap == pytest.approx(1.0)
    assert r.operating_points[0]["fp"] == 0


def test_landmark_error_per_box_size_on_true_positives_only():
    pts = np.array([[[10, 12], [30, 12], [20, 22], [12, 30], [28, 30]]], np.float32)
    s = _sample("a.jpg", [[0, 0, 40, 40]], landmarks=pts)
    off = pts + np.array([3, 4], np.float32)  # 5 px from every point
    r = evaluate_labels([s], {"a.jpg": _dets([[0, 0, 40, 40]], [0.9], off)})
    assert r.landmarks["faces"] == 1 and r.landmarks["nme_mean"] == pytest.approx(5 / 40)
    low = evaluate_labels([s], {"a.jpg": _dets([[0, 0, 40, 40]], [0.3], off)})
    assert low.landmarks["faces"] == 0  # below the landmark threshold (0.5)
    none = evaluate_labels([s], {"a.jpg": _dets(np.zeros((0, 4)), [], np.zeros((0, 5, 2)))})
    assert none.ap == 0.0 and none.operating_points[0]["fn"] == 1 and none.landmarks["faces"] == 0


def test_missing_detections_for_an_image_is_an_error():
    with pytest.raises(ValueError, match="no detections for 1 labelled image"):
        evaluate_labels([_sample("a.jpg", [[0, 0, 4, 4]])], {})


def test_read_labels_both_formats(tmp_path):
    wider = tmp_path / "gt.txt"
    wider.write_text("x/a.jpg\n2\n10 20 30 40 0 0 0 0 0 0\n50 60 5 5 0 0 0 1 0 0\nx/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
    a, b = read_labels(wider)
    assert a.path == tmp_path / "images" / "x" / "a.jpg" and b.boxes.shape == (0, 4)
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [50, 60, 55, 65]])
    np.testing.assert_array_equal(a.ignore, [False, True])  # the face marked invalid
    retina = tmp_path / "label.txt"
    write_retinaface_labels([_sample(tmp_path / "img" / "c.jpg", [[1, 2, 11, 22]])], retina, tmp_path / "img")
    (c,) = read_labels(retina, tmp_path / "img")
    assert c.path == tmp_path / "img" / "c.jpg" and not c.ignore.any()
    with pytest.raises(FileNotFoundError):
        read_labels(tmp_path / "none.txt")
    retina.write_text("# c.jpg\n1 2 x 4\n")
    with pytest.raises(ValueError, match=r"label.txt:2: expected numbers, got '1 2 x 4'"):
        read_labels(retina)
    wider.write_text("x/a.jpg\n1\n10 20 q 40 0 0 0 0 0 0\n")
    with pytest.raises(ValueError, match="gt.txt: face line of x/a.jpg: expected numbers"):
        read_labels(wider)


def test_read_coco_labels_keypoint_names_crowd_and_empty_images(tmp_path):
    names = ["nose", "left_eye", "right_eye", "left_mouth", "right_mouth"]  # another order, by name
    pts = {"left_eye": (10, 12), "right_eye": (30, 12), "nose": (20, 22), "left_mouth": (12, 30), "right_mouth": (28, 30)}
    kp = [v for n in names for v in (*pts[n], 2)]
    coco = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 64, "height": 64},
                   {"id": 8, "file_name": "sub/empty.jpg", "width": 64, "height": 64}],
        "categories": [{"id": 3, "name": "person"}, {"id": 5, "name": "Face", "keypoints": names}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [0, 0, 40, 40], "keypoints": kp, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [40, 0, 20, 20], "keypoints": [0] * 15, "iscrowd": 1},
            {"id": 3, "image_id": 7, "category_id": 5, "bbox": [5, 5, 0, 10]},  # degenerate: dropped
            {"id": 4, "image_id": 7, "category_id": 3, "bbox": [0, 0, 64, 64]},  # a person, not a face
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco))
    a, empty = read_labels(path)
    assert a.path == tmp_path / "a.jpg" and empty.path == tmp_path / "sub" / "empty.jpg"
    np.testing.assert_array_equal(a.boxes, [[0, 0, 40, 40], [40, 0, 60, 20]])
    np.testing.assert_array_equal(a.landmarks[0], [pts[n] for n in ("left_eye", "right_eye", "nose", "left_mouth",
                                                                     "right_mouth")])
    np.testing.assert_array_equal(a.has_landmarks, [True, False])  # unlabelled keypoints (v = 0)
    np.testing.assert_array_equal(a.ignore, [False, True])
    assert empty.boxes.shape == (0, 4)
    coco["categories"][1]["name"] = "head"
    path.write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="which category holds the faces"):
        read_labels(path)
    path.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="not a COCO file of face boxes"):
        read_labels(path)
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        read_labels(path)


@pytest.fixture
def labelled_folder(tmp_path):
    """The astronaut (its known face and landmarks), its mirror image, a blank image and a truncated JPEG."""
    root = tmp_path / "images"
    root.mkdir()
    img = cv2.imread(str(data_path("astronaut.jpg")))
    cv2.imwrite(str(root / "astronaut.png"), img)
    cv2.imwrite(str(root / "mirror.png"), img[:, ::-1])
    cv2.imwrite(str(root / "blank.png"), np.full_like(img, 90))
    (root / "broken.jpg").write_bytes(data_path("astronaut.jpg").read_bytes()[:5000])
    w = img.shape[1]
    box = np.array([ASTRONAUT_BOX], np.float32)
    pts = np.array([ASTRONAUT_LANDMARKS], np.float32)
    mbox = np.array([[w - box[0, 2], box[0, 1], w - box[0, 0], box[0, 3]]], np.float32)
    mpts = pts[:, [1, 0, 2, 4, 3]] * [-1, 1] + [w, 0]  # mirrored: left and right swap
    samples = [Sample(root / "astronaut.png", box, pts, [True]), Sample(root / "mirror.png", mbox, mpts, [True]),
               Sample(root / "blank.png", np.zeros((0, 4))), Sample(root / "broken.jpg", box)]
    write_retinaface_labels(samples, tmp_path / "label.txt", root)
    return tmp_path


def test_cli_on_real_faces_resumes_and_agrees_with_detect_output(labelled_folder, peer_model_path, capsys):
    labels, cache = labelled_folder / "label.txt", labelled_folder / "cache.jsonl"
    args = ["eval", "labels", str(labels), "--model", str(peer_model_path), "--quiet"]
    assert main([*args, "--cache", str(cache), "--json", str(labelled_folder / "r.json")]) == 1  # a bad image
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "truncated" in err
    r = json.loads((labelled_folder / "r.json").read_text())
    assert r["images"] == 3 and r["faces"] == 2 and r["skipped"] == [str(labelled_folder / "images" / "broken.jpg")]
    assert r["ap"] == pytest.approx(1.0) and r["best_f1"]["f1"] == 1.0
    assert r["landmarks"]["faces"] == 2 and r["landmarks"]["nme_mean"] < 0.04
    # a run killed while writing its last line resumes to the same numbers
    lines = cache.read_text().splitlines(keepends=True)
    assert len(lines) == 4  # settings + 3 images
    cache.write_text("".join(lines[:-1]) + lines[-1][:20])
    assert main([*args, "--cache", str(cache), "--json", str(labelled_folder / "r2.json")]) == 1
    assert json.loads((labelled_folder / "r2.json").read_text())["ap"] == r["ap"]
    assert len(cache.read_text().splitlines()) == 4
    # another model's settings are refused, not mixed in
    assert main(["eval", "labels", str(labels), "--cache", str(cache), "--quiet", "--input-size", "320"]) == 1
    assert "other settings" in capsys.readouterr().err
    # `facelite detect --jsonl` output at the same settings scores the same
    jsonl = labelled_folder / "faces.jsonl"
    assert main(["detect", str(labelled_folder / "images"), "--model", str(peer_model_path), "--jsonl", str(jsonl),
                 "--score-threshold", "0.02", "-q"]) == 1
    labels_ok = labelled_folder / "ok.txt"
    labels_ok.write_text(labels.read_text().split("# broken.jpg")[0])
    assert main(["eval", "labels", str(labels_ok), "--images", str(labelled_folder / "images"), "--predictions",
                 str(jsonl), "--json", str(labelled_folder / "r3.json")]) == 0
    r3 = json.loads((labelled_folder / "r3.json").read_text())
    assert (r3["ap"], r3["faces"], r3["landmarks"]["faces"]) == (r["ap"], 2, 2)
    assert r3["landmarks"]["nme_mean"] == pytest.approx(r["landmarks"]["nme_mean"], abs=1e-4)
    # the same labels as a COCO file, scored against `facelite detect --coco` output
    from facelite.coco import CocoBuilder
    from facelite.evaluation.labels import read_labels as read_any

    gt = CocoBuilder()
    for s in read_any(labels_ok, labelled_folder / "images"):
        gt.add_image(s.path.name, 512, 512, [{"box": b, "score": 1, "landmarks": p} for b, p in zip(s.boxes, s.landmarks)])
    gt.write(labelled_folder / "images" / "gt.coco.json")
    assert main(["detect", str(labelled_folder / "images"), "--model", str(peer_model_path), "--coco",
                 str(labelled_folder / "dets.coco.json"), "--score-threshold", "0.02", "-q"]) == 1
    assert main(["eval", "labels", str(labelled_folder / "images" / "gt.coco.json"), "--predictions",
                 str(labelled_folder / "dets.coco.json"), "--json", str(labelled_folder / "r4.json")]) == 0
    r4 = json.loads((labelled_folder / "r4.json").read_text())
    assert (r4["ap"], r4["faces"], r4["landmarks"]["faces"]) == (r["ap"], 2, 2)
    assert r4["landmarks"]["nme_mean"] == pytest.approx(r["landmarks"]["nme_mean"], abs=1e-4)


def test_cli_errors_are_one_line(labelled_folder, capsys, tmp_path):
    labels = labelled_folder / "label.txt"
    assert main(["eval", "labels", str(tmp_path / "missing.txt")]) == 1
    assert main(["eval", "labels", str(labels), "--predictions", str(tmp_path / "none.jsonl")]) == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["eval", "labels", str(labels), "--predictions", str(empty)]) == 1
    assert main(["eval", "labels", str(labels), "--iou", "0"]) == 1
    err = capsys.readouterr().err
    assert "label file not found" in err and "predictions file not found" in err
    assert "no record for 4 of the 4 labelled images" in err and "--iou must be" in err
    assert "Traceback" not in err


def test_python_api_on_a_label_file(labelled_folder, peer_model_path, capsys):
    from facelite import FaceDetector
    from facelite.evaluation.labels import evaluate_detector_on_labels

    det = FaceDetector(model=peer_model_path, score_threshold=0.02)
    r = evaluate_detector_on_labels(det, labelled_folder / "label.txt", show_progress=False, thresholds=(0.5,))
    assert r.ap == pytest.approx(1.0) and r.num_images == 3 and len(r.skipped) == 1
    assert [p["threshold"] for p in r.operating_points] == [0.5] and r.landmarks["faces"] == 2
    assert "broken.jpg" in capsys.readouterr().err


def test_prediction_cache_gives_back_exactly_what_was_detected(tmp_path):
    """A resumed or cached evaluation scores the very detections of an uncached one: values
    rounded to 0.01 px moved one tiny face across IoU 0.5 and the masked-face AP by 0.2 points."""
    from facelite.evaluation.labels import Detections, PredictionLog

    rng = np.random.default_rng(0)
    boxes = (rng.random((5, 4)) * 300).astype(np.float32)
    scores = np.array([0.99999994, 0.99999, 0.5000049, 0.12345678, 0.02], np.float32)
    landmarks = (rng.random((5, 5, 2)) * 300).astype(np.float32)
    log = PredictionLog(tmp_path / "c.jsonl", {"model": "x"})
    back = log.add("a.jpg", Detections(boxes, scores, landmarks))
    again = PredictionLog(tmp_path / "c.jsonl", {"model": "x"}).done["a.jpg"]  # reopened: resumed run
    for d in (back, again):
        np.testing.assert_array_equal(d.boxes, boxes)
        np.testing.assert_array_equal(d.scores, scores)
        np.testing.assert_array_equal(d.landmarks, landmarks)
