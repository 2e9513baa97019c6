import json
import threading
import time

import cv2
import numpy as np
import pytest

from facelite import Face, load_image
from facelite.cli import main
from facelite.paths import data_path
from facelite.tracking import IoUTracker
from facelite.video import (
    FpsMeter,
    FrameReader,
    FrameSource,
    SourceInfo,
    VideoProcessor,
    VideoSourceError,
    VideoWriter,
    open_source,
)

N_FRAMES = 12
SIZE = (320, 240)


def _frames(n=N_FRAMES):
    """The sample face, drifting right by 4 px per frame on a grey background."""
    face = cv2.resize(load_image(data_path("astronaut.jpg")), (200, 200), interpolation=cv2.INTER_AREA)
    for i in range(n):
        canvas = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        x = 30 + 4 * i
        canvas[20:220, x : x + 200] = face
        yield canvas


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, SIZE)
    assert w.isOpened()
    for f in _frames():
        w.write(f)
    w.release()
    return path


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(_frames(7)):
        cv2.imwrite(str(d / f"frame_{i + 1:03d}.png"), f)
    return d


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _count_frames(path):
    cap = cv2.VideoCapture(str(path))
    n, size = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n += 1
        size = (f.shape[1], f.shape[0])
    cap.release()
    return n, size


