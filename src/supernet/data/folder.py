"""Labelled images from a folder tree: ``ROOT/CLASS/*.png|jpg|jpeg``, one sub-folder per class.

Images are decoded with Pillow (installed with matplotlib), resized to a square and held in memory
as uint8 like every other dataset of :mod:`supernet.data`. Class labels follow the sorted
sub-folder names. The split into train / val / test is seeded and stratified: within each class a
``np.random.default_rng(seed)`` permutation puts ``round(n · test_fraction)`` images in test,
``round(n · val_fraction)`` in val and the rest in train.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from supernet.data.datasets import DatasetSplits, _make_splits
from supernet.errors import ConfigError, DataNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "list_image_folder", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_CHANNEL_MODES = {1: "L", 3: "RGB"}
_MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 1, "RGB": 3, "RGBA": 3,
                  "CMYK": 3, "YCbCr": 3, "P": 3}  # fmt: skip


def list_image_folder(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Class name → its image files (sorted), for every sub-folder of ``root`` (sorted by name).

    Files whose suffix is not one of :data:`IMAGE_EXTENSIONS` (any case) are ignored; hidden
    folders (``.name``) are skipped.

    Raises:
        DataNotFoundError: ``root`` is not a directory.
        ConfigError: fewer than 2 class folders, or a class folder without images (named).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {str(root)!r} is not a directory")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ConfigError(
            f"image folder {str(root)!r} holds {len(classes)} class folder(s); need at least 2 "
            "(ROOT/CLASS/*.png|jpg)"
        )
    files = {}
    for folder in classes:
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            raise ConfigError(
                f"class folder {str(folder)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        files[folder.name] = images
    return files


def _read(path: Path, size: int, channels: int | None) -> np.ndarray:
    """One image as uint8 ``[C, size, size]``; converted to ``channels`` when given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if channels is None:
                native = _MODE_CHANNELS.get(img.mode)
                if native is None:
                    raise ConfigError(f"image {str(path)!r} has the unsupported mode {img.mode!r}")
                mode = _CHANNEL_MODES[native]
            else:
                mode = _CHANNEL_MODES[channels]
            img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"image {str(path)!r} cannot be read: {exc}") from exc
    array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    size: int,
    channels: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> DatasetSplits:
    """Read ``ROOT/CLASS/*.png|jpg|jpeg`` into seeded, stratified train / val / test splits.

    Every image is resized to ``size`` × ``size`` (bilinear, aspect ratio not kept). With
    ``channels=None`` images keep their own channel count (grey → 1, colour → 3; alpha is
    dropped), which must be the same for all of them; ``channels=1`` or ``3`` converts each image
    (Pillow ``convert("L")`` / ``convert("RGB")``). mean/std are computed on the train split; no
    augmentation (``augment=False``, ``pad=0``).

    Shapes: images uint8 ``[N, C, size, size]``, labels int64 ``[N]`` in ``0..classes-1`` (sorted
    class-folder names).

    Raises:
        DataNotFoundError: ``root`` is not a directory.
        ConfigError: fewer than 2 classes, an empty class folder, an unreadable image (each
            named), images with different channel counts (``channels=None``), a class with no
            image left for train, ``size`` < 1, ``channels`` not None/1/3, or a fraction outside
            [0, 1) (or the two summing to 1 or more).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size = {size!r}; allowed: an int >= 1")
    if channels is not None and channels not in _CHANNEL_MODES:
        raise ConfigError(f"channels = {channels!r}; allowed: None, 1 or 3")
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ConfigError(f"{label} = {frac!r}; allowed: a number in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction = {val_fraction + test_fraction}; "
                          "must be below 1")  # fmt: skip
    files = list_image_folder(root)
    rng = np.random.default_rng(seed)
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {k: ([], []) for k in
                                                            ("train", "val", "test")}  # fmt: skip
    first: tuple[Path, int] | None = None
    for label, (name, paths) in enumerate(files.items()):
        n = len(paths)
        n_test, n_val = round(n * test_fraction), round(n * val_fraction)
        if n - n_test - n_val < 1:
            raise ConfigError(f"class {name!r} has {n} image(s): none left for the train split "
                              f"after {n_test} test and {n_val} val")  # fmt: skip
        order = rng.permutation(n)
        split_of = {int(i): "test" for i in order[:n_test]}
        split_of.update({int(i): "val" for i in order[n_test : n_test + n_val]})
        for i, path in enumerate(paths):
            image = _read(path, size, channels)
            if first is None:
                first = (path, image.shape[0])
            elif image.shape[0] != first[1]:
                raise ConfigError(
                    f"image {str(path)!r} has {image.shape[0]} channel(s) but {str(first[0])!r} "
                    f"has {first[1]}; pass channels=1 or 3 to convert them all"
                )
            images, labels = parts[split_of.get(i, "train")]
            images.append(image)
            labels.append(label)
    c = first[1] if first else 1
    arrays = {
        key: (np.stack(x) if x else np.zeros((0, c, size, size), np.uint8), np.array(y, np.int64))
        for key, (x, y) in parts.items()
    }
    return _make_splits(f"folder:{root}", arrays, num_classes=len(files), augment=False, pad=0)
