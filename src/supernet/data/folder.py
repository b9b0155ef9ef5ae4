"""Labelled images from a folder tree: one sub-folder per class, PNG / JPEG / WebP inside.

Two layouts:

* ``ROOT/CLASS/*`` — split into train / val / test here, seeded and stratified: within each class
  (in sorted class order) a permutation drawn from one ``np.random.default_rng(seed)`` puts
  ``round(n · test_fraction)`` images in test, ``round(n · val_fraction)`` in val and the rest
  in train.
* ``ROOT/train/CLASS/*`` with optional ``ROOT/val/CLASS/*`` and ``ROOT/test/CLASS/*`` (the
  ImageNet layout) — the given sub-trees are used as they are; a missing val or test split is
  carved out of train the same stratified way.

Images are decoded with Pillow (installed with matplotlib). Class labels follow the sorted
class-folder names of train. An image Pillow cannot decode is skipped with a warning naming the
file and listed in :attr:`DatasetSplits.skipped`, never an error mid-way; files with another
suffix are ignored with a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supernet.data.datasets import DatasetSplits, _make_splits
from supernet.errors import ConfigError, DataNotFoundError

__all__ = [
    "EVAL_CROP_FRACTION",
    "IMAGE_EXTENSIONS",
    "RECIPES",
    "FolderIndex",
    "UnreadableImageError",
    "index_image_folder",
    "list_image_folder",
    "load_image_folder",
    "read_image",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
SPLITS = ("train", "val", "test")
RECIPES = ("stretch", "imagenet")
EVAL_CROP_FRACTION = 0.875
"""ImageNet evaluation: resize the shorter side to size / 0.875, then centre-crop size x size."""
_CHANNEL_MODES = {1: "L", 3: "RGB"}
_MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 1, "RGB": 3, "RGBA": 3,
                  "CMYK": 3, "YCbCr": 3, "P": 3}  # fmt: skip


class UnreadableImageError(ConfigError):
    """An image file Pillow cannot decode (the message names the file)."""


@dataclass(frozen=True)
class FolderIndex:
    """The files of an image folder, assigned to splits before any image is decoded.

    ``splits[name]`` holds ``(path, label)`` pairs for ``"train"``, ``"val"`` and ``"test"``;
    ``layout`` is ``"class-folders"`` or ``"split-folders"``; ``ignored`` lists files whose
    suffix is not one of :data:`IMAGE_EXTENSIONS`.
    """

    root: Path
    classes: tuple[str, ...]
    splits: dict[str, tuple[tuple[Path, int], ...]]
    layout: str
    ignored: tuple[Path, ...]


def _class_files(root: Path, *, need_two: bool) -> tuple[dict[str, list[Path]], list[Path]]:
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {str(root)!r} is not a directory")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if need_two and len(classes) < 2:
        raise ConfigError(
            f"image folder {str(root)!r} holds {len(classes)} class folder(s); need at least 2 "
            "(ROOT/CLASS/*.png|jpg|webp)"
        )
    files, ignored = {}, []
    for folder in classes:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
        ignored += [p for p in entries if p.suffix.lower() not in IMAGE_EXTENSIONS]
        if not images:
            raise ConfigError(
                f"class folder {str(folder)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        files[folder.name] = images
    return files, ignored


def _is_split_layout(root: Path) -> bool:
    subdirs = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return "train" in subdirs and subdirs <= set(SPLITS)


def list_image_folder(root: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Class name → its image files (sorted), for every class folder (sorted by name).

    For the ``ROOT/train/CLASS`` layout the classes and files of ``ROOT/train``. Files whose
    suffix is not one of :data:`IMAGE_EXTENSIONS` (any case) are ignored; hidden entries
    (``.name``) are skipped.

    Raises:
        DataNotFoundError: ``root`` is not a directory.
        ConfigError: fewer than 2 class folders, or a class folder without images (named).
    """
    root = Path(root)
    if root.is_dir() and _is_split_layout(root):
        root = root / "train"
    return _class_files(root, need_two=True)[0]


