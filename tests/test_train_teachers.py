"""The RetinaFace-mnet0.25 and YuNet peers as per-anchor distillation teachers (needs ../shared)."""

import pickle
from dataclasses import replace
from importlib.resources import files

import cv2
import numpy as np
import pytest

from facelite.anchors import make_anchors
from facelite.codec import decode_landmarks
from facelite.nms import box_iou
from facelite.spec import default_spec
from facelite.train.match import cxcywh_to_xyxy
from facelite.train.teachers import (
    AnchorTeacher,
    ProjectedTeacher,
    RetinaFaceTeacher,
    SCRFDTeacher,
    YuNetTeacher,
    make_anchor_teacher,
    teacher_files,
)

SPEC = default_spec(0.35, 64)


@pytest.fixture(scope="module")
def sample_320() -> np.ndarray:
    img = cv2.imread(str(files("facelite.data") / "astronaut.jpg"))
    return cv2.resize(img, (320, 320), interpolation=cv2.INTER_AREA)


@pytest.mark.shared
def test_anchor_outputs_decode_to_the_full_teachers_face(sample_320):
    teacher = make_anchor_teacher("retinaface", SPEC)
    logp, lmk = teacher(sample_320)
    anchors = make_anchors(SPEC, 320, 320)
    assert logp.shape == (len(anchors), 2) and lmk.shape == (len(anchors), 10)
    assert logp.dtype == lmk.dtype == np.float32
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=1e-4)  # log-probabilities
    best = int(np.argmax(logp[:, 1]))
    assert np.exp(logp[best, 1]) > 0.9
    # the same face as the complete RetinaFace detector (decode + NMS) finds on the same input
    boxes, scores, lmks = RetinaFaceTeacher()(sample_320)
    assert scores[0] > 0.9
    # box offsets are not part of the soft targets: check the anchor is on the face, and the landmarks
    centre = make_anchors(SPEC, 320, 320)[best, :2]
    assert boxes[0, 0] < centre[0] < boxes[0, 2] and boxes[0, 1] < centre[1] < boxes[0, 3]
    ours = decode_landmarks(lmk[best : best + 1], anchors[best : best + 1], SPEC.variances)[0]
    size = boxes[0, 2] - boxes[0, 0]
    assert np.abs(ours - lmks[0]).max() < 0.1 * size


@pytest.mark.shared
def test_teacher_pickles_without_its_session_and_checks_input(sample_320):
    teacher = make_anchor_teacher("retinaface", SPEC)
    first = teacher(sample_320)
    copy = pickle.loads(pickle.dumps(teacher))  # as sent to a data-loader worker
    assert copy._session is None
    again = copy(sample_320)
    np.testing.assert_array_equal(first[0], again[0])
    with pytest.raises(ValueError, match="multiples of 32"):
        teacher(sample_320[:300])
    with pytest.raises(ValueError, match="uint8"):
        teacher(sample_320.astype(np.float32))


@pytest.mark.shared
def test_teacher_features_are_the_ssh_outputs_at_each_stride(sample_320):
    teacher = make_anchor_teacher("retinaface", SPEC, features=True)
    logp, lmk, *feats = pickle.loads(pickle.dumps(teacher))(sample_320)
    plain = make_anchor_teacher("retinaface", SPEC)(sample_320)
    np.testing.assert_array_equal(logp, plain[0])  # the added outputs change nothing else
    np.testing.assert_array_equal(lmk, plain[1])
    assert [f.shape for f in feats] == [(64, 40, 40), (64, 20, 20), (64, 10, 10)]
    assert all(f.dtype == np.float16 and f.min() >= 0 and f.max() > 0 for f in feats)  # after ReLU
    # the stride-8 features respond to the face: more activity in the cells over it than elsewhere
    energy = np.abs(feats[0].astype(np.float32)).mean(0)
    boxes, _, _ = RetinaFaceTeacher()(sample_320)
    x1, y1, x2, y2 = (boxes[0] / 8).round().astype(int)
    inside = energy[y1:y2, x1:x2].mean()
    assert inside > energy.mean()


