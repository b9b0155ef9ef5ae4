"""Streaming an image folder that does not fit in memory: worker processes decode, the main
process augments and normalizes batch-wise.

``torch.utils.data.DataLoader`` does the parallel part (worker processes, pinned memory, prefetch):
a maintained library beats a hand-written process pool here. Each worker decodes one file at a time
with :func:`supernet.data.read_image` into a uint8 square; a file that cannot be decoded comes back
as a gap that the collate function drops and reports, so a corrupt image never stops an epoch.
Random augmentation (the ImageNet random resized crop and flip) runs on whole batches in the
main process from one seeded generator, as :class:`supernet.data.BatchLoader` does, so it does
not depend on the number of workers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from supernet.data.datasets import channel_histograms, stats_from_histograms
from supernet.data.folder import RECIPES, UnreadableImageError, read_image
from supernet.data.transforms import random_hflip, random_resized_crop, to_float
from supernet.errors import ConfigError

__all__ = ["FolderStream", "StreamLoader", "stream_channel_stats"]

log = logging.getLogger(__name__)


class FolderStream(torch.utils.data.Dataset):
    """``(path, label)`` pairs decoded on demand (one file per ``__getitem__``).

    Shapes: item ``i`` is ``(image uint8 [C, size, size], label, "")``, or ``(None, label,
    path)`` when the file cannot be decoded.

    Raises:
        ConfigError: ``size`` < 1, ``channels`` not 1 or 3, or an unknown ``recipe``.
    """

    def __init__(
        self,
        items: Sequence[tuple[Path, int]],
        *,
        size: int,
        channels: int,
        recipe: str = "imagenet",
        train: bool = True,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"size = {size!r}; allowed: an int >= 1")
        if channels not in (1, 3):
            raise ConfigError(f"channels = {channels!r}; allowed: 1 or 3")
        if recipe not in RECIPES:
            raise ConfigError(f"recipe = {recipe!r}; allowed: {', '.join(RECIPES)}")
        self.items = list(items)
        self.size, self.channels, self.recipe, self.train = size, channels, recipe, train

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, str]:
        path, label = self.items[i]
        try:
            image = read_image(path, self.size, self.channels, recipe=self.recipe, train=self.train)
        except UnreadableImageError:
            return None, label, str(path)
        return torch.from_numpy(image), label, ""


def _collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    good = [(x, y) for x, y, _ in batch if x is not None]
    skipped = [p for x, _, p in batch if x is None]
    if good:
        images = torch.stack([x for x, _ in good])
    else:
        first = batch[0]
        images = torch.zeros((0, 1, 1, 1), dtype=torch.uint8) if first[0] is None else first[0]
    return images, torch.tensor([y for _, y in good], dtype=torch.int64), skipped


class StreamLoader:
    """Mini-batches of normalized float images streamed from files (one epoch per ``iter()``).

    The order is ``torch.randperm`` from ``generator`` when ``shuffle`` (drawn as the epoch
    starts); ``workers`` processes decode (0: in this process), with ``pin_memory`` batches are
    page-locked for an asynchronous copy to ``device``; ``augment`` applies
    :func:`random_resized_crop` then :func:`random_hflip` on the batch. Unreadable files are
    skipped with a warning naming each one, collected in ``skipped`` (a batch may then be
    smaller).

    Shapes: yields ``(x float32 [B, C, size, size] on device, y int64 [B])``.

    Raises:
        ConfigError: ``batch_size`` < 1, ``workers`` < 0, or mean/std not C values.
    """

    def __init__(
        self,
        stream: FolderStream,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool,
        augment: bool,
        workers: int = 2,
        pin_memory: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}; allowed: an int >= 1")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers={workers!r}; allowed: an int >= 0")
        if len(mean) != stream.channels or len(std) != stream.channels:
            raise ConfigError(f"mean {tuple(mean)} / std {tuple(std)} need {stream.channels} "
                              "value(s) each")  # fmt: skip
        self.stream, self.batch_size = stream, batch_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.shuffle, self.augment, self.workers = bool(shuffle), bool(augment), workers
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self.generator = generator or torch.Generator().manual_seed(0)
        self.device = torch.device(device)
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return math.ceil(len(self.stream) / self.batch_size)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Decoded uint8 batches ``([B, C, size, size], [B])`` of one epoch, not augmented."""
        n = len(self.stream)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        loader = torch.utils.data.DataLoader(
            self.stream,
            batch_size=self.batch_size,
            sampler=order.tolist(),
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            collate_fn=_collate,
            prefetch_factor=4 if self.workers else None,
        )
        for images, labels, skipped in loader:
            for path in skipped:
                log.warning("skipping image %r: it cannot be decoded", path)
            self.skipped += skipped
            if len(labels):
                yield images, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.batches():
            x = images.to(self.device, non_blocking=self.pin_memory)
            if self.augment:
                x = random_hflip(random_resized_crop(x, self.generator), self.generator)
            yield to_float(x, self.mean, self.std), labels.to(self.device)


def stream_channel_stats(loader: StreamLoader) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (pixels scaled to [0, 1]) over one pass of ``loader``.

    Computed once per run and saved with it, so later commands need not read the images again.
    Histograms are summed batch by batch, so memory stays at one batch.

    Raises:
        ConfigError: the loader yields no readable image.
    """
    counts = None
    for images, _ in loader.batches():
        batch = channel_histograms(images)
        counts = batch if counts is None else counts + batch
    if counts is None:
        raise ConfigError("no readable image to compute mean/std from")
    return stats_from_histograms(counts)
