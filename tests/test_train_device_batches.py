"""Training with ``train.device_batches``: image store, batch augmentation, torch matching and a
batched ONNX teacher in the trainer."""

import csv

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_train_trainer import write_tiny_set  # noqa: E402

from facelite.annotations import Sample  # noqa: E402
from facelite.train.config import Config, DataConfig, ModelConfig, TrainConfig  # noqa: E402
from facelite.train.trainer import train  # noqa: E402


@pytest.fixture
def tiny_config(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELITE_CACHE", str(tmp_path / "cache"))
    labels, root = write_tiny_set(tmp_path)
    return Config(
        model=ModelConfig(alpha=0.35, fpn_channels=16),
        data=DataConfig(train_labels=str(labels), train_images=str(root), image_size=64,
                        paste_prob=0.0, crop_scales=[0.6, 1.0], mosaic_prob=0.5),
        train=TrainConfig(epochs=1, batch_size=2, workers=0, threads=1, eval_every=0, warmup_epochs=0.5,
                          ema_warmup_steps=2, run_dir=str(tmp_path / "run"), device_batches=True),
    )


def test_two_steps_on_device_batches_then_the_store_is_reused(tiny_config, tmp_path):
    run = train(tiny_config)
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["epoch"] == 1 and ck["step"] == 2
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert np.isfinite(float(rows[0]["total"])) and float(rows[0]["box"]) > 0  # faces were matched
    log = (run / "train.log").read_text()
    assert "4 images" in log and "built in" in log
    assert list((tmp_path / "cache" / "stores").iterdir())
    tiny_config.train.epochs = 2
    train(tiny_config)  # resumes epoch 2 from the same store, not rebuilt
    assert "checked in" in (run / "train.log").read_text()


@pytest.mark.shared
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
@pytest.mark.parametrize("bound", [True, False])
def test_retinaface_teacher_on_the_batch_matches_the_per_image_teacher(tiny_config, device, bound):
    """One ONNX Runtime call on the batch (through I/O binding into torch tensors, or copied through
    host memory) gives the per-image teacher's outputs."""
    from facelite.train.batch_teacher import BatchTeacher
    from facelite.train.teachers import AnchorTeacher

    per_image = AnchorTeacher(features=True)
    imgs = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (3, 64, 96, 3), dtype=np.uint8))
    teacher = BatchTeacher(per_image, device)
    binds = teacher.bound  # on CUDA only with ONNX Runtime's CUDA provider
    teacher.bound = teacher.bound and bound
    got = teacher(imgs.to(device))
    assert teacher.bound == (binds and bound)  # no silent fallback
    want = [per_image(img) for img in imgs.numpy()]
    assert len(got) == 5 and all(g.device.type == device for g in got)
    for k in range(5):
        ref = np.stack([w[k] for w in want]).astype(np.float32)
        np.testing.assert_allclose(got[k].float().cpu().numpy(), ref, rtol=1e-3, atol=1e-3)
    if device == "cpu":
        assert binds


@pytest.mark.shared
def test_distil_on_device_batches_from_the_retinaface_peer(tiny_config):
    tiny_config.model.teacher = "retinaface"
    tiny_config.train.distill_features = 1.0
    tiny_config.data.image_size = 64
    run = train(tiny_config)
    rows = list(csv.DictReader((run / "losses.csv").open()))
    assert float(rows[0]["kd_cls"]) > 0 and float(rows[0]["kd_features"]) > 0


