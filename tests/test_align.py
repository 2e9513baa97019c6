import json

import cv2
import numpy as np
import pytest

import facelite
from facelite import Face, FaceDetector, load_image
from facelite.alignment import ARCFACE_TEMPLATE, alignment_matrix, arcface_template, similarity_transform
from facelite.cli import main
from facelite.paths import data_path


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _blob_image(points: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Grey Gaussian blobs centred at ``points`` (facelite coordinates: pixel centres at +0.5)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    img = np.zeros((h, w), np.float64)
    for x, y in points:
        img += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.dstack([np.clip(img * 255, 0, 255).astype(np.uint8)] * 3)


def _centroids(img: np.ndarray, near: np.ndarray, radius: float) -> np.ndarray:
    g = img[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0 : g.shape[0], 0 : g.shape[1]] + 0.5
    out = []
    for x, y in near:
        m = g * (((xs - x) ** 2 + (ys - y) ** 2) < radius**2)
        out.append([(m * xs).sum() / m.sum(), (m * ys).sum() / m.sum()])
    return np.array(out)


def test_template_values_and_scaling():
    np.testing.assert_allclose(
        ARCFACE_TEMPLATE,
        [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]],
        atol=0.01,
    )
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(arcface_template(224), 2 * ARCFACE_TEMPLATE)
    np.testing.assert_allclose(arcface_template(56), ARCFACE_TEMPLATE / 2)


def test_template_landmarks_are_the_identity():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    face = Face(box=(20.0, 30.0, 90.0, 100.0), score=0.9, landmarks=ARCFACE_TEMPLATE.astype(np.float32))
    crop, m = facelite.align(image, face, return_matrix=True)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - image.astype(int)).max() <= 1
    # at another size the template of that size is the identity too
    big = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    crop224 = facelite.align(big, arcface_template(224), size=224)
    assert np.abs(crop224.astype(int) - big.astype(int)).max() <= 1


@pytest.mark.parametrize("angle, scale, tx, ty", [(0, 1, 10, -5), (30, 2.5, 100, 40), (-75, 0.6, 7, 90), (180, 1.3, 300, 250)])
def test_rotated_scaled_landmarks_map_onto_the_template(angle, scale, tx, ty):
    forward = _similarity(angle, scale, tx, ty)
    pts = _apply(forward, ARCFACE_TEMPLATE)
    m = alignment_matrix(pts)
    np.testing.assert_allclose(_apply(m, pts), ARCFACE_TEMPLATE, atol=1e-6)
    # the matrix is the inverse of the forward transform
    full = np.vstack([forward, [0, 0, 1]])
    np.testing.assert_allclose(m, np.linalg.inv(full)[:2], atol=1e-9)


@pytest.mark.parametrize("angle, scale, size", [(0, 1.0, 112), (25, 2.5, 112), (-40, 1.7, 112), (60, 3.0, 224), (10, 0.8, 96)])
def test_warped_pixels_land_on_the_template_within_one_pixel(angle, scale, size):
    """Blobs drawn at rotated/scaled landmark positions come out at the template's points."""
    target = arcface_template(size)
    k = size / 112.0
    forward = _similarity(angle, scale / k, 0, 0)
    pts = _apply(forward, target)
    pts += 40 - pts.min(axis=0)  # into a canvas with a margin
    h, w = (pts.max(axis=0) + 40).astype(int)[::-1]
    sigma = 2.0 * scale  # 2 px in the crop
    image = _blob_image(pts, (h, w), sigma)
    crop = facelite.align(image, pts, size=size)
    assert crop.shape == (size, size, 3)
    found = _centroids(crop, target, radius=6.0)
    assert np.abs(found - target).max() < 1.0, found - target
    # an integer-size check of the same with cubic interpolation
    crop_c = facelite.align(image, pts, size=size, interpolation=cv2.INTER_CUBIC)
    assert np.abs(_centroids(crop_c, target, radius=6.0) - target).max() < 1.0


