import json
import shutil

import cv2
import numpy as np
import pytest

from facelite import Face, load_image
from facelite.anonymize import anonymize, face_region
from facelite.cli import main
from facelite.paths import data_path


def _face(x1, y1, x2, y2):
    return Face(box=(x1, y1, x2, y2), score=0.9, landmarks=np.zeros((5, 2), np.float32))


def _mask(shape, faces, margin):
    m = np.zeros(shape[:2], bool)
    for f in faces:
        r = face_region(f.box, shape[:2], margin)
        if r:
            m[r[1] : r[3], r[0] : r[2]] = True
    return m


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_only_pixels_inside_faces_change(noise, method, shape, margin):
    faces = [_face(40.3, 30.7, 120.2, 130.9), _face(250, 150, 340, 260), _face(-20, -10, 15, 25)]  # 2 cut by borders
    out = anonymize(noise, faces, method, shape=shape, margin=margin)
    assert out is not noise and out.shape == noise.shape and out.dtype == np.uint8
    inside = _mask(noise.shape, faces, margin)
    np.testing.assert_array_equal(out[~inside], noise[~inside])
    # inside, the faces are obscured: most pixels change, and what is left has little detail
    core = np.zeros_like(inside)
    core[60:100, 60:100] = True
    assert (out[core] != noise[core]).mean() > 0.9
    assert out[60:100, 60:100].astype(float).std() < 0.5 * noise[60:100, 60:100].astype(float).std()


def test_regions_inputs_and_options(noise):
    assert face_region((10.2, 20.8, 30.1, 40.0), (100, 100), 0.0) == (10, 20, 31, 40)
    assert face_region((10, 20, 30, 40), (100, 100), 0.5) == (0, 10, 40, 50)
    assert face_region((-50, -50, -10, -10), (100, 100), 0.0) is None
    np.testing.assert_array_equal(anonymize(noise, []), noise)
    box = (40, 30, 120, 130)
    a = anonymize(noise, [_face(*box)])
    np.testing.assert_array_equal(anonymize(noise, [box]), a)
    np.testing.assert_array_equal(anonymize(noise, [{"box": list(box)}]), a)
    filled = anonymize(noise, [box], "fill", fill=(1, 2, 3), shape="box", margin=0)
    assert (filled[30:130, 40:120] == [1, 2, 3]).all()
    copy = noise.copy()
    assert anonymize(copy, [box], inplace=True) is copy and not np.array_equal(copy, noise)
    grey = anonymize(noise[:, :, 0], [box])
    assert grey.shape == noise.shape[:2]
    weak, strong = anonymize(noise, [box], strength=0.3), anonymize(noise, [box], strength=3)
    assert strong[60:100, 60:100].std() < weak[60:100, 60:100].std()
    for kwargs, msg in (({"method": "smudge"}, "method"), ({"shape": "circle"}, "shape"),
                        ({"margin": -1}, "margin"), ({"strength": 0}, "strength")):
        with pytest.raises(ValueError, match=msg):
            anonymize(noise, [box], **kwargs)
    with pytest.raises(ValueError, match="image"):
        anonymize(None, [box])


def _png_folder(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    image = load_image(data_path("astronaut.jpg"))
    cv2.imwrite(str(d / "astronaut.png"), image)  # lossless, so unchanged pixels can be compared
    cv2.imwrite(str(d / "sub" / "small.png"), image[::2, ::2])
    return d


def _check_outputs(d, out, log, margin):
    records = {r["path"]: r for r in map(json.loads, log.read_text().splitlines())}
    assert len(records) == 2
    for rel in ("astronaut.png", "sub/small.png"):
        r = records[str(d / rel)]
        assert r["anonymized"] == str(out / rel)
        src, dst = cv2.imread(str(d / rel)), cv2.imread(str(out / rel))
        faces = [Face.from_dict(f) for f in r["faces"]]
        assert faces
        inside = _mask(src.shape, faces, margin)
        np.testing.assert_array_equal(dst[~inside], src[~inside])
        assert (dst[inside] != src[inside]).mean() > 0.5
    return records


def test_blur_command(tmp_path, random_model_path, capsys):
    d = _png_folder(tmp_path)
    out, log = tmp_path / "out", tmp_path / "blur.jsonl"
    rc = main(["blur", str(d), "--out", str(out), "--jsonl", str(log), "--model", str(random_model_path),
               "--method", "pixelate", "--shape", "box", "--margin", "0.1", "--threads", "1"])
    assert rc == 0, capsys.readouterr().err
    _check_outputs(d, out, log, 0.1)
    # the same through facelite detect --anonymize
    out2, log2 = tmp_path / "out2", tmp_path / "detect.jsonl"
    assert main(["detect", str(d), "--out", str(out2), "--jsonl", str(log2), "--anonymize", "blur",
                 "--model", str(random_model_path), "--threads", "1"]) == 0
    _check_outputs(d, out2, log2, 0.15)
    capsys.readouterr()
    # errors
    with pytest.raises(SystemExit):
        main(["blur", str(d), "--model", str(random_model_path)])  # --out is required
    assert "--out" in capsys.readouterr().err
    assert main(["detect", str(d), "--anonymize", "blur", "--model", str(random_model_path)]) == 1
    assert "--anonymize needs --out" in capsys.readouterr().err
    assert main(["blur", str(d), "--out", str(out), "--margin", "-1", "--model", str(random_model_path)]) == 1
    assert "--margin" in capsys.readouterr().err


@pytest.mark.shared
def test_blur_command_real_face(tmp_path, peer_model_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(data_path("astronaut.jpg"), d / "a.jpg")
    cv2.imwrite(str(d / "a.png"), load_image(d / "a.jpg"))
    out, log = tmp_path / "out", tmp_path / "log.jsonl"
    assert main(["blur", str(d / "a.png"), "--out", str(out), "--jsonl", str(log), "--model", str(peer_model_path),
                 "--threads", "1"]) == 0
    (r,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(r["faces"]) == 1  # the astronaut
    src, dst = cv2.imread(str(d / "a.png")), cv2.imread(str(out / "a.png"))
    inside = _mask(src.shape, [Face.from_dict(r["faces"][0])], 0.15)
    np.testing.assert_array_equal(dst[~inside], src[~inside])
    x1, y1, x2, y2 = (int(v) for v in r["faces"][0]["box"])
    # the face is unrecognisable: no fine detail left between the eyes and the mouth
    def lap(im):
        return cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_64F)[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20]

    assert lap(dst).std() < 0.1 * lap(src).std()
