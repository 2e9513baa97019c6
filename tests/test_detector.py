import numpy as np
import pytest

import facelite
from facelite import Face, FaceDetector, ImageLoadError, load_image
from facelite.models import shipped_path
from facelite.nms import box_iou
from facelite.paths import data_path

# The astronaut's face in data/astronaut.jpg (512 x 512), as found by the trained
# RetinaFace-mnet0.25 peer through facelite's pipeline and checked by eye.
ASTRONAUT_BOX = (178.0, 59.0, 273.0, 178.0)
ASTRONAUT_LANDMARKS = ((204.4, 100.7), (246.7, 102.7), (224.9, 129.3), (203.2, 139.1), (245.7, 140.7))


@pytest.fixture(scope="module")
def detector(random_model_path):
    return FaceDetector(random_model_path, score_threshold=0.3, threads=1)


@pytest.fixture(scope="module")
def image():
    return load_image(data_path("astronaut.jpg"))


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"precision": "fp16"}, "precision"),
        ({"input_size": 16}, "input_size"),
        ({"input_size": 320.0}, "input_size"),
        ({"input_size": True}, "input_size"),
        ({"input_size": 10_000}, "input_size"),
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"score_threshold": 1.5}, "score_threshold"),
        ({"score_threshold": "0.5"}, "score_threshold"),
        ({"nms_threshold": 2}, "nms_threshold"),
        ({"top_k": 0}, "top_k"),
        ({"keep_top_k": -1}, "keep_top_k"),
        ({"threads": 0}, "threads"),
        ({"max_image_pixels": 0}, "max_image_pixels"),
        ({"min_face_size": -1}, "min_face_size"),
        ({"min_face_size": float("nan")}, "min_face_size"),
        ({"min_face_size": True}, "min_face_size"),
        ({"min_face_size": "20"}, "min_face_size"),
        ({"model": "mobilenetv2-0.5"}, "mobilenetv2-0.35, mobilenetv2-1.0"),
    ],
)
def test_constructor_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        FaceDetector(**kwargs)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (None, "image is None"),
        ([[0, 1], [2, 3]], "NumPy array"),
        (np.zeros((32, 32), np.uint8), "grey image.*to_bgr"),
        (np.zeros((32, 32, 1), np.uint8), "grey image.*to_bgr"),
        (np.zeros((32, 32, 4), np.uint8), "4 channels.*to_bgr"),
        (np.zeros((32, 32, 3), np.uint16), "uint8.*to_bgr"),
        (np.zeros((32, 32, 3), np.float32), "uint8.*to_bgr"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        (np.zeros((2, 32, 32, 3), np.uint8), "H x W x 3"),
        (np.zeros((32, 32, 2), np.uint8), "H x W x 3"),
    ],
)
def test_input_validation(detector, bad, msg):
    with pytest.raises(ValueError, match=msg):
        detector.detect(bad)


def test_missing_path_raises_image_load_error(detector, tmp_path):
    with pytest.raises(ImageLoadError, match="no such file"):
        detector.detect(tmp_path / "missing.jpg")


def test_faces_sorted_clipped_in_original_pixels(detector, image):
    crop = image[40:340, :]  # 300 x 512, not square: exercises padding and the inverse mapping
    faces = detector.detect(crop)
    assert 0 < len(faces) <= detector.keep_top_k
    assert all(isinstance(f, Face) for f in faces)
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.3 and max(scores) <= 1.0
    h, w = crop.shape[:2]
    for f in faces:
        x1, y1, x2, y2 = f.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert f.landmarks.shape == (5, 2) and f.landmarks.dtype == np.float32
    # the boxes really are in original pixels: some reach the far edges, none beyond
    boxes = np.array([f.box for f in faces])
    assert boxes[:, 2].max() > 0.9 * w and boxes[:, 3].max() > 0.9 * h


