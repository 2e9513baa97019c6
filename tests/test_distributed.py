"""Ray Data integration (``facelite.distributed``, ``facelite detect --ray``) on a local Ray
instance of 2 CPUs, started once for the session and shut down at its end."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import facelite
from facelite import FaceDetector, data_path, load_image
from facelite.cli import main
from facelite.coco import read_jsonl
from facelite.imageio import ImageLoadError

ray = pytest.importorskip("ray", reason="needs the ray extra (pip install 'facelite[ray]')")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance (2 CPUs) whose workers import this facelite."""
    src = str(Path(facelite.__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The sample photo (one face), a mirrored and a half-size copy, a face-less grey ramp, a
    truncated JPEG and a text file named .png."""
    root = tmp_path_factory.mktemp("photos")
    image = load_image(data_path("astronaut.jpg"))
    (root / "sub").mkdir()
    shutil.copy(data_path("astronaut.jpg"), root / "astronaut.jpg")
    cv2.imwrite(str(root / "flipped.png"), image[:, ::-1])
    cv2.imwrite(str(root / "sub" / "small.jpg"), image[::2, ::2])
    ramp = np.repeat(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], 3, axis=2)
    cv2.imwrite(str(root / "sub" / "no_face.webp"), np.repeat(ramp, 200, axis=0))  # a grey ramp: no face
    (root / "broken.jpg").write_bytes(data_path("astronaut.jpg").read_bytes()[:3000])
    (root / "sub" / "notes.png").write_text("not an image")
    return root


def _records(path: Path, out_dir: Path) -> list[dict]:
    records = []
    for r in read_jsonl(path):
        r = dict(r)
        r.pop("timings_ms")
        r["annotated"] = r["annotated"].replace(str(out_dir), "<out>")
        records.append(r)
    return records


def _skipped(err: str) -> list[str]:
    return sorted(line for line in err.splitlines() if ": skipped " in line)


def test_ray_gives_the_records_of_the_plain_path(ray_local, folder, tmp_path, capsys):
    common = [str(folder), "--input-size", "320", "--threads", "1", "-q"]
    plain, on_ray = tmp_path / "plain", tmp_path / "ray"
    rc_plain = main(["detect", *common, "--jsonl", str(plain / "f.jsonl"), "--out", str(plain / "img"),
                     "--coco", str(plain / "coco.json")])
    err_plain = capsys.readouterr().err
    rc_ray = main(["detect", *common, "--ray", "--ray-actors", "2", "--jsonl", str(on_ray / "f.jsonl"),
                   "--out", str(on_ray / "img"), "--coco", str(on_ray / "coco.json")])
    err_ray = capsys.readouterr().err
    assert rc_plain == rc_ray == 1  # the two unreadable files
    assert "Ray, 2 actors x 1 thread" in err_ray
    assert _skipped(err_ray) == _skipped(err_plain) and len(_skipped(err_ray)) == 2
    assert "broken.jpg: truncated JPEG" in err_ray

    expected = _records(plain / "f.jsonl", plain / "img")
    assert _records(on_ray / "f.jsonl", on_ray / "img") == expected
    assert [Path(r["path"]).name for r in expected] == ["astronaut.jpg", "flipped.png", "no_face.webp", "small.jpg"]
    faces = {Path(r["path"]).name: r["faces"] for r in expected}
    assert len(faces["astronaut.jpg"]) == 1 and faces["astronaut.jpg"][0]["score"] > 0.9
    assert len(faces["small.jpg"]) == 1 and faces["no_face.webp"] == []
    x1, _, x2, _ = faces["astronaut.jpg"][0]["box"]  # mirrored in the flipped copy
    fx1, _, fx2, _ = faces["flipped.png"][0]["box"]
    assert abs((512 - x2) - fx1) < 4 and abs((512 - x1) - fx2) < 4
    for name in ("astronaut.jpg", "flipped.png", "sub/small.jpg", "sub/no_face.webp"):  # the same pictures
        assert (on_ray / "img" / name).read_bytes() == (plain / "img" / name).read_bytes()
    coco_plain = json.loads((plain / "coco.json").read_text())
    coco_ray = json.loads((on_ray / "coco.json").read_text())
    assert coco_ray["annotations"] == coco_plain["annotations"] and len(coco_ray["annotations"]) == 3


def test_ray_resumes_what_the_jsonl_holds(ray_local, folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(folder.parent)  # a relative path: the actors, in Ray's working directory, still find it
    common = [folder.name, "--input-size", "320", "--threads", "1", "-q", "--out", str(tmp_path / "img")]
    jsonl = tmp_path / "f.jsonl"
    assert main(["detect", *common, "--jsonl", str(jsonl)]) == 1  # the plain path, interrupted after 2
    capsys.readouterr()
    full = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text("".join(full[:2]) + full[2][:20])  # ... while writing the third line
    rc = main(["detect", *common, "--jsonl", str(jsonl), "--ray", "--resume"])
    err = capsys.readouterr().err
    assert rc == 1 and "resuming: 2 of 6 images" in err and "removed an unfinished last line" in err
    assert f"skipped {Path(folder.name) / 'broken.jpg'}: truncated JPEG" in err
    assert "2 images (2 done before)" in err
    assert _records(jsonl, tmp_path / "img") == _records_of(full, tmp_path / "img")


def test_ray_reads_urls_through_pyarrow(ray_local, folder, tmp_path, capsys):
    common = ["--input-size", "320", "--threads", "1", "-q"]
    assert main(["detect", str(folder), *common, "--jsonl", str(tmp_path / "plain.jsonl")]) == 1
    capsys.readouterr()
    url = f"file://{folder}"  # what s3:// and gs:// go through too (pyarrow.fs), here on the local disk
    rc = main(["detect", url, *common, "--ray", "--jsonl", str(tmp_path / "url.jsonl"), "--out", str(tmp_path / "img")])
    err = capsys.readouterr().err
    assert rc == 1 and f"skipped {url}/broken.jpg: truncated JPEG" in err
    plain = [dict(r, path="file://" + r["path"]) for r in read_jsonl(tmp_path / "plain.jsonl")]
    on_ray = list(read_jsonl(tmp_path / "url.jsonl"))
    for r in plain + on_ray:
        r.pop("timings_ms")
    assert [r.pop("annotated") for r in on_ray] == [str(tmp_path / "img" / n) for n in
                                                     ("astronaut.jpg", "flipped.png", "sub/no_face.webp", "sub/small.jpg")]
    assert on_ray == plain


def _records_of(lines: list[str], out_dir: Path) -> list[dict]:
    out = []
    for line in lines:
        r = json.loads(line)
        r.pop("timings_ms")
        r["annotated"] = r["annotated"].replace(str(out_dir), "<out>")
        out.append(r)
    return out


def test_an_actor_loads_the_model_once(ray_local, tmp_path):
    from facelite.distributed import FaceDetectorUDF, map_detector

    log = tmp_path / "loads.txt"

    class Counting(FaceDetectorUDF):  # defined here: Ray ships it to the actors by value
        def _load_detector(self, detector, options):
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            return super()._load_detector(detector, options)

    paths = [str(data_path("astronaut.jpg"))] * 6
    ds = ray_local.data.from_items([{"path": p} for p in paths])
    out = map_detector(ds, Counting, {"input_size": 320, "threads": 1}, concurrency=1, threads=1, batch_size=1)
    rows = out.take_all()
    assert len(rows) == 6 and all(len(r["scores"]) == 1 and r["error"] == "" for r in rows)
    assert len(log.read_text().split()) == 1  # 6 batches, one actor, one model
    log.unlink()
    out = map_detector(ds, Counting, {"input_size": 320, "threads": 1}, concurrency=2, threads=1, batch_size=1)
    assert len(out.take_all()) == 6
    loads = log.read_text().split()
    assert 1 <= len(loads) <= 2 and len(set(loads)) == len(loads)  # at most one per actor process


def test_detect_dataset_adds_the_faces_as_columns(ray_local, folder):
    from facelite.distributed import detect_dataset

    ds = ray_local.data.read_binary_files(str(folder), include_paths=True)
    rows = {Path(r["path"]).name: r for r in detect_dataset(ds, input_size=320).take_all()}
    assert set(rows) == {"astronaut.jpg", "flipped.png", "small.jpg", "no_face.webp", "broken.jpg", "notes.png"}
    detector = FaceDetector(input_size=320, threads=1)
    for name in ("astronaut.jpg", "flipped.png"):
        r = rows[name]
        boxes, scores, landmarks = detector.detect_arrays(folder / name)
        assert r["boxes"].shape == (1, 4) and r["landmarks"].shape == (1, 5, 2)
        assert (r["boxes"] == boxes).all() and (r["scores"] == scores).all() and (r["landmarks"] == landmarks).all()
        assert (r["width"], r["height"], r["error"]) == (512, 512, "")
        assert (r["model"], r["precision"], r["checksum"]) == ("mobilenetv2-0.35", "float32",
                                                                detector.model_info.sha256)
        assert "bytes" not in r
    assert len(rows["no_face.webp"]["scores"]) == 0
    broken = rows["broken.jpg"]
    with pytest.raises(ImageLoadError) as exc:
        load_image(folder / "broken.jpg")
    assert broken["error"] == str(exc.value).replace(str(folder / "broken.jpg"), broken["path"])
    assert broken["boxes"].shape == (0, 4) and broken["width"] == 0


def test_ray_without_the_extra_is_one_line_and_exit_2(folder, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["detect", str(folder), "--ray", "--jsonl", "-"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "facelite detect: --ray needs Ray Data, which is not installed: pip install 'facelite[ray]'"]


def test_throughput_benchmark_runs(ray_local, folder, tmp_path):
    from benchmarks import ray_throughput

    rows = ray_throughput.run(folder, limit=4, actors=(1,), workers=1, input_size=160, work_dir=tmp_path,
                              plain_threads=(1,))
    assert [r["mode"] for r in rows] == ["plain", "ray"]
    assert "| --ray, 1 actor | 1 per actor |" in ray_throughput.table(rows)
    assert all(r["images"] == 3 and r["images_per_s"] > 0 and r["same_records"] for r in rows)  # 4th: broken.jpg
