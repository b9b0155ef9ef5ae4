"""Image classification datasets held in memory as uint8 tensors.

Two datasets, neither downloaded at run time:

* ``fashion-mnist``: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, "Fashion-MNIST: a Novel
  Image Dataset for Benchmarking Machine Learning Algorithms", arXiv:1708.07747), read
  from IDX files installed by Debian's ``dataset-fashion-mnist`` or found via
  ``$SUPERNET_DATA``.
* ``digits``: scikit-learn's bundled 8x8 handwritten digits, for fast smoke runs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from supernet.data.idx import read_idx
from supernet.errors import ConfigError, DataNotFoundError

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "FOLDER_PREFIX",
    "DatasetSplits",
    "ImageDataset",
    "check_dataset_name",
    "fashion_mnist_dir",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
]

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DATASETS: tuple[str, ...] = ("fashion-mnist", "digits")
FOLDER_PREFIX = "folder:"
"""A dataset name ``folder:PATH`` is an image folder (see :mod:`supernet.data.folder`)."""
AUGMENTATIONS: tuple[str, ...] = ("crop-flip", "resized-crop-flip")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} of shape {tuple(value.shape)}"
    return type(value).__name__


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image set held in memory.

    Shapes: ``images`` uint8 [N, C, H, W] (pixel values 0..255), ``labels`` int64 [N]
    with values in 0..num_classes-1. ``mean``/``std`` hold C floats each: per-channel
    statistics of the images scaled to [0, 1]. ``augment`` says whether augmentation suits this
    dataset, and ``augmentation`` which: ``"crop-flip"`` (random crop after zero padding ``pad``
    pixels per side, then horizontal flip) or ``"resized-crop-flip"`` (the ImageNet recipe:
    random resized crop, then horizontal flip; see :func:`supernet.data.random_resized_crop`).

    Raises:
        ConfigError: wrong dtype or shape, mismatched lengths, labels out of range,
            mean/std of the wrong length, a non-positive std, a negative pad, or an unknown
            augmentation.
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    pad: int
    augmentation: str = "crop-flip"

    def __post_init__(self) -> None:
        img, lab = self.images, self.labels
        if not isinstance(img, torch.Tensor) or img.dtype != torch.uint8 or img.ndim != 4:
            raise ConfigError(
                f"dataset {self.name!r}: images must be a uint8 tensor [N, C, H, W], "
                f"got {_describe(img)}"
            )
        if not isinstance(lab, torch.Tensor) or lab.dtype != torch.int64 or lab.ndim != 1:
            raise ConfigError(
                f"dataset {self.name!r}: labels must be an int64 tensor [N], got {_describe(lab)}"
            )
        if lab.shape[0] != img.shape[0]:
            raise ConfigError(
                f"dataset {self.name!r}: {img.shape[0]} images but {lab.shape[0]} labels"
            )
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise ConfigError(f"dataset {self.name!r}: num_classes must be an int")
        if self.num_classes < 1:
            raise ConfigError(f"dataset {self.name!r}: num_classes={self.num_classes}, need >= 1")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
            raise ConfigError(
                f"dataset {self.name!r}: labels span {int(lab.min())}..{int(lab.max())}, "
                f"allowed 0..{self.num_classes - 1}"
            )
        channels = img.shape[1]
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(
                f"dataset {self.name!r}: mean {mean} and std {std} need {channels} value(s) each"
            )
        if any(not s > 0 for s in std):
            raise ConfigError(f"dataset {self.name!r}: std {std} must be positive")
        if isinstance(self.pad, bool) or not isinstance(self.pad, int) or self.pad < 0:
            raise ConfigError(f"dataset {self.name!r}: pad={self.pad!r}, need an int >= 0")
        if self.augmentation not in AUGMENTATIONS:
            raise ConfigError(
                f"dataset {self.name!r}: augmentation={self.augmentation!r}; allowed: "
                f"{', '.join(AUGMENTATIONS)}"
            )
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "augment", bool(self.augment))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageDataset:
        """Return a new dataset of the samples at ``indices`` (copied, in that order).

        Shapes: ``indices`` int [M] -> dataset of M samples; everything else is kept.

        Raises:
            IndexError: an index is out of range.
        """
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        return dataclasses.replace(self, images=self.images[idx], labels=self.labels[idx])


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """Train / validation / test splits of one dataset.

    Shapes: all three hold images [*, C, H, W] with the same C, H, W and class count.
    ``skipped``: files left out because they could not be decoded (image folders only).

    Raises:
        ConfigError: the splits disagree on image shape or number of classes.
    """

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ref = self.train
        for split in (self.val, self.test):
            if split.images.shape[1:] != ref.images.shape[1:]:
                raise ConfigError(
                    f"splits disagree on image shape: {tuple(ref.images.shape[1:])} vs "
                    f"{tuple(split.images.shape[1:])}"
                )
            if split.num_classes != ref.num_classes:
                raise ConfigError(
                    f"splits disagree on num_classes: {ref.num_classes} vs {split.num_classes}"
                )

    @property
    def input_channels(self) -> int:
        """Number of image channels C."""
        return int(self.train.images.shape[1])

    @property
    def input_size(self) -> int:
        """Native image height H in pixels."""
        return int(self.train.images.shape[2])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.train.num_classes


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images scaled to [0, 1], via histograms."""
    return stats_from_histograms(channel_histograms(images))


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """Per-channel pixel-value counts of uint8 images [N, C, H, W]: int64 [C, 256]."""
    return torch.stack(
        [torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])]
    )


