"""The same images as IDX files and as a PNG folder reach training as the same tensors.

This is the data-path half of issue 25's folder target (benches/folder_vs_idx.py trains both):
with ``image_size`` at the images' own size the folder run's splits, statistics and shuffled
batches equal the IDX run's bit for bit (PNG is lossless), so the two trainings can differ only
through the decoding path, not the data.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from benches.folder_vs_idx import VAL_SIZE, class_sorted, val_prefix, write_idx_dir, write_png_tree

from supernet.data import BatchLoader
from supernet.errors import ConfigError
from supernet.train import load_config
from supernet.train.data import load_run_dataset


def _split(rng, n, *, noise=True):
    """Class-sorted random images, or (``noise=False``, cheap to write) blank ones whose first
    pixels hold a unique id."""
    if noise:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    else:
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return class_sorted(images, rng.integers(0, 10, n).astype(np.uint8))


@pytest.fixture(scope="module")
def twin_files(tmp_path_factory):
    """(IDX directory, PNG root, splits): 60 train and 30 test images; the IDX val split holds
    the loader's 10,000 images, the folder's val/ its first 20 (class-sorted in both)."""
    tmp_path = tmp_path_factory.mktemp("twins")
    rng = np.random.default_rng(3)
    train, val, test = _split(rng, 60), _split(rng, VAL_SIZE, noise=False), _split(rng, 30)
    rng.shuffle(order := np.arange(VAL_SIZE))
    small_val, idx_val = val_prefix(val[0][order], val[1][order], 20)  # a val_limit of 20
    idx_dir = write_idx_dir(tmp_path / "idx", train, idx_val, test, compress=False)
    assert write_png_tree(tmp_path / "png", {"train": train, "val": small_val, "test": test}) == 110
    return idx_dir, tmp_path / "png", (train, small_val, test)


@pytest.fixture
def twin_datasets(twin_files, monkeypatch):
    """(IDX config, folder config, splits) over :func:`twin_files`."""
    idx_dir, png_root, splits = twin_files
    monkeypatch.setenv("SUPERNET_DATA", str(idx_dir))
    folder = load_config("smoke", overrides={"dataset": f"folder:{png_root}", "image_size": 28})
    return load_config("smoke"), folder, splits


def test_a_png_folder_at_native_size_gives_the_idx_runs_tensors(twin_datasets):
    idx_config, folder_config, (train, small_val, _) = twin_datasets
    a, b = load_run_dataset(idx_config), load_run_dataset(folder_config)
    assert len(a.train) == 60 and len(a.val) == VAL_SIZE and len(a.test) == 30
    assert np.array_equal(a.train.images[:, 0].numpy(), train[0])  # the IDX layout put them there
    for split in ("train", "test"):
        x, y = getattr(a, split), getattr(b, split)
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels), split
    assert b.input_size == 28 and a.train.mean == b.train.mean and a.train.std == b.train.std
    # the folder's val/ is the IDX val split's first 20 images (those a val_limit of 20 scores)
    assert torch.equal(a.val.images[:20], b.val.images)
    assert torch.equal(a.val.labels[:20], b.val.labels)
    assert np.array_equal(b.val.images[:, 0].numpy(), small_val[0]) and len(set(small_val[1])) > 5
    # the trainer's shuffled batches: same generator state, same tensors
    for augment in (False, True):  # True: both datasets' own augmentation is on
        batches = [
            BatchLoader(
                s.train,
                16,
                shuffle=True,
                augment=augment,
                generator=torch.Generator().manual_seed(7),
            )
            for s in (a, b)
        ]
        (xa, ya), (xb, yb) = next(iter(batches[0])), next(iter(batches[1]))
        assert torch.equal(ya, yb)
        assert torch.equal(xa, xb) is not augment  # pad-crop-flip vs random-resized-crop-flip


def test_without_image_size_a_folder_is_decoded_at_the_largest_resolution(twin_datasets):
    _, folder_config, _ = twin_datasets
    default = load_config("smoke", overrides={"dataset": folder_config.dataset})
    assert default.image_size is None and load_run_dataset(default).input_size == 32


def test_image_size_is_refused_for_a_built_in_dataset_and_must_be_positive():
    with pytest.raises(ConfigError, match=r"image_size = 28 applies to folder datasets only; "
                                          r"dataset = 'fashion-mnist'"):  # fmt: skip
        load_config("smoke", overrides={"image_size": 28})
    with pytest.raises(ConfigError, match=r"image_size = 0 must be null or an integer >= 1"):
        load_config("smoke", overrides={"dataset": "folder:/x", "image_size": 0})