def index_image_folder(
    root: str | os.PathLike[str],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> FolderIndex:
    """Assign every image file of ``root`` to train / val / test (no image is decoded).

    Raises:
        DataNotFoundError: ``root`` is not a directory.
        ConfigError: fewer than 2 classes, an empty class folder, a val/test class folder that
            train lacks (each named), a class with no image left for train, or a fraction
            outside [0, 1) (or the two summing to 1 or more).
    """
    for label, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac < 1:
            raise ConfigError(f"{label} = {frac!r}; allowed: a number in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(f"val_fraction + test_fraction = {val_fraction + test_fraction}; "
                          "must be below 1")  # fmt: skip
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {str(root)!r} is not a directory")
    split_layout = _is_split_layout(root)
    train_files, ignored = _class_files(root / "train" if split_layout else root, need_two=True)
    classes = tuple(train_files)
    given: dict[str, dict[str, list[Path]]] = {}
    for name in ("val", "test"):
        if split_layout and (root / name).is_dir():
            files, more = _class_files(root / name, need_two=False)
            ignored += more
            for cls in files:
                if cls not in train_files:
                    raise ConfigError(
                        f"class folder {str(root / name / cls)!r} has no counterpart in "
                        f"{str(root / 'train')!r}; train's classes: {', '.join(classes)}"
                    )
            given[name] = files
    fractions = {"test": 0.0 if "test" in given else test_fraction,
                 "val": 0.0 if "val" in given else val_fraction}  # fmt: skip
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[Path, int]]] = {k: [] for k in SPLITS}
    for label, (cls, paths) in enumerate(train_files.items()):
        n = len(paths)
        n_test, n_val = round(n * fractions["test"]), round(n * fractions["val"])
        if n - n_test - n_val < 1:
            raise ConfigError(f"class {cls!r} has {n} image(s): none left for the train split "
                              f"after {n_test} test and {n_val} val")  # fmt: skip
        order = rng.permutation(n)
        split_of = {int(i): "test" for i in order[:n_test]}
        split_of.update({int(i): "val" for i in order[n_test : n_test + n_val]})
        for i, path in enumerate(paths):
            out[split_of.get(i, "train")].append((path, label))
    for name, files in given.items():
        out[name] = [(p, classes.index(cls)) for cls, paths in files.items() for p in paths]
    for path in ignored:
        log.warning("ignoring %s: not an image file (%s)", path, ", ".join(IMAGE_EXTENSIONS))
    return FolderIndex(
        root,
        classes,
        {k: tuple(v) for k, v in out.items()},
        "split-folders" if split_layout else "class-folders",
        tuple(ignored),
    )


