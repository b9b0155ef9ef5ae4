"""Fixtures for supernet.data tests: tiny fake Fashion-MNIST IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from supernet.data import FASHION_MNIST_FILES, write_idx

N_TRAIN, N_TEST = 100, 20


def fake_images(n: int, start: int, seed: int) -> np.ndarray:
    """uint8 [n, 28, 28] whose first two pixels encode a unique id start..start+n-1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    ids = np.arange(start, start + n)
    images[:, 0, 0] = ids % 256
    images[:, 0, 1] = ids // 256
    return images


def _image_ids(images) -> np.ndarray:
    """Inverse of fake_images' id encoding, for images [N, 1, 28, 28]."""
    arr = np.asarray(images, dtype=np.int64)
    return arr[:, 0, 0, 0] + 256 * arr[:, 0, 0, 1]


def write_fake_fashion(directory: Path) -> Path:
    """Write four small IDX files (ids 0..99 train, 1000..1019 test; label = id % 10)."""
    directory.mkdir(parents=True, exist_ok=True)
    train = fake_images(N_TRAIN, 0, seed=1)
    test = fake_images(N_TEST, 1000, seed=2)
    arrays = [
        train,
        (np.arange(N_TRAIN) % 10).astype(np.uint8),
        test,
        (np.arange(1000, 1000 + N_TEST) % 10).astype(np.uint8),
    ]
    for name, array in zip(FASHION_MNIST_FILES, arrays, strict=True):
        write_idx(directory / name, array)
    return directory


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch) -> Path:
    """A directory of fake Fashion-MNIST files, pointed to by SUPERNET_DATA."""
    directory = write_fake_fashion(tmp_path / "fm")
    monkeypatch.setenv("SUPERNET_DATA", str(directory))
    return directory


@pytest.fixture
def image_ids():
    """Function decoding the unique id of each fake image: [N, 1, 28, 28] -> int64 [N]."""
    return _image_ids


@pytest.fixture
def make_fake_fashion():
    """Function writing fake Fashion-MNIST files into a directory: Path -> Path."""
    return write_fake_fashion
