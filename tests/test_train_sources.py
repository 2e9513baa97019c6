"""Training sources: the fixed masked-face validation split, extra sets, the weighted sampler."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelite.annotations import read_labels
from facelite.paths import shared_dir
from facelite.train.sources import (
    FACEMASK_GT,
    SourceSampler,
    extra_source,
    facemask_holdout,
    holdout_names,
    image_strata,
    read_mask_classes,
    split_key,
    write_facemask_split,
)


def test_holdout_is_a_fixed_stratified_fraction_independent_of_order():
    strata = {f"img{i}.webp": ("rare" if i % 10 == 0 else "common") for i in range(200)}
    held = holdout_names(strata, 0.2)
    assert len([n for n in held if strata[n] == "rare"]) == 4  # 20 % of each stratum
    assert len([n for n in held if strata[n] == "common"]) == 36
    reordered = dict(reversed(list(strata.items())))
    assert holdout_names(reordered, 0.2) == held
    # the smallest hashes of each stratum, by a key of the file name alone (folders do not matter)
    common = sorted((n for n in strata if strata[n] == "common"), key=split_key)
    assert set(common[:36]) <= held and not set(common[36:]) & held
    assert split_key("a/b/x.webp") == split_key("x.webp") != split_key("y.webp")


def test_strata_take_the_rarest_class_of_an_image():
    classes = {"a.webp": ["with_mask", "without_mask"], "b.webp": ["with_mask", "mask_incorrect"],
               "c.webp": ["with_mask"]}
    assert image_strata(["a.webp", "b.webp", "c.webp", "d.webp"], classes) == {
        "a.webp": "without_mask", "b.webp": "mask_incorrect", "c.webp": "with_mask", "d.webp": "none"}


def _tiny_facemask(root: Path, n: int = 10) -> Path:
    """A masked-face-like set: n images, image i with i % 3 + 1 faces, classes cycling."""
    (root / "images").mkdir(parents=True)
    gt, tsv = [], ["name\tface\tclass"]
    classes = ("with_mask", "without_mask", "mask_incorrect")
    for i in range(n):
        name = f"m{i}.webp"
        cv2.imwrite(str(root / "images" / name), np.full((40, 60, 3), 100, np.uint8))
        k = i % 3 + 1
        gt += [name, str(k)] + [f"{5 + 15 * j} 5 10 12 0 0 0 0 0 0" for j in range(k)]
        tsv += [f"{name}\t{j}\t{classes[(i + j) % 3] if i % 2 else 'with_mask'}" for j in range(k)]
    (root / "facemask_bbx_gt.txt").write_text("\n".join(gt) + "\n")
    (root / "mask_labels.tsv").write_text("\n".join(tsv) + "\n")
    return root / "facemask_bbx_gt.txt"


def test_written_split_files_partition_the_set_and_evaluate(tmp_path):
    gt = _tiny_facemask(tmp_path / "fm")
    counts = write_facemask_split(tmp_path / "out", gt, fraction=0.3)
    held = facemask_holdout(gt, 0.3)
    train = read_labels(tmp_path / "out" / "train.txt", tmp_path / "fm" / "images")
    val = read_labels(tmp_path / "out" / "val.txt", tmp_path / "fm" / "images")
    assert {s.path.name for s in val} == held and not {s.path.name for s in train} & held
    assert len(train) + len(val) == 10 == counts["train_images"] + counts["val_images"]
    assert all(s.path.is_file() for s in val)
    masked = read_labels(tmp_path / "out" / "val-masked.txt", tmp_path / "fm" / "images", fmt="wider", invalid="ignore")
    classes = read_mask_classes(tmp_path / "fm" / "mask_labels.tsv")
    for s in masked:  # faces without a mask are the ignore faces of the masked-only file
        assert s.ignore.tolist() == [c == "without_mask" for c in classes[s.path.name]]
    assert sum(int((~s.ignore).sum()) for s in masked) == counts["val_masked_faces"]


@pytest.mark.shared
def test_the_shared_masked_face_split_is_the_documented_one():
    held = facemask_holdout(shared_dir() / FACEMASK_GT)
    assert len(held) == 145  # of 724 images (docs/PEERS.md, "Masked faces")
    assert "maksssksksss25.webp" in held and "maksssksksss0.webp" not in held


def test_extra_set_of_masked_faces_requires_the_holdout(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELITE_SHARED", str(tmp_path))
    gt = _tiny_facemask(tmp_path / "data" / "facemask")
    entry = {"labels": str(gt), "images": str(gt.parent / "images"), "weight": 2.0, "exhaustive": False}
    with pytest.raises(ValueError, match="holdout"):
        extra_source(entry, Path)
    src = extra_source({**entry, "holdout": "facemask"}, Path)
    assert src.weight == 2.0 and not src.exhaustive
    assert len(src.samples) == 10 - len(facemask_holdout(gt))
    with pytest.raises(ValueError, match="unknown"):
        extra_source({**entry, "wieght": 1}, Path)


def test_sampler_draws_each_set_by_its_weight_reproducibly():
    sampler = SourceSampler([10, 4, 6], [1.0, 2.5, 0.5], seed=3)
    assert sampler.counts() == [10, 10, 3] and len(sampler) == 23
    idx = sampler.indices(0)
    assert len(idx) == 23
    per_set = np.bincount(np.searchsorted([10, 14, 20], idx, side="right"), minlength=3)
    assert per_set.tolist() == [10, 10, 3]
    assert set(idx[idx < 10].tolist()) == set(range(10))  # weight 1: every image once
    second = idx[(idx >= 10) & (idx < 14)]
    assert np.bincount(second - 10, minlength=4).min() >= 2  # weight 2.5: two passes + 2 more
    third = idx[idx >= 14]
    assert len(set(third.tolist())) == 3  # weight 0.5: 3 distinct of 6
    np.testing.assert_array_equal(SourceSampler([10, 4, 6], [1.0, 2.5, 0.5], seed=3).indices(0), idx)
    assert not np.array_equal(sampler.indices(1), idx)
    sampler.epoch = 4
    draws = list(sampler)
    assert [d[0] for d in draws] == [4] * 23
    assert len(set(draws)) == 23  # a repeated image is a draw of its own: (epoch, index, k), augmented anew