def read_image(
    path: Path, size: int, channels: int | None, *, recipe: str = "stretch", train: bool = True
) -> np.ndarray:
    """Decode one image to uint8 ``[C, size, size]``; converted to ``channels`` when given.

    ``recipe="stretch"`` resizes to ``size`` x ``size`` (bilinear, aspect ratio not kept).
    ``recipe="imagenet"`` keeps the aspect ratio: the shorter side is resized to ``size``
    (``train``; random resized crops are then drawn batch-wise from that square) or to
    ``size / 0.875`` (evaluation), then the centre ``size`` x ``size`` is cropped — the standard
    ImageNet evaluation transform (Szegedy et al., arXiv 1409.4842; as in Once-for-All). JPEGs
    are decoded at a reduced DCT scale when that still covers the target (``Image.draft``).
    Without ``channels`` an image keeps its own channel count (grey → 1, colour → 3, alpha
    dropped).

    Raises:
        UnreadableImageError: Pillow cannot open or decode the file, or its mode is unknown.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if channels is None:
                native = _MODE_CHANNELS.get(img.mode)
                if native is None:
                    raise UnreadableImageError(
                        f"image {str(path)!r} has the unsupported mode {img.mode!r}"
                    )
                mode = _CHANNEL_MODES[native]
            else:
                mode = _CHANNEL_MODES[channels]
            if recipe == "stretch":
                img.draft(mode, (size, size))
                img = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            else:
                short = size if train else round(size / EVAL_CROP_FRACTION)
                w, h = img.size
                scale = short / min(w, h)
                target = (max(short, round(w * scale)), max(short, round(h * scale)))
                img.draft(mode, target)
                img = img.convert(mode).resize(target, Image.Resampling.BILINEAR)
                left, top = (target[0] - size) // 2, (target[1] - size) // 2
                img = img.crop((left, top, left + size, top + size))
            array = np.array(img, dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UnreadableImageError(f"image {str(path)!r} cannot be read: {exc}") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    size: int,
    channels: int | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    recipe: str = "stretch",
    augment: bool = False,
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> DatasetSplits:
    """Decode an image folder (either layout, see the module) into in-memory splits.

    Every image is decoded once by :func:`read_image` with ``recipe``: train images with
    ``train=True``, val/test ones with ``train=False`` (the ImageNet centre crop) when
    ``augment`` — without the random resized crop in training every split is decoded alike, so
    train and evaluation see the same view. With ``channels=None`` all images must have
    the same channel count; ``channels=1`` or ``3`` converts each. mean/std are computed on the
    train split unless ``stats=(mean, std)`` is given (a run's saved statistics).
    ``augment=True`` marks the splits for the ImageNet training augmentation
    (``augmentation="resized-crop-flip"``), which :class:`supernet.data.BatchLoader` applies.
    Unreadable images are skipped with a warning (named) and listed in ``skipped``.

    Shapes: images uint8 ``[N, C, size, size]``, labels int64 ``[N]`` in ``0..classes-1`` (sorted
    class-folder names).

    Raises:
        DataNotFoundError: ``root`` is not a directory.
        ConfigError: fewer than 2 classes, an empty class folder, images with different channel
            counts (``channels=None``; both files named), a class whose every train image is
            unreadable, ``size`` < 1, ``channels`` not None/1/3, an unknown ``recipe``, or a bad
            fraction (see :func:`index_image_folder`).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"size = {size!r}; allowed: an int >= 1")
    if channels is not None and channels not in _CHANNEL_MODES:
        raise ConfigError(f"channels = {channels!r}; allowed: None, 1 or 3")
    if recipe not in RECIPES:
        raise ConfigError(f"recipe = {recipe!r}; allowed: {', '.join(RECIPES)}")
    index = index_image_folder(
        root, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    first: tuple[Path, int] | None = None
    skipped: list[str] = []
    arrays = {}
    for split, items in index.splits.items():
        images, labels = [], []
        for path, label in items:
            try:
                as_train = split == "train" or not augment  # eval crop only beside RRC
                image = read_image(path, size, channels, recipe=recipe, train=as_train)
            except UnreadableImageError as exc:
                log.warning("skipping %s", exc)
                skipped.append(str(path))
                continue
            if first is None:
                first = (path, image.shape[0])
            elif image.shape[0] != first[1]:
                raise ConfigError(
                    f"image {str(path)!r} has {image.shape[0]} channel(s) but {str(first[0])!r} "
                    f"has {first[1]}; pass channels=1 or 3 to convert them all"
                )
            images.append(image)
            labels.append(label)
        arrays[split] = (images, labels)
    if skipped:
        log.warning("%d unreadable image(s) skipped in %s", len(skipped), index.root)
    missing = set(range(len(index.classes))) - set(arrays["train"][1])
    if missing:
        names = ", ".join(repr(index.classes[i]) for i in sorted(missing))
        raise ConfigError(f"class {names} of {str(index.root)!r} has no readable train image")
    c = first[1] if first else 1
    parts = {
        key: (np.stack(x) if x else np.zeros((0, c, size, size), np.uint8), np.array(y, np.int64))
        for key, (x, y) in arrays.items()
    }
    return _make_splits(
        f"folder:{root}",
        parts,
        num_classes=len(index.classes),
        augment=augment,
        pad=0,
        augmentation="resized-crop-flip" if augment else "crop-flip",
        stats=stats,
        skipped=tuple(skipped),
    )
