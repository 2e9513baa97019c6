"""A tiny end-to-end training run on synthetic images: losses logged, checkpoint, resume, export."""

import csv

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facelite.annotations import Sample, write_retinaface_labels  # noqa: E402
from facelite.train.config import (  # noqa: E402
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    load_config,
)
from facelite.train.trainer import lr_at, train  # noqa: E402


def write_tiny_set(tmp_path):
    """Four 128x96 images under ``tmp_path/images``, each with one bright 32x40 "face" (landmarks
    on every other one), and their ``tmp_path/label.txt``; returns ``(label file, image root)``."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        img = rng.integers(0, 60, (96, 128, 3), dtype=np.uint8)
        x, y = 20 + 10 * i, 20
        img[y : y + 40, x : x + 32] = 200  # a bright "face"
        (root / "ev").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "ev" / f"{i}.png"), img)
        pts = np.array([[x + 8, y + 12], [x + 24, y + 12], [x + 16, y + 22], [x + 10, y + 30], [x + 22, y + 30]])
        samples.append(Sample(root / "ev" / f"{i}.png", np.array([[x, y, x + 32, y + 40]], np.float32),
                              pts[None].astype(np.float32), np.array([i % 2 == 0])))
    write_retinaface_labels(samples, tmp_path / "label.txt", root)
    return tmp_path / "label.txt", root


@pytest.fixture
def tiny_config(tmp_path):
    labels, root = write_tiny_set(tmp_path)
    return Config(
        model=ModelConfig(alpha=0.35, fpn_channels=16),
        data=DataConfig(train_labels=str(labels), train_images=str(root), image_size=64,
                        paste_prob=0.0, crop_scales=[1.0]),
        train=TrainConfig(epochs=2, batch_size=2, workers=0, threads=1, eval_every=0, warmup_epochs=0.5,
                          ema_warmup_steps=2, run_dir=str(tmp_path / "run")),
    )


def test_train_checkpoint_and_resume(tiny_config, tmp_path):
    run = train(tiny_config, stop_after=1)
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 1 and ck["step"] == 2 and "ema" in ck
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["total"]))
    assert float(rows[0]["kd_cls"]) == 0 and float(rows[0]["kd_landmarks"]) == 0  # no teacher
    train(tiny_config)  # resumes: runs epoch 2 only
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 2 and ck["step"] == 4
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert "resumed from" in (run / "train.log").read_text()


def test_export_command_writes_a_loadable_model(tiny_config, tmp_path, monkeypatch):
    from facelite import FaceDetector
    from facelite.cli import main

    run = train(tiny_config, stop_after=1)
    monkeypatch.chdir(tmp_path)  # --calib-dir relative to the current folder: your own images
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out-dir", str(tmp_path / "out"), "--int8",
                 "--calib-dir", "images", "--calib-size", "64"]) == 0
    for precision in ("float32", "int8"):
        det = FaceDetector(model=str(tmp_path / "out" / f"mobilenetv2-0.35-{precision}.onnx"), score_threshold=0.0,
                           input_size=64)
        assert det.spec.fpn_channels == 16
        faces = det.detect(np.zeros((64, 64, 3), np.uint8))
        assert all(0 <= f.score <= 1 for f in faces)


def test_validation_on_your_own_labels(tiny_config, tmp_path):
    """With data.eval_labels the run is scored by `facelite eval labels`: AP columns in metrics.csv."""
    tiny_config.data.eval_labels = tiny_config.data.train_labels
    tiny_config.train.eval_every = 1
    tiny_config.train.eval_input_sizes = [64]
    run = train(tiny_config, stop_after=1)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "input_size", "ap", "ap_small", "ap_medium", "ap_large", "best_f1", "seconds"]
    assert len(rows) == 1 and rows[0]["input_size"] == "64"
    assert 0.0 <= float(rows[0]["ap"]) <= 1.0 and rows[0]["ap_small"] == "nan"  # every face is 32-40 px
    assert "validation at 64: ap " in (run / "train.log").read_text()


def test_fine_tune_the_shipped_model(tiny_config, tmp_path):
    """init_weights = a shipped model name: its ONNX weights are imported and fine-tuning starts from
    them (after a few tiny steps it still finds the astronaut's face where the shipped model does);
    the other shipped model as the teacher."""
    from facelite import FaceDetector, load_image
    from facelite.cli import main
    from facelite.nms import box_iou
    from facelite.paths import data_path

    tiny_config.model = ModelConfig(alpha=0.35, fpn_channels=64, init_weights="mobilenetv2-0.35",
                                    teacher="mobilenetv2-1.0")
    tiny_config.train.lr = 1e-5
    run = train(tiny_config, stop_after=1)
    log = (run / "train.log").read_text()
    assert "initialised from mobilenetv2-0.35" in log and "batch norms of the imported file: statistics of 4 training samples" in log
    assert "distilling from mobilenetv2-1.0 (mobilenetv2-1.0)" in log
    assert float(next(csv.DictReader((run / "losses.csv").open()))["kd_cls"]) > 0
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out-dir", str(tmp_path / "out")]) == 0
    image = load_image(data_path("astronaut.jpg"))
    (shipped,) = FaceDetector().detect(image)[:1]
    tuned = FaceDetector(model=str(tmp_path / "out" / "mobilenetv2-0.35-float32.onnx")).detect(image)
    assert tuned and float(box_iou(np.array([tuned[0].box]), np.array([shipped.box]))[0, 0]) > 0.9


def test_bf16_falls_back_to_float32_on_a_cpu_without_it(tiny_config, monkeypatch):
    import json

    import facelite.train.trainer as trainer

    monkeypatch.setattr(trainer, "cpu_has_bf16", lambda: False)
    tiny_config.train.bf16 = True
    run = train(tiny_config, stop_after=1)
    assert "no bf16 instructions" in (run / "train.log").read_text()
    assert json.loads((run / "config.json").read_text())["train"]["bf16"] is False


def test_training_labels_from_a_coco_file_drop_crowd_faces(tiny_config, tmp_path):
    import json

    from facelite.train.trainer import load_samples

    before = load_samples(tiny_config)
    coco = {"images": [{"id": i, "file_name": f"ev/{i}.png", "width": 128, "height": 96} for i in range(4)],
            "categories": [{"id": 1, "name": "face"}],
            "annotations": [{"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                             "bbox": [float(s.boxes[0, 0]), float(s.boxes[0, 1]), 32.0, 40.0]} for i, s in enumerate(before)]
            + [{"id": 9, "image_id": 0, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1}]}
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    tiny_config.data.train_labels = str(tmp_path / "gt.json")
    after = load_samples(tiny_config)
    assert [s.path for s in after] == [s.path for s in before]
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a.boxes, b.boxes)  # the crowd face of image 0 is not a training face
        assert not a.has_landmarks.any()


def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0, 0.01) == pytest.approx(0.01)
    assert lr_at(10, 100, 10, 1.0, 0.01) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0, 0.01) == pytest.approx(0.505)
    assert lr_at(100, 100, 10, 1.0, 0.01) == pytest.approx(0.01)


def test_shipped_recipes_parse():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].joinpath("configs").rglob("*.toml")):
        cfg = load_config(path)
        assert cfg.train.epochs > 0 and cfg.data.image_size % 32 == 0


def test_unknown_config_key_is_an_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[train]\nepochz = 3\n")
    with pytest.raises(ValueError, match="epochz"):
        load_config(p)


def test_time_budget_sets_epochs_and_weights_file(tiny_config):
    run = train(tiny_config, time_budget=1e-3)  # any epoch overruns it: the schedule shrinks to 1 epoch
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 1
    import json

    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 1
    w = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
    assert w["epoch"] == 1 and set(w["model"]) == set(ck["ema"])
    assert "schedule set to 1 epochs" in (run / "train.log").read_text()


def test_fit_epochs_uses_mean_epoch_time_after_the_first():
    from facelite.train.trainer import _fit_epochs

    assert _fit_epochs(100.0, 10.0, [10.0], 1) == 1 + 9
    assert _fit_epochs(100.0, 14.0, [10.0, 2.0, 2.0], 3) == 3 + 43
    assert _fit_epochs(10.0, 50.0, [50.0], 1) == 1  # over budget: stop after the epochs done


def test_sampler_order_depends_on_seed_and_epoch_only():
    from facelite.train.trainer import EpochSampler

    s = EpochSampler(10, seed=3)
    first = list(s)
    assert sorted(i for _, i in first) == list(range(10)) and all(e == 0 for e, _ in first)
    assert list(s) == first
    s.epoch = 1
    second = list(s)
    assert [i for _, i in second] != [i for _, i in first] and all(e == 1 for e, _ in second)


def test_config_overrides():
    from facelite.train.config import apply_overrides

    cfg = Config()
    cfg.train.warmup_epochs = 2  # as a TOML file may give it (int)
    apply_overrides(cfg, ["train.warmup_epochs=0.5", "train.epochs=7", "train.lr=1", "data.crop_scales=[0.5, 1.0]", "train.device=cuda",
                          "data.train_labels=x/label.txt", "train.bf16=false"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.data.crop_scales) == (7, 1.0, [0.5, 1.0])
    assert (cfg.train.device, cfg.data.train_labels, cfg.train.bf16) == ("cuda", "x/label.txt", False)
    for bad in ["epochs=3", "train.nope=1", "train.epochs=abc", "optim.lr=1"]:
        with pytest.raises(ValueError):
            apply_overrides(cfg, [bad])


def test_init_from_weights_and_distil_from_a_teacher(tiny_config, tmp_path):
    first = train(tiny_config, stop_after=1)
    cfg = tiny_config
    cfg.train.run_dir = str(tmp_path / "student")
    cfg.model.init_weights = str(first / "weights.pt")
    cfg.model.teacher = str(first / "weights.pt")
    run = train(cfg, stop_after=1)
    log = (run / "train.log").read_text()
    assert "initialised from" in log and "distilling from" in log and "kd_cls" in log
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert np.isfinite(float(rows[0]["total"]))
    # the teacher is the student's own start, so the terms are small but not zero
    assert float(rows[0]["kd_cls"]) > 0 and float(rows[0]["kd_landmarks"]) > 0
    parts = sum(float(rows[0][k]) for k in ("cls", "landmarks")) + 2 * float(rows[0]["box"])
    assert float(rows[0]["total"]) > parts  # the total includes the distillation terms


@pytest.mark.shared
def test_distil_from_the_retinaface_peer_in_the_data_workers(tiny_config):
    tiny_config.model.teacher = "retinaface"
    tiny_config.train.workers = 1  # the ONNX teacher runs in (and is pickled to) the worker
    run = train(tiny_config, stop_after=1)
    assert "distilling from retinaface (ONNX" in (run / "train.log").read_text()
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert np.isfinite(float(rows[0]["total"]))


@pytest.mark.shared
def test_feature_distillation_run_logs_its_term_and_resumes_with_its_adapter(tiny_config):
    tiny_config.model.teacher = "retinaface"
    tiny_config.train.distill_features = 1.0
    tiny_config.data.image_size = 96  # the teacher's features need H, W multiples of 32
    run = train(tiny_config, stop_after=1)
    assert "feature weight 1" in (run / "train.log").read_text()
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert float(rows[0]["kd_features"]) > 0
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert set(ck["adapter"]) == {f"convs.{i}.{k}" for i in range(3) for k in ("weight", "bias")}
    assert len(ck["optimizer"]["param_groups"]) == 3
    train(tiny_config)  # resumes epoch 2 with the adapter and its optimizer state
    assert [r["epoch"] for r in csv.DictReader((run / "losses.csv").open())] == ["1", "2"]
    tiny_config.model.teacher = ""
    with pytest.raises(ValueError, match="distill_features needs model.teacher"):
        train(tiny_config)


def test_distill_loss_is_zero_when_student_equals_teacher():
    from facelite.train.loss import distill_loss

    g = torch.Generator().manual_seed(0)
    logits, lmk = torch.randn(2, 6, 2, generator=g), torch.randn(2, 6, 10, generator=g)
    labels = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]])
    mask = torch.tensor([[True, False, False, False, False, False], [False] * 6])
    same = distill_loss(logits, lmk, logits, lmk, labels, mask)
    assert float(same["cls"]) == pytest.approx(0.0, abs=1e-6) and float(same["landmarks"]) == 0.0
    diff = distill_loss(logits, lmk, logits.flip(-1), lmk + 1, labels, mask)
    assert float(diff["cls"]) > 0.1
    # landmarks: only the 2 positives without labelled landmarks count, each |1| error -> 0.5 per value x 10
    assert float(diff["landmarks"]) == pytest.approx(5.0)


def test_trainable_prefixes_freeze_the_rest(tiny_config, tmp_path):
    first = train(tiny_config, stop_after=1)
    cfg = tiny_config
    cfg.train.run_dir = str(tmp_path / "heads")
    cfg.model.init_weights = str(first / "weights.pt")
    cfg.train.trainable = ["lmk_heads"]
    cfg.train.ema_decay = 0.0
    run = train(cfg, stop_after=1)
    before = torch.load(first / "weights.pt", map_location="cpu", weights_only=True)["model"]
    after = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)["model"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("lmk_heads") for k in changed)  # BN statistics untouched too
    cfg.train.trainable = ["nope"]
    cfg.train.run_dir = str(tmp_path / "bad")
    with pytest.raises(ValueError, match="matches no parameter"):
        train(cfg)


def test_pack_keeps_landmark_order(tmp_path):
    from facelite.evaluation.landmarks import read_landmarks_file
    from facelite.train.pack import landmark_line

    pts = np.arange(10, dtype=np.float32).reshape(5, 2)
    (tmp_path / "landmarks.txt").write_text(landmark_line("a.jpg", pts) + "\n")
    _, back = read_landmarks_file(tmp_path / "landmarks.txt")
    np.testing.assert_allclose(back[0], pts)


def test_pack_is_a_self_contained_shared_folder(tiny_config, tmp_path, monkeypatch):
    """A recipe runs on its pack with the printed overrides: same faces, same image sizes, and the
    RetinaFace teacher the recipe names is in the pack."""
    import dataclasses
    import gzip

    from facelite.train.config import apply_overrides
    from facelite.train.pack import pack
    from facelite.train.teachers import RETINAFACE_PATH
    from facelite.train.trainer import load_samples

    shared = tmp_path / "shared"
    (shared / RETINAFACE_PATH).parent.mkdir(parents=True)
    (shared / RETINAFACE_PATH).write_bytes(b"teacher bytes")
    monkeypatch.setenv("FACELITE_SHARED", str(shared))
    tiny_config.model.teacher = "retinaface"
    before = load_samples(tiny_config)

    out = tmp_path / "pack"
    sets = pack([tiny_config], out, quality=60)
    assert (out / RETINAFACE_PATH).read_bytes() == b"teacher bytes"
    labels = out / "data/widerface/train/label.txt"
    labels.write_bytes(gzip.decompress((out / "data/widerface/train/label.txt.gz").read_bytes()))
    monkeypatch.setenv("FACELITE_SHARED", str(out))
    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data))
    apply_overrides(cfg, sets)
    after = load_samples(cfg)
    assert len(after) == len(before) == 4
    for a, b in zip(before, after):
        assert str(b.path).endswith(".webp") and str(b.path).startswith(str(out))
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.01)
        assert cv2.imread(str(a.path)).shape == cv2.imread(str(b.path)).shape


def test_training_curves_plots(tiny_config, tmp_path):
    pytest.importorskip("matplotlib")
    from facelite.train.curves import plot_run, plot_stages

    run = train(tiny_config, stop_after=1)
    for out in (plot_run(run, tmp_path / "run.png"),
                plot_stages([("a", run / "losses.csv"), ("b", run / "losses.csv")], tmp_path / "stages.png")):
        img = cv2.imread(str(out))
        assert img is not None and img.shape[0] > 100 and img.std() > 0


def test_augment_preview_with_overrides(tiny_config, tmp_path):
    from facelite.cli import main

    d = tiny_config.data
    toml = tmp_path / "tiny.toml"
    toml.write_text(f'[model]\nalpha = 0.35\n[data]\ntrain_labels = "{d.train_labels}"\n'
                    f'train_images = "{d.train_images}"\npaste_prob = 0.0\nimage_size = 320\n')
    out = tmp_path / "preview.png"
    assert main(["augment-preview", "--config", str(toml), "--out", str(out), "-n", "2",
                 "--set", "data.image_size=64"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == (64, 4 * 64, 3)  # one row of 4 tiles (2 samples + 2 blank), 64 px each
    assert grid[:, :128].max() > 0 and grid[:, 128:].max() == 0


def test_csv_log_of_an_older_run_gets_the_new_columns_on_resume(tmp_path):
    from facelite.train.trainer import LOSS_COLUMNS, ensure_csv_header

    path = tmp_path / "losses.csv"
    path.write_text("epoch,step,lr,total,cls,box,landmarks,images_per_s,seconds\n"
                    "1,71,0.001,107.1,3.48,3.57,14.56,4.16,546.5\n2,142,0.002,21.6,2.13,2.13,5.39,5.38,422.2\n")
    ensure_csv_header(path, LOSS_COLUMNS)
    rows = list(csv.DictReader(path.open()))
    assert tuple(rows[0]) == LOSS_COLUMNS
    assert [r["total"] for r in rows] == ["107.1", "21.6"] and [r["seconds"] for r in rows] == ["546.5", "422.2"]
    assert rows[0]["kd_cls"] == "" and rows[1]["kd_landmarks"] == ""
    ensure_csv_header(path, LOSS_COLUMNS)  # already current: unchanged
    assert len(list(csv.DictReader(path.open()))) == 2

    other = tmp_path / "metrics.csv"
    other.write_text("a,b\n1,2\n")
    ensure_csv_header(other, ("epoch", "easy"))
    assert other.read_text() == "epoch,easy\n"
    assert (tmp_path / "metrics.old1.csv").read_text() == "a,b\n1,2\n"


def test_curves_draw_distillation_terms_only_where_logged():
    from facelite.train.curves import _loss_keys

    base = {"total": "1", "cls": "1", "box": "1", "landmarks": "1"}
    assert _loss_keys([base]) == ["total", "cls", "box", "landmarks"]
    assert _loss_keys([base | {"kd_cls": "0", "kd_landmarks": "0"}]) == ["total", "cls", "box", "landmarks"]
    assert _loss_keys([base | {"kd_cls": "", "kd_landmarks": ""}, base | {"kd_cls": "2.5", "kd_landmarks": "0.1"}]) \
        == ["total", "cls", "box", "landmarks", "kd_cls", "kd_landmarks"]


def test_extra_sets_weights_and_teacher_ignore_regions(tiny_config, tmp_path, monkeypatch):
    """A second set (weight 2, not exhaustive): its images are drawn twice per epoch, and the
    (stubbed) teacher's face that no label covers becomes an ignore row of its samples."""
    import facelite.train.teacher_cache as tc
    from facelite.train.teacher_cache import TeacherRun
    from facelite.train.trainer import load_sources

    extra = tmp_path / "extra.txt"
    extra.write_text((tmp_path / "label.txt").read_text())  # the same 4 images, another set
    tiny_config.data.extra_sets = [{"labels": str(extra), "images": tiny_config.data.train_images, "weight": 2.0,
                                    "exhaustive": False}]
    tiny_config.data.teacher_ignore = "scrfd"
    labelled = [s.boxes[0] for s in load_sources(Config(data=DataConfig(
        train_labels=str(extra), train_images=tiny_config.data.train_images)))[0].samples]

    def fake(samples, teacher, threads=1, show_progress=True):
        dets = []
        for _s, box in zip(samples, labelled):
            boxes = np.array([box, [90, 50, 110, 70], [0, 70, 12, 84]], np.float32)  # labelled, sure, unsure
            dets.append((boxes, np.array([0.9, 0.8, 0.3], np.float32), np.zeros((3, 5, 2), np.float32)))
        return TeacherRun(dets, len(samples), 0.0)

    monkeypatch.setattr(tc, "teacher_detections", fake)
    sources = load_sources(tiny_config)
    assert [len(s.samples) for s in sources] == [4, 4]
    assert all(not s.ignore.any() for s in sources[0].samples)  # exhaustive: untouched
    for s in sources[1].samples:
        assert s.ignore.tolist() == [False, True]
        np.testing.assert_array_equal(s.boxes[1], [90, 50, 110, 70])
    run = train(tiny_config, stop_after=1)
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == (4 + 2 * 4) // 2  # batch 2: 4 + 8 draws
    assert "draws per epoch: train 4, extra 8" in (run / "train.log").read_text()


def test_ignore_rows_survive_augmentation():
    from facelite.train.augment import AugmentConfig, Labels, augment, hflip, mosaic

    rng = np.random.default_rng(0)
    img = np.full((100, 100, 3), 90, np.uint8)
    lab = Labels(np.array([[10, 10, 40, 40], [60, 60, 90, 90]], np.float32), np.zeros((2, 5, 2), np.float32),
                 np.zeros(2, bool), np.array([False, True]))
    _, flipped = hflip(img, lab)
    assert flipped.ignore.tolist() == [False, True]
    np.testing.assert_array_equal(flipped.boxes[1], [10, 60, 40, 90])
    cfg = AugmentConfig(size=64, crop_scales=(1.0,), photometric=False, flip_prob=0.0)
    _, out = augment(img, lab, cfg, rng)
    assert out.ignore.tolist() == [False, True]
    _, mixed = mosaic([(img, lab)] * 4, AugmentConfig(size=64, crop_scales=(1.0,)), rng)
    assert len(mixed) == len(mixed.ignore) and mixed.ignore.any() and not mixed.ignore.all()


def test_pack_carries_extra_sets_with_their_ignore_regions(tiny_config, tmp_path, monkeypatch):
    """Extra sets are packed with the teacher's ignore regions baked in (COCO crowd faces), so the
    packed recipe needs no teacher: the same faces, regions and landmarks come back."""
    import dataclasses

    import facelite.train.teacher_cache as tc
    from facelite.train.config import apply_overrides
    from facelite.train.pack import pack
    from facelite.train.teacher_cache import TeacherRun
    from facelite.train.trainer import load_sources

    monkeypatch.setenv("FACELITE_SHARED", str(tmp_path / "shared"))
    extra = tmp_path / "extra.txt"
    extra.write_text((tmp_path / "label.txt").read_text())
    tiny_config.data.extra_sets = [{"labels": str(extra), "images": tiny_config.data.train_images, "weight": 1.5,
                                    "exhaustive": False}]
    tiny_config.data.teacher_ignore = "scrfd"
    monkeypatch.setattr(tc, "teacher_detections", lambda samples, teacher, threads=1, show_progress=True: TeacherRun(
        [(np.array([[90, 50, 110, 70]], np.float32), np.array([0.8], np.float32), np.zeros((1, 5, 2), np.float32))
         for _ in samples], 0, 0.0))
    before = load_sources(tiny_config)[1].samples
    out = tmp_path / "pack"
    sets = pack([tiny_config], out, quality=60, max_side=64)  # 128 x 96 images shrink by 2
    extra_set = next(s for s in sets if s.startswith("data.extra_sets="))
    assert " " not in extra_set  # passes through scripts/train_gpu.sh's EXTRA unquoted
    monkeypatch.setenv("FACELITE_SHARED", str(out))
    cfg = dataclasses.replace(tiny_config, data=dataclasses.replace(tiny_config.data))
    apply_overrides(cfg, [extra_set, "data.teacher_ignore="])
    (src,) = load_sources(cfg)[1:]
    assert src.weight == 1.5 and src.exhaustive
    for a, b in zip(before, src.samples):
        assert str(b.path).startswith(str(out)) and b.ignore.tolist() == a.ignore.tolist() == [False, True]
        assert cv2.imread(str(b.path)).shape == (48, 64, 3)
        np.testing.assert_allclose(a.boxes / 2, b.boxes, atol=0.01)
        assert b.has_landmarks.tolist() == a.has_landmarks.tolist()
        np.testing.assert_allclose(a.landmarks[a.has_landmarks] / 2, b.landmarks[b.has_landmarks], atol=0.01)
