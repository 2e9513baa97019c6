import numpy as np
import pytest

from facelite import Face, ModelSpec
from facelite.paths import data_path, shared_dir
from facelite.spec import METADATA_KEY, default_spec


def test_spec_json_and_metadata_round_trip():
    for spec in (ModelSpec(), default_spec(1.0), ModelSpec(channel_order="BGR", mean=(104, 117, 123), std=(1, 1, 1))):
        assert ModelSpec.from_json(spec.to_json()) == spec
        assert ModelSpec.from_metadata(spec.to_metadata()) == spec
    with pytest.raises(ValueError, match="not exported by facelite"):
        ModelSpec.from_metadata({})
    with pytest.raises(ValueError, match="unknown model spec fields"):
        ModelSpec.from_json('{"bogus": 1}')
    with pytest.raises(ValueError, match="newer"):
        ModelSpec.from_json('{"format_version": 99}')
    assert METADATA_KEY in ModelSpec().to_metadata()


def test_face_dict_round_trip():
    lm = np.arange(10, dtype=np.float32).reshape(5, 2)
    f = Face(box=(1.0, 2.0, 11.0, 22.0), score=0.875, landmarks=lm)
    assert (f.width, f.height) == (10.0, 20.0)
    d = f.to_dict()
    assert d["box"] == [1.0, 2.0, 11.0, 22.0] and d["landmark_names"][0] == "left_eye"
    g = Face.from_dict(d)
    assert g.box == f.box and g.score == f.score
    np.testing.assert_array_equal(g.landmarks, lm)


def test_paths(monkeypatch, tmp_path):
    assert data_path().name == "astronaut.jpg" and data_path().is_file()
    with pytest.raises(FileNotFoundError, match="astronaut.jpg"):
        data_path("nope.png")
    monkeypatch.setenv("FACELITE_SHARED", str(tmp_path))
    assert shared_dir() == tmp_path
