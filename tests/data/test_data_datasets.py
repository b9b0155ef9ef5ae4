"""Dataset discovery, loading and splitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supernet.data import (
    DATASETS,
    DEBIAN_FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    DatasetSplits,
    ImageDataset,
    fashion_mnist_dir,
    load_dataset,
    load_digits,
    load_fashion_mnist,
)
from supernet.errors import ConfigError, DataNotFoundError

HAVE_DEBIAN = all((DEBIAN_FASHION_MNIST_DIR / f).is_file() for f in FASHION_MNIST_FILES)


def _dataset(n=6, channels=1, **overrides) -> ImageDataset:
    fields = {
        "name": "toy",
        "images": torch.zeros(n, channels, 4, 4, dtype=torch.uint8),
        "labels": torch.arange(n) % 3,
        "num_classes": 3,
        "mean": (0.5,) * channels,
        "std": (0.25,) * channels,
        "augment": False,
        "pad": 0,
    }
    fields.update(overrides)
    return ImageDataset(**fields)


# ---- ImageDataset / DatasetSplits ---------------------------------------------------------


def test_image_dataset_len_and_subset():
    ds = _dataset(images=torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 4, 4))
    assert len(ds) == 6
    sub = ds.subset([4, 1])
    assert len(sub) == 2
    assert sub.images[:, 0, 0, 0].tolist() == [4, 1]
    assert sub.labels.tolist() == [1, 1]
    assert (sub.name, sub.mean, sub.std, sub.num_classes) == ("toy", (0.5,), (0.25,), 3)
    assert len(ds.subset(torch.tensor([], dtype=torch.long))) == 0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"images": torch.zeros(6, 1, 4, 4)}, "uint8"),
        ({"images": torch.zeros(6, 4, 4, dtype=torch.uint8)}, "uint8"),
        ({"labels": torch.zeros(6, dtype=torch.int32)}, "int64"),
        ({"labels": torch.zeros(5, dtype=torch.int64)}, "5 labels"),
        ({"labels": torch.full((6,), 3)}, "0..2"),
        ({"mean": (0.5, 0.5)}, "1 value"),
        ({"std": (0.0,)}, "positive"),
        ({"pad": -1}, "pad=-1"),
    ],
)
def test_image_dataset_validates(overrides, match):
    with pytest.raises(ConfigError, match=match):
        _dataset(**overrides)


def test_dataset_splits_properties_and_validation():
    splits = DatasetSplits(_dataset(channels=3), _dataset(2, channels=3), _dataset(3, channels=3))
    assert (splits.input_channels, splits.input_size, splits.num_classes) == (3, 4, 3)
    with pytest.raises(ConfigError, match="image shape"):
        DatasetSplits(_dataset(), _dataset(channels=3, mean=(0,) * 3, std=(1,) * 3), _dataset())


# ---- fashion_mnist_dir --------------------------------------------------------------------


def test_dir_found_via_env_flat_layout(tmp_path, monkeypatch, make_fake_fashion):
    directory = make_fake_fashion(tmp_path / "flat")
    monkeypatch.setenv("SUPERNET_DATA", str(directory))
    assert fashion_mnist_dir() == directory


def test_dir_found_via_env_subdirectory_layout(tmp_path, monkeypatch, make_fake_fashion):
    make_fake_fashion(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("SUPERNET_DATA", str(tmp_path / "data"))
    assert fashion_mnist_dir() == tmp_path / "data" / "fashion-mnist"


def test_explicit_root_beats_env(tmp_path, monkeypatch, make_fake_fashion):
    directory = make_fake_fashion(tmp_path / "root")
    monkeypatch.setenv("SUPERNET_DATA", str(tmp_path / "elsewhere"))
    assert fashion_mnist_dir(directory) == directory


def test_empty_dir_raises_with_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERNET_DATA", str(tmp_path))
    with pytest.raises(DataNotFoundError) as info:
        fashion_mnist_dir()
    message = str(info.value)
    assert "dataset-fashion-mnist" in message
    assert "SUPERNET_DATA" in message
    assert str(tmp_path) in message
    assert isinstance(info.value, FileNotFoundError)


def test_partial_files_are_not_enough(tmp_path, make_fake_fashion):
    directory = make_fake_fashion(tmp_path / "partial")
    (directory / FASHION_MNIST_FILES[3]).unlink()
    with pytest.raises(DataNotFoundError, match="partial"):
        fashion_mnist_dir(directory)


# ---- load_fashion_mnist on fake files -----------------------------------------------------


def test_fake_fashion_split_sizes_and_dtypes(fake_fashion):
    splits = load_fashion_mnist(val_size=20, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 20, 20)
    for ds in (splits.train, splits.val, splits.test):
        assert ds.images.dtype == torch.uint8
        assert ds.images.shape[1:] == (1, 28, 28)
        assert ds.labels.dtype == torch.int64
        assert (ds.name, ds.num_classes, ds.augment, ds.pad) == ("fashion-mnist", 10, True, 2)
    assert (splits.input_channels, splits.input_size, splits.num_classes) == (1, 28, 10)


def test_fake_fashion_train_val_disjoint_and_aligned(fake_fashion, image_ids):
    splits = load_fashion_mnist(val_size=20, seed=0)
    train_ids, val_ids = image_ids(splits.train.images), image_ids(splits.val.images)
    assert set(train_ids).isdisjoint(val_ids)
    assert sorted([*train_ids, *val_ids]) == list(range(100))
    assert sorted(image_ids(splits.test.images)) == list(range(1000, 1020))
    for ds in (splits.train, splits.val, splits.test):  # labels still match their images
        np.testing.assert_array_equal(ds.labels.numpy(), image_ids(ds.images) % 10)


def test_fake_fashion_split_is_seeded(fake_fashion, image_ids):
    a = load_fashion_mnist(val_size=20, seed=3)
    b = load_fashion_mnist(val_size=20, seed=3)
    c = load_fashion_mnist(val_size=20, seed=4)
    assert torch.equal(a.val.images, b.val.images)
    assert torch.equal(a.train.labels, b.train.labels)
    assert set(image_ids(a.val.images)) != set(image_ids(c.val.images))
    expected = np.random.default_rng(3).permutation(100)[:20]
    assert set(image_ids(a.val.images)) == set(expected.tolist())


def test_fake_fashion_stats_come_from_train(fake_fashion):
    splits = load_fashion_mnist(val_size=20, seed=0)
    x = splits.train.images.double() / 255
    assert splits.train.mean[0] == pytest.approx(x.mean().item(), abs=1e-9)
    assert splits.train.std[0] == pytest.approx(x.std(correction=0).item(), abs=1e-9)
    assert splits.test.mean == splits.train.mean


def test_cached_arrays_are_not_mutated_by_callers(fake_fashion):
    first = load_fashion_mnist(val_size=20)
    first.test.images.zero_()
    first.train.images.zero_()
    second = load_fashion_mnist(val_size=20)
    assert second.test.images.any()
    assert second.train.images.any()


@pytest.mark.parametrize("val_size", [-1, 100, 2.5, True])
def test_bad_val_size_raises(fake_fashion, val_size):
    with pytest.raises(ConfigError, match="val_size"):
        load_fashion_mnist(val_size=val_size)


def test_corrupt_fashion_file_raises(tmp_path, make_fake_fashion):
    directory = make_fake_fashion(tmp_path / "corrupt")
    target = directory / FASHION_MNIST_FILES[2]
    target.write_bytes(target.read_bytes()[:-30])
    with pytest.raises(ConfigError, match=str(directory)):
        load_fashion_mnist(directory)


@pytest.mark.skipif(not HAVE_DEBIAN, reason="needs apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.delenv("SUPERNET_DATA", raising=False)
    assert fashion_mnist_dir() == DEBIAN_FASHION_MNIST_DIR
    splits = load_fashion_mnist()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50_000, 10_000, 10_000)
    assert splits.train.images.shape == (50_000, 1, 28, 28)
    for ds in (splits.train, splits.val, splits.test):
        assert int(ds.labels.min()) == 0
        assert int(ds.labels.max()) == 9
        assert torch.bincount(ds.labels, minlength=10).min() > 0
    assert torch.bincount(splits.test.labels).tolist() == [1000] * 10
    assert splits.train.mean[0] == pytest.approx(0.2860, abs=2e-3)
    assert splits.train.std[0] == pytest.approx(0.3530, abs=2e-3)


# ---- digits and dispatch ------------------------------------------------------------------


def test_digits_splits():
    splits = load_digits()
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 1797
    assert sizes[1] == sizes[2] == round(1797 * 0.15)
    for ds in (splits.train, splits.val, splits.test):
        assert ds.images.dtype == torch.uint8
        assert ds.images.shape[1:] == (1, 8, 8)
        assert (ds.augment, ds.pad, ds.num_classes) == (False, 0, 10)
    all_images = torch.cat([splits.train.images, splits.val.images, splits.test.images])
    assert int(all_images.max()) == 255
    assert int(all_images.min()) == 0
    allowed = {round(k * 255 / 16) for k in range(17)}
    assert set(all_images.unique().tolist()) <= allowed
    assert (splits.input_channels, splits.input_size) == (1, 8)


def test_digits_seeded_and_disjoint():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.test.images, c.test.images)
    flat = [tuple(x.flatten().tolist()) for x in a.test.images]
    train = {tuple(x.flatten().tolist()) for x in a.train.images}
    # digits holds a few exact duplicates; almost all test images must be new to train
    assert sum(f in train for f in flat) < 5


@pytest.mark.parametrize(
    "kwargs",
    [{"val_fraction": -0.1}, {"test_fraction": 1.0}, {"val_fraction": 0.5, "test_fraction": 0.5}],
)
def test_digits_bad_fractions(kwargs):
    with pytest.raises(ConfigError, match="fraction"):
        load_digits(**kwargs)


def test_load_dataset_dispatch(fake_fashion):
    assert DATASETS == ("fashion-mnist", "digits")
    digits = load_dataset("digits", seed=5)
    assert torch.equal(digits.val.images, load_digits(seed=5).val.images)
    fashion = load_dataset("fashion-mnist", val_size=10)
    assert len(fashion.val) == 10


def test_load_dataset_unknown_name():
    with pytest.raises(ConfigError, match=r"'cifar10'.*fashion-mnist.*digits"):
        load_dataset("cifar10")


def test_load_dataset_bad_option():
    with pytest.raises(ConfigError, match="val_size"):
        load_dataset("digits", val_size=3)
