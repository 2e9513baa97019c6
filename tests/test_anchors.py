import numpy as np
import pytest

from facelite.anchors import anchors_for, feature_map_sizes, make_anchors, num_anchors
from facelite.spec import ModelSpec


def test_64x64_count_and_exact_coordinates():
    spec = ModelSpec()  # strides 8/16/32, sizes (16,32), (64,128), (256,512)
    a = make_anchors(spec, 64, 64)
    # 8x8 + 4x4 + 2x2 cells, 2 anchors each
    assert a.shape == (2 * (64 + 16 + 4), 4) == (168, 4)
    assert num_anchors(spec, 64, 64) == 168
    assert a.dtype == np.float32
    # stride 8: row 0, col 0 -> centre (4, 4), sizes 16 then 32; then col 1 -> centre (12, 4)
    np.testing.assert_array_equal(a[:4], [[4, 4, 16, 16], [4, 4, 32, 32], [12, 4, 16, 16], [12, 4, 32, 32]])
    # stride 8: row 1 starts after 8 cols x 2 anchors
    np.testing.assert_array_equal(a[16], [4, 12, 16, 16])
    # last stride-8 anchor: row 7, col 7 -> centre (60, 60)
    np.testing.assert_array_equal(a[127], [60, 60, 32, 32])
    # stride 16 starts at 128: centre (8, 8), sizes 64/128
    np.testing.assert_array_equal(a[128:130], [[8, 8, 64, 64], [8, 8, 128, 128]])
    # stride 32 starts at 128 + 32 = 160: centres 16 and 48
    np.testing.assert_array_equal(a[160:], [[16, 16, 256, 256], [16, 16, 512, 512], [48, 16, 256, 256],
                                            [48, 16, 512, 512], [16, 48, 256, 256], [16, 48, 512, 512],
                                            [48, 48, 256, 256], [48, 48, 512, 512]])


def test_non_square_and_ceil():
    spec = ModelSpec()
    assert feature_map_sizes(spec, 64, 96) == [(8, 12), (4, 6), (2, 3)]
    assert feature_map_sizes(spec, 70, 70) == [(9, 9), (5, 5), (3, 3)]
    assert len(make_anchors(spec, 64, 96)) == num_anchors(spec, 64, 96) == 2 * (96 + 24 + 6)


def test_cache_is_read_only_and_shared():
    spec = ModelSpec()
    a = anchors_for(spec, 64, 64)
    assert a is anchors_for(spec, 64, 64)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
    with pytest.raises(ValueError):
        make_anchors(spec, 0, 64)