@pytest.mark.shared
def test_yunet_projected_onto_the_anchors(sample_320):
    teacher = make_anchor_teacher("yunet", SPEC)
    assert isinstance(teacher, ProjectedTeacher)
    logp, lmk = pickle.loads(pickle.dumps(teacher))(sample_320)  # as in a data-loader worker
    anchors = make_anchors(SPEC, 320, 320)
    assert logp.shape == (len(anchors), 2) and lmk.shape == (len(anchors), 10)
    np.testing.assert_allclose(np.exp(logp).sum(1), 1.0, atol=1e-4)
    p = np.exp(logp[:, 1])
    # YuNet's own detection: the anchors matching it (IoU >= 0.35) carry its score, the rest ~0
    boxes, scores, lmks = YuNetTeacher()(sample_320, score_threshold=0.5)
    assert len(boxes) == 1 and scores[0] > 0.8
    iou = box_iou(cxcywh_to_xyxy(anchors), boxes)[:, 0]
    on_face = iou >= 0.35
    assert on_face.sum() >= 3
    np.testing.assert_allclose(p[on_face].max(), scores[0], atol=1e-3)
    assert p[iou < 0.1].max() < 0.05
    # landmark offsets where an anchor matched a candidate, NaN elsewhere; they decode to YuNet's points
    unmatched = p < 1e-5  # no candidate over the minimum score overlaps these anchors
    assert np.isfinite(lmk[on_face]).all() and unmatched.sum() > len(anchors) / 2 and np.isnan(lmk[unmatched]).all()
    best = int(np.argmax(p))
    ours = decode_landmarks(lmk[best : best + 1], anchors[best : best + 1], SPEC.variances)[0]
    assert np.abs(ours - lmks[0]).max() < 0.1 * (boxes[0, 2] - boxes[0, 0])


@pytest.mark.shared
def test_ensemble_is_the_mean_of_the_two(sample_320):
    both = make_anchor_teacher("retinaface+yunet", SPEC, features=True)(sample_320)
    rf = make_anchor_teacher("retinaface", SPEC, features=True)(sample_320)
    yn = make_anchor_teacher("yunet", SPEC)(sample_320)
    mean = (np.exp(rf[0][:, 1]) + np.exp(yn[0][:, 1])) / 2
    np.testing.assert_allclose(np.exp(both[0][:, 1]), mean, atol=2e-6)
    for a, b in zip(both[1:], rf[1:]):  # landmarks and features: RetinaFace's
        np.testing.assert_array_equal(a, b)
    assert teacher_files("retinaface+yunet") == ["peers/retinaface_mnet025/retinaface_mnet025.onnx",
                                                 "peers/yunet/yunet_n_dynamic.onnx"]


def test_only_cleared_teachers_with_the_same_geometry():
    with pytest.raises(ValueError, match="anchor teachers"):
        make_anchor_teacher("yolo5face", SPEC)  # GPL: never a teacher
    with pytest.raises(ValueError, match="feature distillation"):
        make_anchor_teacher("yunet", SPEC, features=True)  # YuNet gives no SSH features
    with pytest.raises(ValueError, match="differ"):
        make_anchor_teacher("retinaface", replace(SPEC, min_sizes=((8, 16), (32, 64), (128, 256))))


def test_missing_teacher_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher model not found"):
        AnchorTeacher(tmp_path / "nope.onnx")



@pytest.mark.shared
def test_scrfd_teacher_gives_the_benchmark_adapters_boxes():
    """The train package's own SCRFD-2.5GF decoding (it must not import benchmarks/) against the
    comparison's adapter, on the sample image at its own resolution (no resize on either side)."""
    from benchmarks.adapters.scrfd import SCRFD

    img = cv2.imread(str(files("facelite.data") / "astronaut.jpg"))
    boxes, scores, lmks = SCRFDTeacher()(img, score_threshold=0.02, nms_threshold=0.4)
    ref = SCRFD("2.5g", input_size=max(img.shape[:2]), score_threshold=0.02, nms_threshold=0.4)(img)
    assert len(boxes) == len(ref[0]) and (scores > 0.5).sum() >= 1
    np.testing.assert_allclose(boxes, ref[0], atol=1e-3)
    np.testing.assert_allclose(scores, ref[1], atol=1e-6)
    np.testing.assert_allclose(lmks, ref[2], atol=1e-3)


@pytest.mark.shared
def test_scrfd_projected_teacher_marks_the_face_anchors(sample_320):
    logp, lmk = make_anchor_teacher("scrfd", SPEC)(sample_320)
    face = np.exp(logp[:, 1])
    assert face.max() > 0.8 and (face > 0.5).sum() < 50  # one face: a few anchors, not the background
    best = int(face.argmax())
    assert np.isfinite(lmk[best]).all() and np.isnan(lmk[face == 0]).all()
