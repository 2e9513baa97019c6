"""``facelite detect`` on collections: parallel decoding, progress, resumption, COCO."""

import json

import cv2
import pytest

from facelite.cli import main
from facelite.coco import read_jsonl
from facelite.detector import FaceDetector
from facelite.imageio import load_image
from facelite.paths import data_path


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Two input folders, 8 images of several sizes (two with the same relative name), one corrupt file."""
    root = tmp_path_factory.mktemp("collection")
    image = load_image(data_path("astronaut.jpg"))
    variants = [image, image[:, ::-1], image[::2, ::2], image[50:400, 30:500], cv2.resize(image, (300, 200))]
    a, b = root / "a", root / "b"
    (a / "sub").mkdir(parents=True)
    (b / "sub").mkdir(parents=True)
    for i, v in enumerate(variants):
        cv2.imwrite(str(a / f"img{i}.jpg"), v)
    cv2.imwrite(str(a / "sub" / "same.png"), variants[2])
    cv2.imwrite(str(b / "sub" / "same.png"), variants[3])  # same relative name: out names must not collide
    cv2.imwrite(str(b / "z.webp"), variants[4])
    (a / "broken.jpg").write_bytes(data_path("astronaut.jpg").read_bytes()[:3000])
    return a, b


def _run(args, model, capsys):
    rc = main(["detect", *args, "--model", str(model), "--threads", "1", "--input-size", "160"])
    return rc, capsys.readouterr()


def _normalised(records, out_dir):
    out = []
    for r in records:
        r = dict(r)
        r.pop("timings_ms")
        r["annotated"] = r["annotated"].replace(str(out_dir), "<out>")
        out.append(r)
    return out


def test_interrupted_and_resumed_equals_uninterrupted(collection, tmp_path, random_model_path, capsys, monkeypatch):
    a, b = collection

    def outputs(name):
        d = tmp_path / name
        return d, ["--out", str(d / "img"), "--jsonl", str(d / "f.jsonl"), "--coco", str(d / "f.coco.json"),
                   "--json", str(d / "f.json")]

    ref, ref_args = outputs("ref")
    rc, cap = _run([str(a), str(b), *ref_args, "--workers", "2"], random_model_path, capsys)
    assert rc == 1 and "skipped" in cap.err and "broken.jpg" in cap.err  # the corrupt file
    ref_records = list(read_jsonl(ref / "f.jsonl"))
    assert len(ref_records) == 8

    # the same run, interrupted (Ctrl-C) after 3 images ...
    run, run_args = outputs("run")
    real_detect = FaceDetector.detect
    calls = {"n": 0}

    def flaky(self, image):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_detect(self, image)

    monkeypatch.setattr(FaceDetector, "detect", flaky)
    rc, cap = _run([str(a), str(b), *run_args, "--workers", "0"], random_model_path, capsys)
    assert rc == 130 and "interrupted" in cap.err
    monkeypatch.setattr(FaceDetector, "detect", real_detect)
    assert len(list(read_jsonl(run / "f.jsonl"))) == 3
    assert not (run / "f.json").exists() and not (run / "f.coco.json").exists()
    with open(run / "f.jsonl", "a") as f:  # ... and killed while writing the 4th line
        f.write('{"path": "' + str(a / "img3.jpg") + '", "wid')

    # ... and resumed
    calls["n"] = 0
    monkeypatch.setattr(FaceDetector, "detect", lambda self, image: (calls.__setitem__("n", calls["n"] + 1),
                                                                     real_detect(self, image))[1])
    rc, cap = _run([str(a), str(b), *run_args, "--workers", "2", "--resume"], random_model_path, capsys)
    assert rc == 1  # the corrupt file is still corrupt
    assert calls["n"] == 5  # only the images not done before went through the detector
    assert "removed an unfinished last line" in cap.err and "3 of 9 images already in" in cap.err
    assert "(3 done before)" in cap.err

    run_records = list(read_jsonl(run / "f.jsonl"))
    assert (run / "f.jsonl").read_text().count("\n") == 8  # no torn line left behind
    assert _normalised(run_records, run / "img") == _normalised(ref_records, ref / "img")
    assert json.loads((run / "f.coco.json").read_text()) == json.loads((ref / "f.coco.json").read_text())
    assert _normalised(json.loads((run / "f.json").read_text()), run / "img") == _normalised(
        json.loads((ref / "f.json").read_text()), ref / "img"
    )
    ref_files = sorted(p.relative_to(ref / "img") for p in (ref / "img").rglob("*") if p.is_file())
    run_files = sorted(p.relative_to(run / "img") for p in (run / "img").rglob("*") if p.is_file())
    assert ref_files == run_files and len(ref_files) == 8
    same_bytes = [(ref / "img" / p).read_bytes() == (run / "img" / p).read_bytes() for p in ref_files]
    assert all(same_bytes)
    names = {str(p) for p in ref_files}
    assert {"sub/same.png", "sub/same-2.png"} <= names

    # resuming a finished run does nothing and succeeds
    calls["n"] = 0
    rc, cap = _run([str(b), *run_args, "--resume"], random_model_path, capsys)
    assert rc == 0 and calls["n"] == 0


def test_progress_workers_and_verbosity(collection, tmp_path, random_model_path, capsys):
    a, _ = collection
    rc, cap = _run([str(a), "--jsonl", str(tmp_path / "w2.jsonl"), "--workers", "2"], random_model_path, capsys)
    assert rc == 1
    assert "ETA" in cap.err and "img/s" in cap.err and "7/7 (100%)" in cap.err  # the progress line
    assert cap.out == ""  # several images: no line per image unless -v
    rc, cap = _run([str(a), "--jsonl", str(tmp_path / "w0.jsonl"), "--workers", "0", "-q", "-v"], random_model_path,
                   capsys)
    assert "ETA" not in cap.err and cap.out.count("face") == 6
    def strip(p):
        return [{k: v for k, v in r.items() if k != "timings_ms"} for r in read_jsonl(p)]

    assert strip(tmp_path / "w2.jsonl") == strip(tmp_path / "w0.jsonl")  # parallel decoding changes nothing


def test_resume_needs_a_jsonl_file(collection, random_model_path, capsys):
    a, _ = collection
    for extra in ([], ["--jsonl", "-"]):
        rc, cap = _run([str(a), "--resume", *extra], random_model_path, capsys)
        assert rc == 1 and "--resume needs --jsonl FILE" in cap.err
    (a.parent / "a_file").write_text("x")
    rc, cap = _run([str(a), "--jsonl", str(a.parent / "a_file" / "f.jsonl")], random_model_path, capsys)
    assert rc == 1 and "facelite detect: error:" in cap.err and "a_file" in cap.err
    with pytest.raises(SystemExit):
        main(["detect", str(a), "--workers", "-1"])
    assert "--workers" in capsys.readouterr().err


def test_resume_cuts_only_an_unfinished_last_line(tmp_path, capsys):
    from facelite.commands.detect import _done_paths

    p = tmp_path / "f.jsonl"
    assert _done_paths(p, "detect") == set()  # no file yet
    good = '{"path": "a.jpg", "faces": []}\n{"path": "b.jpg", "faces": []}\n'
    p.write_text(good)
    assert _done_paths(p, "detect") == {"a.jpg", "b.jpg"} and p.read_text() == good
    p.write_text(good + '{"path": "c.jpg", "faces": [' + "0, " * 40000)  # a torn line longer than a read block
    assert _done_paths(p, "detect") == {"a.jpg", "b.jpg"} and p.read_text() == good
    p.write_text('{"path": "c.jpg"}')  # one line, never finished
    assert _done_paths(p, "detect") == set() and p.read_text() == ""
    assert "removed an unfinished last line" in capsys.readouterr().err
