import json
import shutil

import numpy as np
import pytest

from facelite import Face
from facelite.cli import main
from facelite.coco import CATEGORY, CocoBuilder, jsonl_to_coco, read_jsonl, records_to_coco
from facelite.paths import data_path


def test_builder_layout():
    lm = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], np.float32)
    b = CocoBuilder()
    assert b.add_image("a.jpg", 640, 480, [Face((10.0, 20.0, 50.0, 80.0), 0.987654, lm)]) == 1
    assert b.add_image("b.jpg", 100, 100, []) == 2
    assert b.add_record({"path": "c.jpg", "width": 10, "height": 20, "faces": [Face((1.0, 1.0, 2.0, 3.0), 0.5, lm).to_dict()] * 2}) == 3
    d = b.to_dict()
    assert d["categories"] == [CATEGORY] and CATEGORY["keypoints"][0] == "left_eye" and len(CATEGORY["keypoints"]) == 5
    assert d["images"][0] == {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}
    a = d["annotations"][0]
    assert a["bbox"] == [10.0, 20.0, 40.0, 60.0] and a["area"] == 2400.0 and a["category_id"] == 1
    assert a["score"] == pytest.approx(0.98765) and a["iscrowd"] == 0 and a["image_id"] == 1
    assert a["keypoints"] == [1, 2, 2, 3, 4, 2, 5, 6, 2, 7, 8, 2, 9, 10, 2] and a["num_keypoints"] == 5
    assert [x["id"] for x in d["annotations"]] == [1, 2, 3] and [x["image_id"] for x in d["annotations"]] == [1, 3, 3]
    json.dumps(d)  # serialisable


def test_read_jsonl_tolerates_a_cut_last_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "b"')
    assert list(read_jsonl(p)) == [{"a": 1}, {"a": 2}]
    p.write_text('{"a": 1}\n{oops}\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        list(read_jsonl(p))


def test_detect_coco_matches_its_jsonl(tmp_path, random_model_path):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("one.jpg", "two.jpg"):
        shutil.copy(data_path("astronaut.jpg"), d / name)
    log, coco = tmp_path / "f.jsonl", tmp_path / "f.coco.json"
    assert main(["detect", str(d), "--jsonl", str(log), "--coco", str(coco), "--model", str(random_model_path),
                 "--threads", "1", "-q"]) == 0
    got = json.loads(coco.read_text())
    assert got == records_to_coco(read_jsonl(log))
    assert [im["file_name"] for im in got["images"]] == [str(d / "one.jpg"), str(d / "two.jpg")]
    assert len(got["annotations"]) == sum(len(r["faces"]) for r in read_jsonl(log)) > 0
    assert json.loads(jsonl_to_coco(log, tmp_path / "again.json").read_text()) == got
