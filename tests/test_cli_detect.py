import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facelite.cli import main
from facelite.models import shipped_path
from facelite.paths import data_path


@pytest.fixture
def folder(tmp_path):
    """One good image (in a sub-folder) and one corrupt JPEG, plus a non-image file that is ignored."""
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    good = d / "sub" / "good.jpg"
    shutil.copy(data_path("astronaut.jpg"), good)
    (d / "corrupt.jpg").write_bytes(data_path("astronaut.jpg").read_bytes()[:5000])
    (d / "notes.txt").write_text("not an image")
    return d


def test_folder_with_a_corrupt_image(folder, tmp_path, random_model_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "detect", str(folder), "--model", str(random_model_path), "--score-threshold", "0.3",
            "--threads", "1", "--out", str(out), "--json", str(out / "faces.json"), "--jsonl", str(out / "faces.jsonl"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert f"facelite detect: skipped {folder / 'corrupt.jpg'}: truncated JPEG" in captured.err
    assert "1 image" in captured.err and "1 skipped" in captured.err
    records = json.loads((out / "faces.json").read_text())
    assert len(records) == 1
    r = records[0]
    assert r["path"] == str(folder / "sub" / "good.jpg")
    assert (r["width"], r["height"]) == (512, 512)
    assert r["input_size"] == 640
    assert r["model"]["name"] == "mobilenetv2-0.35" and len(r["model"]["sha256"]) == 12
    assert set(r["timings_ms"]) >= {"preprocess_ms", "network_ms", "postprocess_ms"}
    assert r["faces"] and set(r["faces"][0]) >= {"box", "score", "landmarks"}
    assert len(r["faces"][0]["landmarks"]) == 5
    lines = (out / "faces.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    assert (out / "sub" / "good.jpg").is_file()  # annotated copy, same relative path
    assert r["annotated"] == str(out / "sub" / "good.jpg")


def test_all_good_exit_zero_and_jsonl_appends(folder, tmp_path, random_model_path, capsys):
    good = folder / "sub" / "good.jpg"
    log = tmp_path / "log.jsonl"
    for _ in range(2):
        assert main(["detect", str(good), "--model", str(random_model_path), "--jsonl", str(log)]) == 0
    assert len(log.read_text().splitlines()) == 2
    assert f"{good}: " in capsys.readouterr().out


def test_json_to_stdout(folder, random_model_path, capsys):
    rc = main(["detect", str(folder / "sub"), "--model", str(random_model_path), "--json", "-"])
    assert rc == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 1


def test_min_face_size_option_reaches_the_detector(random_model_path, capsys):
    def sides(*extra):
        assert main(["detect", str(data_path("astronaut.jpg")), "--model", str(random_model_path),
                     "--score-threshold", "0", "--json", "-", *extra]) == 0
        boxes = [f["box"] for f in json.loads(capsys.readouterr().out)[0]["faces"]]
        return [min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes]

    every = sides()  # an untrained network at threshold 0: boxes of a few sizes (anchor sizes)
    cut = (min(every) + max(every)) / 2
    kept = sides("--min-face-size", str(cut))
    assert kept and min(kept) >= cut and len(kept) < len(every)


def test_no_landmark_voting_option_reaches_the_detector(capsys):
    if not shipped_path("mobilenetv2-0.35").is_file():
        pytest.skip("mobilenetv2-0.35 is not shipped in this installation")

    def faces(*extra):
        assert main(["detect", str(data_path("astronaut.jpg")), "--threads", "1", "--json", "-", *extra]) == 0
        return json.loads(capsys.readouterr().out)[0]["faces"]

    voted, plain = faces(), faces("--no-landmark-voting")
    assert len(voted) == len(plain) > 0
    assert [f["box"] for f in voted] == [f["box"] for f in plain]
    assert [f["landmarks"] for f in voted] != [f["landmarks"] for f in plain]


def test_errors_and_help(tmp_path, random_model_path, capsys):
    assert main([]) == 2
    assert "usage: facelite" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["detect", "--help"])
    assert exc.value.code == 0
    assert "--jsonl" in capsys.readouterr().out
    assert main(["detect", str(tmp_path), "--model", str(random_model_path)]) == 1
    assert "no images found" in capsys.readouterr().err
    assert main(["detect", str(tmp_path), "--model", "mobilenetv2-9"]) == 1
    assert "unknown model" in capsys.readouterr().err
    assert main(["detect", str(tmp_path), "--model", str(random_model_path), "--score-threshold", "2"]) == 1
    assert "score_threshold" in capsys.readouterr().err
    assert main(["detect", str(tmp_path), "--model", str(random_model_path), "--min-face-size", "-3"]) == 1
    assert "min_face_size" in capsys.readouterr().err


def test_missing_shipped_model_says_so(capsys, tmp_path, monkeypatch):
    from facelite import models

    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)  # an installation without the model files
    assert main(["detect", str(data_path("astronaut.jpg")), "--model", "mobilenetv2-1.0"]) == 1
    assert "not in this installation" in capsys.readouterr().err


def test_console_script(tmp_path, random_model_path):
    script = shutil.which("facelite", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the facelite console script is not installed next to this Python (pip install the project)")
    proc = subprocess.run(
        [script, "detect", str(data_path("astronaut.jpg")), "--model", str(random_model_path), "--threads", "1",
         "--jsonl", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert Path(record["path"]).name == "astronaut.jpg"
    assert "facelite detect: 1 image" in proc.stderr
    help_proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert help_proc.returncode == 0 and "detect" in help_proc.stdout



@pytest.mark.parametrize("command", [["models"], ["detect", "{image}", "--model", "{model}", "--json", "-"]])
def test_a_reader_that_stops_early_is_not_a_crash(command, random_model_path, monkeypatch, capsys):
    read, write = os.pipe()
    os.close(read)  # the reader is gone, as after `facelite ... | head -1`
    out = os.fdopen(write, "w")  # block-buffered, like stdout into a pipe
    monkeypatch.setattr(sys, "stdout", out)
    argv = [a.format(image=data_path("astronaut.jpg"), model=random_model_path) for a in command]
    assert main(argv) == 141  # 128 + SIGPIPE, as a shell reports it
    out.close()  # stdout now leads to /dev/null: nothing left to fail at exit
    assert "error" not in capsys.readouterr().err


def test_an_image_from_standard_input(tmp_path):
    """``-`` reads one image from standard input: the same faces as from the file; bad data is
    reported and skipped like a bad file."""
    exe = [sys.executable, "-m", "facelite.cli"]
    jpeg = data_path("astronaut.jpg").read_bytes()
    from_file = json.loads(subprocess.run([*exe, "detect", str(data_path("astronaut.jpg")), "--json", "-", "--threads", "1"],
                                          capture_output=True, check=True).stdout)[0]
    done = subprocess.run([*exe, "detect", "-", "--json", "-", "--out", str(tmp_path), "--threads", "1"],
                          input=jpeg, capture_output=True, check=True)
    record = json.loads(done.stdout)[0]
    assert record["path"] == "-" and record["faces"] == from_file["faces"] and len(record["faces"]) == 1
    assert (tmp_path / "stdin.png").is_file()
    cut = subprocess.run([*exe, "detect", "-", "--threads", "1"], input=jpeg[:3000], capture_output=True, text=False)
    assert cut.returncode == 1 and b"truncated JPEG" in cut.stderr and b"Traceback" not in cut.stderr
    twice = subprocess.run([*exe, "detect", "-", "-"], input=b"", capture_output=True)
    assert twice.returncode == 1 and b"standard input (-) can be given only once" in twice.stderr