def stats_from_histograms(
    histograms: torch.Tensor,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (pixels scaled to [0, 1]) from counts [C, 256]; a channel
    with zero variance gets std 1."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(histograms.shape[0]):
        counts = histograms[c].to(torch.float64)
        total = counts.sum().clamp_min(1.0)
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(max(var, 0.0) ** 0.5 or 1.0)  # a constant image set gets std 1
    return tuple(means), tuple(stds)


def _make_splits(
    name: str,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
    skipped: tuple[str, ...] = (),
    **meta,
) -> DatasetSplits:
    """Wrap (images [N, C, H, W] uint8, labels [N]) arrays per split; stats from train unless
    given as ``(mean, std)``."""
    tensors = {
        key: (
            torch.from_numpy(np.array(x, dtype=np.uint8)),
            torch.from_numpy(np.array(y, np.int64)),
        )
        for key, (x, y) in parts.items()
    }
    mean, std = _channel_stats(tensors["train"][0]) if stats is None else stats
    built = {
        key: ImageDataset(name, x, y, mean=mean, std=std, **meta) for key, (x, y) in tensors.items()
    }
    return DatasetSplits(**built, skipped=skipped)


def _fashion_file(directory: Path, name: str) -> Path | None:
    """``name`` (gzip) or its uncompressed twin in ``directory``, if either exists."""
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """Find the directory holding the four Fashion-MNIST IDX files.

    Looks in ``root`` if given, else in ``$SUPERNET_DATA`` if set, else in Debian's
    ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``). For
    ``root`` and ``$SUPERNET_DATA`` both the directory itself and its ``fashion-mnist/``
    subdirectory are tried. Files may be gzip-compressed (``*.gz``) or not.
    Dataset reference: Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747.

    Shapes: none (returns a path).

    Raises:
        DataNotFoundError: no candidate directory holds all four files; the message
            lists the places tried and how to install the data.
    """
    if root is not None:
        bases = [Path(root)]
    elif os.environ.get("SUPERNET_DATA"):
        bases = [Path(os.environ["SUPERNET_DATA"])]
    else:
        bases = []
    candidates = [p for b in bases for p in (b, b / "fashion-mnist")] or [DEBIAN_FASHION_MNIST_DIR]
    for directory in candidates:
        if all(_fashion_file(directory, f) is not None for f in FASHION_MNIST_FILES):
            return directory
    tried = ", ".join(str(c) for c in candidates)
    raise DataNotFoundError(
        f"Fashion-MNIST files {', '.join(FASHION_MNIST_FILES)} not found; looked in: {tried}. "
        "Fix: `apt-get install dataset-fashion-mnist` (installs them in "
        f"{DEBIAN_FASHION_MNIST_DIR}), or set SUPERNET_DATA to a directory holding those "
        "four files (or holding a fashion-mnist/ subdirectory with them)."
    )


@functools.lru_cache(maxsize=4)
def _decode_fashion(directory: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode the four IDX files once per directory (the gzip decode takes ~1 s)."""
    d = Path(directory)
    arrays = [read_idx(_fashion_file(d, f) or d / f) for f in FASHION_MNIST_FILES]
    train_x, train_y, test_x, test_y = arrays
    for x, y, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ConfigError(
                f"{d}: Fashion-MNIST {split} files hold images {x.dtype}{x.shape} and labels "
                f"{y.dtype}{y.shape}; expected uint8 [N, H, W] and [N]"
            )
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ConfigError(f"{d}: Fashion-MNIST {split} labels outside 0..9")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ConfigError(f"{d}: train images {train_x.shape[1:]} vs t10k {test_x.shape[1:]}")
    for a in arrays:
        a.setflags(write=False)  # shared by every later call: keep it immutable
    return train_x, train_y, test_x, test_y


def load_fashion_mnist(
    root: str | os.PathLike | None = None, *, val_size: int = 10_000, seed: int = 0
) -> DatasetSplits:
    """Load Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747) as splits.

    train = the 60,000 training images minus a validation subset of ``val_size`` drawn
    with ``np.random.default_rng(seed).permutation``; val = that subset; test = the
    10,000 t10k images. Decoded files are cached per directory in this process.
    mean/std are computed exactly on the train split (about 0.286 / 0.353).

    Shapes: images uint8 [N, 1, 28, 28] (0..255), labels int64 [N] in 0..9; with the
    defaults N = 50,000 / 10,000 / 10,000.

    Raises:
        DataNotFoundError: the files are missing (see ``fashion_mnist_dir``).
        ConfigError: ``val_size`` is not an int in 0..(train size - 1), or a file is corrupt.
    """
    directory = fashion_mnist_dir(root).resolve()
    train_x, train_y, test_x, test_y = _decode_fashion(str(directory))
    n = train_x.shape[0]
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < n:
        raise ConfigError(f"val_size={val_size!r}; allowed: an int in 0..{n - 1}")
    perm = np.random.default_rng(seed).permutation(n)
    train_idx, val_idx = np.sort(perm[val_size:]), np.sort(perm[:val_size])
    parts = {
        "train": (train_x[train_idx, None], train_y[train_idx]),
        "val": (train_x[val_idx, None], train_y[val_idx]),
        "test": (test_x[:, None], test_y),
    }
    return _make_splits("fashion-mnist", parts, num_classes=10, augment=True, pad=2)


def load_digits(
    *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> DatasetSplits:
    """Load scikit-learn's bundled 8x8 digits (1,797 images) as train/val/test splits.

    Pixel values 0..16 are scaled to uint8 0..255 (``round(v * 255 / 16)``). The split is
    a plain seeded permutation (``np.random.default_rng(seed)``): the first
    ``round(N * test_fraction)`` indices form test, the next ``round(N * val_fraction)``
    val, the rest train. No augmentation (digits must not be flipped), pad 0.

    Shapes: images uint8 [N, 1, 8, 8], labels int64 [N] in 0..9, N summing to 1,797.

    Raises:
        ConfigError: a fraction is outside [0, 1) or the two sum to 1 or more.
    """
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ConfigError(f"{label}={frac!r}; allowed: a number in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction}; must be below 1"
        )
    from sklearn.datasets import load_digits as sk_load_digits  # bundled, no download

    bunch = sk_load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    n = images.shape[0]
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    perm = np.random.default_rng(seed).permutation(n)
    split_idx = {
        "train": np.sort(perm[n_test + n_val :]),
        "val": np.sort(perm[n_test : n_test + n_val]),
        "test": np.sort(perm[:n_test]),
    }
    parts = {key: (images[idx], bunch.target[idx]) for key, idx in split_idx.items()}
    return _make_splits("digits", parts, num_classes=10, augment=False, pad=0)


_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "fashion-mnist": load_fashion_mnist,
    "digits": load_digits,
}


def check_dataset_name(name: object) -> str:
    """``name`` itself when it names a dataset: one of ``DATASETS`` or ``folder:PATH``.

    Raises:
        ConfigError: anything else (names the value and what is allowed).
    """
    if isinstance(name, str) and (
        name in _LOADERS or (name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX))
    ):
        return name
    raise ConfigError(
        f"dataset = {name!r}; choose from {', '.join(DATASETS)} or {FOLDER_PREFIX}PATH "
        "(an image folder PATH/CLASS/*.png|jpg|webp)"
    )


def load_dataset(name: str, **kwargs) -> DatasetSplits:
    """Load dataset ``name`` (one of ``DATASETS`` or ``folder:PATH``), passing ``kwargs`` to its
    loader (:func:`supernet.data.load_image_folder` for a folder; it needs ``size``).

    Shapes: see ``load_fashion_mnist`` ([N, 1, 28, 28]), ``load_digits`` ([N, 1, 8, 8]) and
    ``load_image_folder`` ([N, C, size, size]).

    Raises:
        ConfigError: unknown name, or a keyword argument that loader does not take.
        DataNotFoundError: the dataset's files are missing.
    """
    check_dataset_name(name)
    if name.startswith(FOLDER_PREFIX):
        from supernet.data.folder import load_image_folder  # folder.py imports this module

        loader = functools.partial(load_image_folder, name[len(FOLDER_PREFIX) :])
        signature = inspect.signature(load_image_folder)
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    else:
        loader = _LOADERS[name]
        signature = inspect.signature(loader)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"dataset {name!r} got bad options {sorted(kwargs)} ({exc}); "
            f"allowed: {', '.join(signature.parameters)}"
        ) from exc
    return loader(**kwargs)
