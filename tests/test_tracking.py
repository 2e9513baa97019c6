import cv2
import numpy as np
import pytest

from facelite import Face, FaceDetector, load_image
from facelite.paths import data_path
from facelite.tracking import IoUTracker, OneEuroFilter, TrackedFace, landmark_jitter

LM = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])


def face_at(x: float, y: float, size: float = 100.0, score: float = 0.9) -> Face:
    return Face(box=(x, y, x + size, y + size), score=score, landmarks=(LM * size + [x, y]).astype(np.float32))


def test_one_euro_still_noisy_and_moving():
    rng = np.random.default_rng(0)
    # a constant signal passes unchanged
    f = OneEuroFilter()
    assert all(np.allclose(f([5.0, -2.0], i / 30, 100), [5.0, -2.0]) for i in range(10))
    # a still signal with 1 px of noise (face size 100): frame-to-frame jitter drops several-fold
    f = OneEuroFilter()
    xs = 100 + rng.normal(0, 1, 300)
    ys = np.array([f([x], i / 30, 100)[0] for i, x in enumerate(xs)])
    assert np.std(np.diff(ys[30:])) < 0.3 * np.std(np.diff(xs[30:]))
    # moving at one face size per second it follows with under a frame of lag
    f = OneEuroFilter()
    xs = np.arange(120) * 100 / 30
    ys = np.array([f([x], i / 30, 100)[0] for i, x in enumerate(xs)])
    assert 0 < np.mean(xs[60:] - ys[60:]) < 100 / 30
    # the speed is measured in face sizes: a 10x bigger face moving 10x faster lags the same fraction
    f = OneEuroFilter()
    ys10 = np.array([f([x * 10], i / 30, 1000)[0] for i, x in enumerate(xs)])
    np.testing.assert_allclose(ys10, ys * 10, rtol=1e-9)


def test_one_euro_edge_cases():
    f = OneEuroFilter()
    assert f.value is None
    f([1.0], 0.0)
    f([2.0], 0.1)
    before = f.value
    np.testing.assert_array_equal(f([50.0], 0.1), before)  # a repeated timestamp changes nothing
    with pytest.raises(ValueError, match="shape"):
        f([1.0, 2.0], 0.2)
    f.reset()
    np.testing.assert_array_equal(f([7.0], 5.0), [7.0])
    for kwargs in ({"min_cutoff": 0}, {"d_cutoff": -1}, {"beta": -0.1}):
        with pytest.raises(ValueError):
            OneEuroFilter(**kwargs)


def test_ids_are_stable_across_frames_and_gaps():
    tr = IoUTracker(max_missed=3, smooth=False)
    ids = []
    for i in range(10):
        # two faces moving in opposite directions; the detector's order swaps every frame
        a, b = face_at(100 + 4 * i, 100), face_at(400 - 4 * i, 120, size=80)
        faces = [b, a] if i % 2 else [a, b]
        out = tr.update(faces, i / 30)
        assert [o.box for o in out] == [f.box for f in faces]  # unsmoothed, in the given order
        ids.append({o.box[1]: o.track_id for o in out})
    assert all(d == {100.0: 1, 120.0: 2} for d in ids)
    # face 1 is missed for 3 frames and comes back: same id; face 2 is gone for longer: new id
    for i in range(10, 13):
        tr.update([], i / 30)
    (back,) = tr.update([face_at(140, 100)], 13 / 30)
    assert back.track_id == 1
    for i in range(14, 19):
        tr.update([face_at(140, 100)], i / 30)
    out = tr.update([face_at(140, 100), face_at(364, 120, size=80)], 19 / 30)
    assert [o.track_id for o in out] == [1, 3] and tr.ids_issued == 3
    assert [t.face.track_id for t in tr.tracks] == [1, 3]


def test_min_hits_smoothing_and_to_dict():
    tr = IoUTracker(min_hits=2)
    assert tr.update([face_at(10, 10)], 0.0) == []  # not confirmed yet
    (f,) = tr.update([face_at(12, 10)], 1 / 30)
    assert isinstance(f, TrackedFace) and f.track_id == 1
    assert 10 < f.box[0] < 12  # smoothed: between the two detections
    assert tr.current() == [f]
    d = f.to_dict()
    assert d["track_id"] == 1 and set(d) >= {"box", "score", "landmarks"}
    # without a time, updates are spaced at 1/fps
    tr2 = IoUTracker(fps=10)
    for _ in range(3):
        tr2.update([face_at(0, 0)])
    assert tr2.tracks[0].filter._t == pytest.approx(0.2)
    tr2.reset()
    assert tr2.tracks == [] and tr2.update([face_at(0, 0)])[0].track_id == 2  # ids never reused
    for kwargs in ({"iou_threshold": 0}, {"max_missed": -1}, {"min_hits": 0}, {"fps": 0}, {"beta": -1}):
        with pytest.raises(ValueError):
            IoUTracker(**kwargs)


def test_landmark_jitter():
    still = [LM * 100] * 5
    assert landmark_jitter(still) == 0.0
    assert landmark_jitter(still[:1]) == 0.0
    moving = [LM * 100 + [3 * i, 4 * i] for i in range(5)]  # every point moves 5 px per frame
    assert landmark_jitter(moving) == pytest.approx(5.0)


def _shifted_frames(image: np.ndarray, shifts: np.ndarray):
    h, w = image.shape[:2]
    for dx, dy in shifts:
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        yield cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.shared
def test_smoothing_reduces_landmark_jitter_of_a_still_face(peer_model_path):
    """A video made of the still sample image with random sub-pixel shifts of up to 1 px:
    the detector's landmarks jitter by about a pixel from frame to frame; smoothed, by a fraction of it.
    With no shifts at all (a perfectly still face) the jitter is zero, raw and smoothed."""
    image = load_image(data_path("astronaut.jpg"))
    det = FaceDetector(peer_model_path, input_size=320, threads=1)
    rng = np.random.default_rng(0)
    results = {}
    for name, shifts in (("still", np.zeros((20, 2))), ("shifted", rng.uniform(-1, 1, (30, 2)))):
        tracker = IoUTracker()
        raw, smooth = [], []
        for i, frame in enumerate(_shifted_frames(image, shifts)):
            faces = det.detect(frame)
            assert len(faces) == 1
            (tracked,) = tracker.update(faces, i / 30)
            assert tracked.track_id == 1
            raw.append(faces[0].landmarks)
            smooth.append(tracked.landmarks)
        results[name] = (landmark_jitter(raw), landmark_jitter(smooth))
    assert results["still"][0] < 1e-4 and results["still"][1] < 1e-4
    raw_j, smooth_j = results["shifted"]
    assert raw_j > 0.5, results  # the detector really does jitter
    assert smooth_j < 0.35 * raw_j, results


def test_drawing_tracked_faces_and_text():
    from facelite.draw import draw_faces, draw_text

    image = np.zeros((200, 300, 3), np.uint8)
    f = face_at(100, 60, size=80)
    tracked = TrackedFace(box=f.box, score=f.score, landmarks=f.landmarks, track_id=7)
    plain, with_id = draw_faces(image, [f]), draw_faces(image, [tracked])
    assert (with_id[35:60, 100:200] != plain[35:60, 100:200]).any()  # "#7 0.90" instead of "0.90"
    np.testing.assert_array_equal(with_id[60:, :], plain[60:, :])
    out = draw_text(image.copy(), "12.3 FPS", (5, 5))
    assert out[5:30, 5:80].any() and not out[60:, :].any()