@pytest.mark.shared
def test_video_file_one_line_per_frame_with_stable_ids(clip, tmp_path, peer_model_path, capsys):
    out, log = tmp_path / "annotated.mp4", tmp_path / "frames.jsonl"
    rc = main(["video", str(clip), "--out", str(out), "--jsonl", str(log), "--model", str(peer_model_path),
               "--input-size", "320", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = _lines(log)
    assert [r["frame"] for r in lines] == list(range(N_FRAMES))
    assert [r["time"] for r in lines] == pytest.approx([i / 25 for i in range(N_FRAMES)], abs=1e-4)
    assert all(r["detected"] and "timings_ms" in r for r in lines)
    assert all(len(r["faces"]) == 1 for r in lines)
    assert {r["faces"][0]["track_id"] for r in lines} == {1}
    xs = [r["faces"][0]["box"][0] for r in lines]
    assert xs[-1] - xs[0] > 30  # the face moved 44 px and the (smoothed) box followed it
    assert _count_frames(out) == (N_FRAMES, SIZE)
    assert f"{N_FRAMES} frames in" in err and "FPS" in err and "1 track" in err and "Traceback" not in err


def test_image_sequence_every_n_and_no_track(sequence, tmp_path, random_model_path, capsys):
    log = tmp_path / "f.jsonl"
    rc = main(["video", str(sequence), "--every", "3", "--jsonl", str(log), "--model", str(random_model_path),
               "--input-size", "160", "--threads", "1", "--no-track"])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = _lines(log)
    assert [r["frame"] for r in lines] == list(range(7))
    assert [r["detected"] for r in lines] == [True, False, False, True, False, False, True]
    assert ["timings_ms" in r for r in lines] == [r["detected"] for r in lines]
    assert lines[1]["faces"] == lines[2]["faces"] == lines[0]["faces"]  # repeated between detections
    assert lines[0]["faces"] and "track_id" not in lines[0]["faces"][0]
    assert [r["time"] for r in lines] == pytest.approx([i / 30 for i in range(7)], abs=1e-4)  # image sequences: 30 fps
    assert "7 frames (3 detected, every 3)" in err


def test_patterns_max_frames_and_stdout(sequence, tmp_path, random_model_path, capsys):
    for source in (str(sequence / "frame_%03d.png"), str(sequence / "frame_*.png")):
        rc = main(["video", source, "--max-frames", "4", "--jsonl", "-", "--fps", "10", "--model",
                   str(random_model_path), "--input-size", "160", "--threads", "1"])
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        lines = [json.loads(line) for line in cap.out.splitlines()]
        assert [r["frame"] for r in lines] == [0, 1, 2, 3]
        assert [r["time"] for r in lines] == pytest.approx([0, 0.1, 0.2, 0.3])
        assert all("track_id" in f for r in lines for f in r["faces"])


def test_annotated_output_and_unreadable_frames(sequence, tmp_path, random_model_path, capsys):
    d = tmp_path / "frames"
    d.mkdir()
    for p in sorted(sequence.iterdir())[:4]:
        (d / p.name).write_bytes(p.read_bytes())
    (d / "frame_002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out.avi"
    rc = main(["video", str(d), "--out", str(out), "--model", str(random_model_path), "--input-size", "160",
               "--threads", "1", "--anonymize", "pixelate"])
    err = capsys.readouterr().err
    assert rc == 1 and "skipped frame 1" in err and "Traceback" not in err
    assert _count_frames(out) == (3, SIZE)


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing.mp4", "no such file or folder"),
        ("97", "cannot open camera 97"),
        ("empty_dir", "folder has no images"),
        ("fake.mp4", "not a video OpenCV can read"),
        ("zero.mp4", "empty file"),
        ("nothing_*.png", "no files match"),
        ("/dev/video97", "no such camera device"),
    ],
)
def test_bad_sources_give_clear_errors(tmp_path, monkeypatch, random_model_path, capsys, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "fake.mp4").write_text("this is not a video\n" * 100)
    (tmp_path / "zero.mp4").write_bytes(b"")
    rc = main(["video", source, "--model", str(random_model_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert message in err and "Traceback" not in err, err


def test_bad_options_give_clear_errors(clip, tmp_path, random_model_path, capsys, monkeypatch):
    assert main(["video", str(clip), "--out", str(tmp_path / "x.xyz"), "--model", str(random_model_path)]) == 1
    assert "unsupported video extension '.xyz'" in capsys.readouterr().err
    assert main(["video", str(clip), "--fps", "0", "--model", str(random_model_path)]) == 1
    assert "--fps" in capsys.readouterr().err
    for bad in (["--every", "0"], ["--max-frames", "x"]):
        with pytest.raises(SystemExit) as exc:
            main(["video", str(clip), *bad])
        assert exc.value.code == 2
        assert "expected an integer >= 1" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")
    for opt in ("--jsonl", "--out"):
        assert main(["video", str(clip), opt, str(tmp_path / "a_file" / "x.avi"), "--model", str(random_model_path)]) == 1
        err = capsys.readouterr().err
        assert "facelite video: error:" in err and "a_file" in err and "Traceback" not in err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["video", str(clip), "--show", "--model", str(random_model_path)]) == 1
    err = capsys.readouterr().err
    assert "--show needs" in err and "--out" in err


def test_ctrl_c_finishes_the_output_video(clip, tmp_path, random_model_path, capsys, monkeypatch):
    from facelite.detector import FaceDetector

    real = FaceDetector.detect
    calls = {"n": 0}

    def flaky(self, image):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(self, image)

    monkeypatch.setattr(FaceDetector, "detect", flaky)
    out, log = tmp_path / "cut.mp4", tmp_path / "cut.jsonl"
    rc = main(["video", str(clip), "--out", str(out), "--jsonl", str(log), "--model", str(random_model_path),
               "--input-size", "160", "--threads", "1"])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted" in err and "5 frames" in err
    assert _count_frames(out) == (5, SIZE) and len(_lines(log)) == 5


# ------------------------------------------------------------------ library


class SlowSource(FrameSource):
    """n frames, each taking ``delay`` seconds to 'capture'."""

    def __init__(self, n, delay=0.0, live=False):
        self.n, self.delay, self.i = n, delay, 0
        self.info = SourceInfo("slow", "camera" if live else "file", live, 30.0, None if live else n)
        self.released = False

    def read(self):
        if self.i >= self.n:
            return None
        time.sleep(self.delay)
        self.i += 1
        return np.full((8, 8, 3), self.i - 1, np.uint8), (self.i - 1) / 30

    def release(self):
        self.released = True


class SlowDetector:
    """Finds one fixed face; each call takes ``delay`` seconds."""

    max_image_pixels = None

    def __init__(self, delay=0.0):
        self.delay = delay
        self.last_timings = {}

    def detect(self, image):
        time.sleep(self.delay)
        self.last_timings = {"total_ms": self.delay * 1000}
        return [Face((1.0, 1.0, 6.0, 6.0), 0.9, np.zeros((5, 2), np.float32))]


def test_capture_overlaps_with_detection():
    n, delay = 10, 0.03
    t0 = time.perf_counter()
    with VideoProcessor(SlowDetector(delay), SlowSource(n, delay), tracker=IoUTracker()) as proc:
        frames = list(proc)
    wall = time.perf_counter() - t0
    assert [f.index for f in frames] == list(range(n))
    assert [int(f.image[0, 0, 0]) for f in frames] == list(range(n))
    assert all(f.faces[0].track_id == 1 for f in frames)
    assert wall < 0.8 * (2 * n * delay), wall  # serial would take the sum of both
    assert proc.reader.dropped == 0 and proc.source.released


def test_bounded_queue_and_dropping_for_live_sources():
    # a file: the reader runs at most queue_size frames ahead of a stalled consumer, and drops nothing
    reader = FrameReader(SlowSource(100), queue_size=4)
    deadline = time.perf_counter() + 10
    while reader.frames_read < 4 and time.perf_counter() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert 4 <= reader.frames_read <= 5
    assert [f.index for f in reader] == list(range(100))
    reader.close()
    # a live source keeps the newest frames when the consumer falls behind
    src = SlowSource(60, delay=0.002, live=True)
    with VideoProcessor(SlowDetector(0.02), src, queue_size=2) as proc:
        got = [f.index for f in proc]
    assert proc.reader.dropped > 0 and got[-1] == 59 and len(got) + proc.reader.dropped == 60
    assert got == sorted(got)


def test_every_n_library_and_errors():
    with VideoProcessor(SlowDetector(), SlowSource(7), every=3) as proc:
        frames = list(proc)
    assert [f.detected for f in frames] == [True, False, False, True, False, False, True]
    assert proc.detections == 3 and frames[1].timings is None
    with pytest.raises(ValueError, match="every"):
        VideoProcessor(SlowDetector(), SlowSource(1), every=0)
    with pytest.raises(VideoSourceError, match="no such file"):
        open_source("does/not/exist.mp4")
    with pytest.raises(VideoSourceError, match="fps"):
        open_source(0, fps=-1)

    class Broken(SlowSource):
        def read(self):
            raise OSError("device unplugged")

    with pytest.raises(VideoSourceError, match="device unplugged"):
        list(VideoProcessor(SlowDetector(), Broken(3)))


def test_writer_and_fps_meter(tmp_path):
    with pytest.raises(VideoSourceError, match="unsupported video extension"):
        VideoWriter(tmp_path / "x.gif", 25)
    path = tmp_path / "sub" / "w.mp4"
    with VideoWriter(path, 25) as w:
        w.write(np.zeros((48, 64, 3), np.uint8))
        w.write(np.zeros((96, 128, 3), np.uint8))  # another size: resized to the first
    assert w.frames_written == 2 and _count_frames(path) == (2, (64, 48))
    m = FpsMeter(window=1.0)
    assert m.fps == 0.0
    for i in range(31):
        m.tick(i / 30)
    assert m.fps == pytest.approx(30.0)


def test_single_image_is_a_one_frame_video(random_model_path, tmp_path, capsys):
    rc = main(["video", str(data_path("astronaut.jpg")), "--jsonl", str(tmp_path / "x.jsonl"), "--model",
               str(random_model_path), "--input-size", "160", "--threads", "1"])
    assert rc == 0 and len(_lines(tmp_path / "x.jsonl")) == 1
    assert threading.active_count() < 10  # reader and writer threads are gone