def test_arrays_path_batch_and_timings_agree(detector, image):
    faces = detector.detect(image)
    assert set(detector.last_timings) == {"preprocess_ms", "network_ms", "postprocess_ms", "total_ms"}
    assert all(v >= 0 for v in detector.last_timings.values())
    assert detector.last_timings["network_ms"] > 0
    boxes, scores, lmks = detector.detect_arrays(image)
    assert boxes.shape == (len(faces), 4) and scores.shape == (len(faces),) and lmks.shape == (len(faces), 5, 2)
    assert boxes.dtype == scores.dtype == lmks.dtype == np.float32
    np.testing.assert_allclose(boxes, [f.box for f in faces], atol=1e-4)
    np.testing.assert_allclose(lmks, [f.landmarks for f in faces], atol=1e-4)
    # a path gives the same result as the loaded array
    from_path = detector.detect_arrays(data_path("astronaut.jpg"))
    np.testing.assert_array_equal(from_path[0], boxes)
    # a batch of same-sized images gives the single-image results
    flipped = np.ascontiguousarray(image[:, ::-1])
    batch = detector.detect_batch_arrays([image, flipped, image], batch_size=2)
    assert len(batch) == 3
    for (b, s, _), single in zip(batch, (image, flipped, image)):
        sb, ss, _ = detector.detect_arrays(single)
        np.testing.assert_allclose(b, sb, atol=1e-3)
        np.testing.assert_allclose(s, ss, atol=1e-5)
    # images of different shapes are not padded to one tensor: each gets exactly what detect gives it
    small = np.ascontiguousarray(image[:200, :300])
    wide = np.ascontiguousarray(np.concatenate([image, image], axis=1))
    mixed = [image, small, wide, flipped, small]
    for got, single in zip(detector.detect_batch_arrays(mixed, batch_size=4), mixed):
        for a, b in zip(got, detector.detect_arrays(single)):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-4)
    faces_batch = detector.detect_batch([image, small])
    assert len(faces_batch) == 2
    for f in faces_batch[1]:
        assert 0 <= f.box[0] < f.box[2] <= 300 and 0 <= f.box[1] < f.box[3] <= 200


def test_non_contiguous_input_is_handled(detector, image):
    view = image[:, ::-1]  # negative strides
    assert not view.flags.c_contiguous
    got = detector.detect_arrays(view)
    want = detector.detect_arrays(np.ascontiguousarray(view))
    np.testing.assert_array_equal(got[0], want[0])


def test_thresholds_and_caps(random_model_path, image):
    strict = FaceDetector(random_model_path, score_threshold=1.0, threads=1)
    assert strict.detect(image) == []
    capped = FaceDetector(random_model_path, score_threshold=0.0, keep_top_k=3, threads=1)
    assert len(capped.detect(image)) == 3
    loose = FaceDetector(random_model_path, score_threshold=0.0, nms_threshold=1.0, top_k=7, threads=1)
    assert len(loose.detect(image)) == 7  # NMS at IoU 1.0 suppresses nothing: the top_k survive
    assert "FaceDetector(model='mobilenetv2-0.35'" in repr(loose)


@pytest.mark.shared
def test_trained_peer_finds_the_astronaut(peer_model_path, image):
    """Real weights through the whole run-time path: one face, at the right place, at any scale."""
    for size, tolerance in ((320, 8.0), (640, 2.0)):
        det = FaceDetector(peer_model_path, input_size=size, threads=1)
        faces = det.detect(image)
        assert len(faces) == 1, faces
        f = faces[0]
        assert f.score > 0.99
        assert box_iou(np.array(f.box), np.array(ASTRONAUT_BOX))[0, 0] > 0.9
        np.testing.assert_allclose(f.landmarks, ASTRONAUT_LANDMARKS, atol=tolerance)
    # the same image at twice the size: coordinates come back in the bigger image's pixels
    import cv2

    big = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    (f,) = FaceDetector(peer_model_path, input_size=640, threads=1).detect(big)
    assert box_iou(np.array(f.box) / 2, np.array(ASTRONAUT_BOX))[0, 0] > 0.9
    # and in a wider canvas (letterboxed differently), shifted by the offset
    canvas = np.zeros((512, 900, 3), np.uint8)
    canvas[:, 300:812] = image
    (f,) = FaceDetector(peer_model_path, input_size=640, threads=1).detect(canvas)
    shifted = np.array(f.box) - [300, 0, 300, 0]
    assert box_iou(shifted, np.array(ASTRONAUT_BOX))[0, 0] > 0.85