def test_least_squares_and_never_a_reflection():
    rng = np.random.default_rng(1)
    forward = _similarity(15, 2.0, 50, 60)
    pts = _apply(forward, ARCFACE_TEMPLATE) + rng.normal(0, 1.0, (5, 2))
    m = similarity_transform(pts, ARCFACE_TEMPLATE)
    resid = _apply(m, pts) - ARCFACE_TEMPLATE
    assert np.abs(resid).max() < 2.0
    # perturbing the solution never lowers the squared error (it is the least-squares optimum)
    base = (resid**2).sum()
    for _ in range(20):
        angle, s = rng.normal(0, 0.01), 1 + rng.normal(0, 0.01)
        q = _similarity(np.rad2deg(angle), s, *rng.normal(0, 0.1, 2))
        mq = np.vstack([q, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]])
        assert ((_apply(mq[:2], pts) - ARCFACE_TEMPLATE) ** 2).sum() >= base - 1e-9
    # a mirrored face still gets a proper rotation (positive determinant), not a flip
    mirrored = pts * [-1, 1]
    m2 = similarity_transform(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(m2[:, :2]) > 0


def test_inputs_and_errors():
    image = np.zeros((200, 200, 3), np.uint8)
    lm = _apply(_similarity(0, 1.5, 20, 10), ARCFACE_TEMPLATE)
    face = Face(box=(0.0, 0.0, 100.0, 100.0), score=0.9, landmarks=lm.astype(np.float32))
    a = facelite.align(image, face)
    b = facelite.align(image, lm.tolist())
    c = facelite.align(image, {"landmarks": lm.tolist()})
    d = facelite.align(image, lm.ravel())
    assert a.shape == b.shape == c.shape == d.shape == (112, 112, 3)
    assert facelite.align(image[:, :, 0], face).shape == (112, 112)
    with pytest.raises(ValueError, match="one point"):
        facelite.align(image, np.ones((5, 2)))
    with pytest.raises(ValueError, match="size"):
        facelite.align(image, face, size=4)
    with pytest.raises(ValueError, match="size"):
        facelite.align(image, face, size=112.0)
    with pytest.raises(ValueError, match="5 \\(x, y\\) landmarks"):
        facelite.align(image, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        facelite.align(image, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="image"):
        facelite.align(None, face)


@pytest.mark.shared
def test_real_face_aligned_the_same_when_the_photo_is_rotated(peer_model_path):
    """The trained peer's landmarks on the astronaut, upright and rotated by 30 degrees, give the same crop."""
    image = load_image(data_path("astronaut.jpg"))
    det = FaceDetector(peer_model_path, input_size=512, threads=1)
    (face,) = det.detect(image)
    crop, m = facelite.align(image, face, return_matrix=True)
    # a least-squares fit: a real face is not the template, but close (her mouth is a little high)
    assert np.abs(_apply(m, face.landmarks.astype(np.float64)) - ARCFACE_TEMPLATE).max() < 8.0
    rot = cv2.getRotationMatrix2D((256, 256), 30, 1.0)  # OpenCV's pixel-index coordinates
    rotated = cv2.warpAffine(image, rot, (512, 512), flags=cv2.INTER_LINEAR)
    # the same landmarks, rotated with the photo: the same crop up to interpolation
    moved = (face.landmarks - 0.5) @ rot[:, :2].T + rot[:, 2] + 0.5
    same = facelite.align(rotated, moved)
    assert np.abs(crop.astype(float) - same.astype(float))[16:96, 16:96].mean() < 3
    # detected again in the rotated photo: a few pixels of detector noise, no more
    (rface,) = det.detect(rotated)
    assert np.abs(rface.landmarks - moved).max() < 6
    rcrop = facelite.align(rotated, rface)
    diff = np.abs(crop.astype(float) - rcrop.astype(float))[16:96, 16:96]  # the face, not the corners
    assert diff.mean() < 25, diff.mean()  # (a 1-pixel shift of the crop alone gives ~10)


def test_align_command(tmp_path, random_model_path, capsys):
    out = tmp_path / "crops"
    log = tmp_path / "crops.jsonl"
    img = data_path("astronaut.jpg")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a jpeg")
    rc = main(["align", str(img), str(tmp_path / "in"), "--out", str(out), "--size", "64", "--max-faces", "3",
               "--model", str(random_model_path), "--threads", "1", "--jsonl", str(log)])
    err = capsys.readouterr().err
    assert rc == 1 and "skipped" in err and "bad.jpg" in err and "Traceback" not in err
    crops = sorted(p.name for p in out.iterdir())
    assert crops == ["astronaut_0.png", "astronaut_1.png", "astronaut_2.png"]
    assert cv2.imread(str(out / "astronaut_0.png")).shape == (64, 64, 3)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["face"] for r in records] == [0, 1, 2] and records[0]["crop"] == str(out / "astronaut_0.png")
    # the recorded matrix maps the recorded landmarks onto the 64-pixel template
    r = records[0]
    np.testing.assert_allclose(_apply(np.array(r["matrix"]), np.array(r["landmarks"])), arcface_template(64), atol=20)
    assert main(["align", str(img), "--out", str(out), "--size", "2", "--model", str(random_model_path)]) == 1
    assert "--size" in capsys.readouterr().err


@pytest.mark.shared
def test_align_command_real_face(tmp_path, peer_model_path, capsys):
    out = tmp_path / "crops"
    assert main(["align", str(data_path("astronaut.jpg")), "--out", str(out), "--model", str(peer_model_path),
                 "--threads", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_0.png"]
    assert cv2.imread(str(out / "astronaut_0.png")).shape == (112, 112, 3)
    assert "1 face aligned" in capsys.readouterr().out


def test_align_command_interrupted_and_resumed_equals_uninterrupted(tmp_path, random_model_path, capsys, monkeypatch):
    image = facelite.load_image(data_path("astronaut.jpg"))
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i, v in enumerate([image, image[:, ::-1], image[::2, ::2], cv2.resize(image, (300, 200))]):
        cv2.imwrite(str(folder / ("sub" if i % 2 else "") / f"img{i}.jpg"), v)

    def align_into(name, *extra):
        args = ["align", str(folder), "--out", str(tmp_path / name), "--jsonl", str(tmp_path / f"{name}.jsonl"),
                "--model", str(random_model_path), "--threads", "1", "--input-size", "160", "--max-faces", "3",
                "--size", "32", "--workers", "0", *extra]
        return main(args), capsys.readouterr()

    def normalised(name):
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        return [line.replace(str(tmp_path / name), "<out>") for line in lines]

    assert align_into("ref")[0] == 0
    ref = (tmp_path / "ref.jsonl").read_text().splitlines()
    assert len(ref) == 12  # 3 crops from each of the 4 images (a random model finds many "faces")

    real_detect = facelite.FaceDetector.detect
    calls = {"n": 0}

    def interrupted(self, img):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_detect(self, img)

    monkeypatch.setattr(facelite.FaceDetector, "detect", interrupted)
    assert align_into("run")[0] == 130
    assert len((tmp_path / "run.jsonl").read_text().splitlines()) == 6
    with open(tmp_path / "run.jsonl", "a") as f:  # killed while writing the next image's lines
        f.write(ref[6] + "\n" + ref[7][:20])
    calls["n"] = 0
    monkeypatch.setattr(facelite.FaceDetector, "detect", lambda self, img: (calls.__setitem__("n", calls["n"] + 1),
                                                                            real_detect(self, img))[1])
    rc, cap = align_into("run", "--resume")
    # the image of the unfinished write is done again, whole
    assert rc == 0 and calls["n"] == 2
    assert "removed an unfinished last line" in cap.err and "2 of 4 images already in" in cap.err
    assert normalised("run") == normalised("ref")

    assert sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run").rglob("*.png")) == sorted(
        p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*.png"))
    assert align_into("x", "--resume", "--jsonl", "-")[0] == 1
