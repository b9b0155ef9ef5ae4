"""Target datasets of transfer learning: what a device collects and adapts to.

- ``digits``: scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes), upsampled
  bilinearly to the supernet's input size; the train / val / test split is a fixed seeded
  permutation (``load_digits(seed=split_seed)``: 70 / 15 / 15 %).
- ``folder:PATH``: any image folder ``PATH/CLASS/*.png|jpg``
  (:func:`supernet.data.load_image_folder`), resized to the input size; seeded stratified
  split. Its images must have the supernet's channel count unless ``convert_channels`` asks for
  a conversion.

Every target is normalized with the **source** dataset's per-channel mean and std — the
normalization the supernet was trained with — as TinyTL normalizes every target with the
ImageNet statistics of its pretrained network (Cai et al., NeurIPS'20, arXiv 2007.11622, Sec. 4.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from supernet.data import DatasetSplits, ImageDataset, list_image_folder, load_digits, resize
from supernet.data.folder import load_image_folder
from supernet.errors import ConfigError

__all__ = ["TARGETS", "TransferTarget", "load_target"]

TARGETS = ("digits", "folder:PATH")
"""Target names: ``digits`` or ``folder:`` followed by an image folder's path."""

FOLDER_PREFIX = "folder:"


@dataclass(frozen=True, eq=False)
class TransferTarget:
    """A target dataset ready for transfer: splits at the supernet's input size and channels,
    normalized like the supernet's training data.

    Shapes: every split holds images uint8 ``[N, input_channels, input_size, input_size]``.

    Attributes:
        name: ``digits`` or ``folder:PATH``.
        splits: train / val / test.
        class_names: one name per label (digits: ``"0"``..``"9"``; a folder: its class folders).
    """

    name: str
    splits: DatasetSplits
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.splits.num_classes

    @property
    def short_name(self) -> str:
        """A file-name-safe name: ``digits``, or the folder's base name."""
        if self.name.startswith(FOLDER_PREFIX):
            return Path(self.name[len(FOLDER_PREFIX) :]).resolve().name or "folder"
        return self.name


def _renormalize(
    splits: DatasetSplits, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> DatasetSplits:
    def fix(split: ImageDataset) -> ImageDataset:
        return dataclasses.replace(split, images=resize(split.images, size), mean=mean, std=std)

    return DatasetSplits(fix(splits.train), fix(splits.val), fix(splits.test), splits.skipped)


def load_target(
    name: str,
    *,
    input_size: int,
    input_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    convert_channels: bool = False,
    split_seed: int = 0,
) -> TransferTarget:
    """Load target ``name`` (one of :data:`TARGETS`) for a supernet that takes
    ``input_channels``-channel images of ``input_size`` pixels, normalized with ``mean``/``std``
    (the supernet's training statistics, in units of the [0, 1] pixel scale).

    Shapes: images uint8 ``[N, input_channels, input_size, input_size]``, labels int64 ``[N]``.

    Args:
        convert_channels: convert a folder's images to ``input_channels`` (grey ↔ RGB) instead of
            refusing them.
        split_seed: seed of the train / val / test split (fixed by default, whatever the
            training seed).

    Raises:
        ConfigError: an unknown target (the known ones are listed); ``digits`` for a supernet
            that does not take 1-channel images; a folder whose images have another channel
            count than the supernet (both counts named) without ``convert_channels``; an empty
            class folder (named) or fewer than 2 classes; ``mean``/``std`` not of
            ``input_channels`` values.
        DataNotFoundError: the folder does not exist.

    Reference: TinyTL (Cai et al., NeurIPS'20, arXiv 2007.11622), Sec. 4.1 (target datasets
    resized to the network's input, normalized with the pretrained network's statistics).
    """
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != input_channels or len(std) != input_channels:
        raise ConfigError(
            f"mean {mean} and std {std} need {input_channels} value(s) each (input_channels)"
        )
    if name == "digits":
        if input_channels != 1:
            raise ConfigError(
                f"target 'digits' has 1-channel images but the supernet takes {input_channels}"
                "-channel images"
            )
        splits = load_digits(seed=split_seed)
        classes = tuple(str(i) for i in range(splits.num_classes))
    elif name.startswith(FOLDER_PREFIX) and len(name) > len(FOLDER_PREFIX):
        root = Path(name[len(FOLDER_PREFIX) :])
        classes = tuple(list_image_folder(root))
        splits = load_image_folder(
            root,
            size=input_size,
            channels=input_channels if convert_channels else None,
            seed=split_seed,
        )
        if splits.input_channels != input_channels:
            raise ConfigError(
                f"target {name!r} has {splits.input_channels}-channel images but the supernet "
                f"takes {input_channels}-channel images; convert them with --convert-channels "
                "(convert_channels=True)"
            )
    else:
        raise ConfigError(f"target = {name!r} is not known; choose from {', '.join(TARGETS)}")
    return TransferTarget(name, _renormalize(splits, input_size, mean, std), classes)