def test_pasted_crops_reach_the_targets_through_the_trainer(tiny_config, tmp_path, monkeypatch):
    """Landmark crops pasted on the device path: with the stored images' landmarks switched off,
    every anchor with a landmark target comes from a pasted crop."""
    from facelite.annotations import LandmarkCrop
    from facelite.train import trainer
    from facelite.train.device_batches import DeviceBatches

    crops = []
    for k in range(3):
        img = np.full((80, 80, 3), 40 + 60 * k, np.uint8)
        cv2.imwrite(str(tmp_path / f"crop{k}.png"), img)
        pts = np.array([[28, 35], [52, 35], [40, 48], [30, 60], [50, 60]], np.float32)
        crops.append(LandmarkCrop(tmp_path / f"crop{k}.png", pts, np.array([16, 16, 64, 72], np.float32), f"c{k}"))
    seen = {}

    def spy(*args, **kwargs):
        seen["batches"] = made = DeviceBatches(*args, **kwargs)
        return made

    monkeypatch.setattr(trainer, "load_paste_crops", lambda cfg: crops)
    monkeypatch.setattr("facelite.train.device_batches.DeviceBatches", spy)
    tiny_config.data.paste_prob = 1.0
    tiny_config.data.paste_max_size = 0.6
    run = train(tiny_config)
    assert np.isfinite(float(list(csv.DictReader((run / "losses.csv").open()))[0]["total"]))
    db = seen["batches"]
    assert len(db.augmenter.crops) == 3
    db.augmenter.store.has_landmarks[:] = False  # only the pasted faces have landmarks now
    n = 0
    for k in range(4):
        n += int(db.batch([0, 1, 2, 3], epoch=k)[4].sum())
    assert n > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_the_cpu_batches(tmp_path):
    """The same draws on CUDA and on the CPU: the same labels, images within interpolation noise."""
    from facelite.spec import default_spec
    from facelite.train.augment import AugmentConfig
    from facelite.train.device_batches import DeviceBatches
    from facelite.train.store import open_store

    rng = np.random.default_rng(0)
    samples = []
    for i in range(6):
        img = rng.integers(0, 255, (120 + 10 * i, 160, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
        xy = rng.uniform(0, 100, (5, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 50, (5, 2))], 1).astype(np.float32)
        samples.append(Sample(tmp_path / f"{i}.png", boxes, np.repeat(boxes[:, None, :2], 5, 1), rng.random(5) < 0.5,
                              rng.random(5) < 0.2))
    store = open_store(samples, 1000, tmp_path / "store")[0]
    aug = AugmentConfig(size=96, crop_scales=(0.5, 1.0, 1.5), mosaic_prob=0.5)
    cpu = DeviceBatches(store, aug, default_spec(0.35), "cpu").batch(list(range(6)), epoch=3)
    gpu = DeviceBatches(store, aug, default_spec(0.35), "cuda").batch(list(range(6)), epoch=3)
    assert (cpu[1] == gpu[1].cpu()).float().mean() > 0.999
    assert (cpu[0].float() - gpu[0].cpu().float()).abs().mean() < 1.0
    pos = (cpu[1] == 1) & (gpu[1].cpu() == 1)
    torch.testing.assert_close(cpu[2][pos], gpu[2].cpu()[pos], rtol=1e-4, atol=1e-4)


def test_prefetched_epoch_equals_the_plain_one(tmp_path):
    """The CUDA path's one-batch-ahead thread changes nothing but timing (run here on the CPU)."""
    from facelite import data_path
    from facelite.spec import default_spec
    from facelite.train.augment import AugmentConfig
    from facelite.train.device_batches import DeviceBatches
    from facelite.train.sources import SourceSampler
    from facelite.train.store import open_store

    s = Sample(data_path("astronaut.jpg"), np.array([[178, 59, 273, 178]], np.float32))
    store = open_store([s, s, s], 1000, tmp_path / "store")[0]
    db = DeviceBatches(store, AugmentConfig(size=64, crop_scales=(0.5, 1.0)), default_spec(0.35), "cpu")
    sampler = SourceSampler([3], [2.4], seed=1)  # 7 draws: 3 batches of 2, the last draw dropped
    plain = list(db.epoch(sampler, 2, prefetch=False))
    ahead = list(db.epoch(sampler, 2, prefetch=True))
    assert len(plain) == len(ahead) == 3
    for a, b in zip(plain, ahead):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert not torch.equal(plain[0][0], plain[1][0])  # different draws, different views