@pytest.mark.parametrize("model", ["mobilenetv2-0.35", "mobilenetv2-1.0"])
@pytest.mark.parametrize("precision", ["float32", "int8"])
@pytest.mark.parametrize("input_size", [320, 640])
def test_shipped_models_find_the_astronaut_and_her_landmarks(image, model, precision, input_size):
    if not shipped_path(model, precision).is_file():
        pytest.skip(f"{model} {precision} is not shipped in this installation")
    faces = facelite.FaceDetector(model, precision=precision, input_size=input_size).detect(image)
    assert faces, f"{model} found no face in the sample image"
    assert faces[0].score > 0.9
    assert box_iou(np.array(faces[0].box), np.array(ASTRONAUT_BOX))[0, 0] > 0.7
    # landmarks: mean error below 15 % of the inter-ocular distance (~42 px here), in the right order
    ref = np.array(ASTRONAUT_LANDMARKS)
    err = np.linalg.norm(faces[0].landmarks - ref, axis=1).mean() / np.linalg.norm(ref[0] - ref[1])
    assert err < 0.15, f"landmark error {err:.1%} of the inter-ocular distance"


def test_min_face_size_drops_the_small_face_only(image):
    if not shipped_path("mobilenetv2-0.35").is_file():
        pytest.skip("mobilenetv2-0.35 is not shipped in this installation")
    import cv2

    canvas = np.full((512, 1024, 3), 128, np.uint8)  # the astronaut, and beside her a half-size copy
    canvas[:, :512] = image
    canvas[128:384, 640:896] = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    both = facelite.FaceDetector().detect(canvas)
    assert len(both) == 2, both
    sides = sorted(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in both)
    assert 40 < sides[0] < 60 and 85 < sides[1] < 120, sides  # ~48 and ~95 px
    big = facelite.FaceDetector(min_face_size=(sides[0] + sides[1]) / 2).detect(canvas)
    assert [f.box for f in big] == [f.box for f in both if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) == sides[1]]
    assert facelite.FaceDetector(min_face_size=sides[1] + 1).detect(canvas) == []
    assert "min_face_size=" in repr(facelite.FaceDetector(min_face_size=20))


def test_one_detector_shared_by_threads_gives_the_sequential_results(peer_model_path, image):
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    # different sizes and contents, so that interleaved calls would mix up their inputs
    images = [cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA) for s in (512, 448, 384, 320)]
    images += [np.ascontiguousarray(im[:, ::-1]) for im in images]
    det = FaceDetector(peer_model_path, input_size=320, threads=1)
    expected = [det.detect_arrays(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(det.detect_arrays, images))
            for (b, s, p), (eb, es, ep) in zip(got, expected):
                np.testing.assert_array_equal(b, eb)
                np.testing.assert_array_equal(s, es)
                np.testing.assert_array_equal(p, ep)
    assert all(len(s) == 1 for _, s, _ in expected)  # the astronaut, once per image


def test_default_detector_is_the_small_float32_model():
    if not shipped_path("mobilenetv2-0.35").is_file():
        pytest.skip("mobilenetv2-0.35 is not shipped in this installation")
    det = facelite.FaceDetector()
    assert det.spec.alpha == 0.35 and det.precision == "float32"


def test_model_record_names_the_file_it_runs():
    if not shipped_path("mobilenetv2-1.0", "int8").is_file():
        pytest.skip("mobilenetv2-1.0 int8 is not shipped in this installation")
    import hashlib

    det = facelite.FaceDetector("mobilenetv2-1.0", precision="int8")
    digest = hashlib.sha256(shipped_path("mobilenetv2-1.0", "int8").read_bytes()).hexdigest()
    assert det.model_record() == {"name": "mobilenetv2-1.0", "precision": "int8", "sha256": digest[:12]}


def _boxes_of(detector: FaceDetector, path: str) -> list[tuple[float, ...]]:
    return [tuple(f.box) for f in detector.detect(path)]


def test_detector_pickles_for_process_pools(tmp_path, random_model_path):
    """A "spawn" process pool (the default on macOS and Windows) pickles the detector: the worker
    loads the network again and finds what the parent finds."""
    import multiprocessing
    import pickle
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    det = FaceDetector(model="mobilenetv2-0.35", input_size=320, threads=1, min_face_size=20)
    det.detect(data_path())
    copy = pickle.loads(pickle.dumps(det))
    assert repr(copy) == repr(det) and copy.last_timings == {} and copy.model_info == det.model_info
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        (boxes,) = pool.map(_boxes_of, [det], [str(data_path())])
    assert boxes == [tuple(f.box) for f in det.detect(data_path())] and len(boxes) == 1
    # a model given by path must still be the same file when unpickled
    path = tmp_path / "m.onnx"
    shutil.copy(random_model_path, path)
    state = pickle.dumps(FaceDetector(model=path, threads=1))
    shutil.copy(shipped_path("mobilenetv2-0.35"), path)
    with pytest.raises(ValueError, match="is not the model file the detector was made with"):
        pickle.loads(state)
