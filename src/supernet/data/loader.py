"""A minimal, exactly reproducible mini-batch loader over an in-memory ImageDataset."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from supernet.data.datasets import ImageDataset
from supernet.data.transforms import random_crop, random_hflip, random_resized_crop, to_float
from supernet.errors import ConfigError

__all__ = ["BatchLoader"]


class BatchLoader:
    """Iterate over ``dataset`` in mini-batches of normalized float images.

    Each ``iter()`` is one epoch. With ``shuffle`` the order is
    ``torch.randperm(len(dataset), generator=generator)`` drawn when the epoch starts;
    augmentation (``random_crop(pad)`` then ``random_hflip``, or ``random_resized_crop`` then
    ``random_hflip`` for ``dataset.augmentation == "resized-crop-flip"``; only when ``augment``
    and ``dataset.augment``) draws from the same generator batch by batch. So an epoch is
    fully determined by the generator's state when iteration starts: save
    ``generator.get_state()`` before an epoch and restore it to replay that epoch.
    Without a generator a private one seeded 0 is used (never the global RNG).
    ``limit`` keeps only the first ``limit`` samples of the epoch's order.

    Sharding for data-parallel training: with ``shard=(rank, world_size)`` every process draws
    the same order and augments the same global batch of ``batch_size`` images, then keeps the
    images ``rank::world_size`` of it — so the processes together see exactly the batches one
    process would (the role of ``torch.utils.data.DistributedSampler``, but batch by batch, which
    keeps the global batch size and the augmentation identical whatever the world size).
    ``iterate(start_batch)`` skips the epoch's first batches (still drawing their augmentation
    from the generator), to resume an epoch in the middle.

    Shapes: yields ``(x, y)``: x float32 [B, C, H, W], normalized with the dataset's
    mean/std; y int64 [B]. B = ``batch_size`` except a smaller last batch unless
    ``drop_last``. ``len()`` is the number of batches per epoch.

    Raises:
        ConfigError: ``batch_size`` not an int >= 1, ``limit`` not None or an int >= 1, or a
            ``shard`` whose world size does not divide ``batch_size`` (or a bad rank).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool,
        augment: bool,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        limit: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r}; allowed: an int >= 1")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ConfigError(f"limit={limit!r}; allowed: None or an int >= 1")
        rank, world = shard
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(
                f"shard={shard!r}; allowed: (rank, world_size) with 0 <= rank < world"
            )
        if batch_size % world:
            raise ConfigError(
                f"batch_size={batch_size} is not divisible by the world size {world}; the global "
                "batch is split evenly across processes"
            )
        self.shard = (rank, world)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.augment = bool(augment) and dataset.augment
        self.drop_last = bool(drop_last)
        self.limit = limit
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator

    @property
    def num_samples(self) -> int:
        """Samples used per epoch: ``len(dataset)`` capped at ``limit``."""
        n = len(self.dataset)
        return n if self.limit is None else min(n, self.limit)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(0)

    def iterate(self, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch from batch ``start_batch`` on (the generator advances as for a full epoch)."""
        ds, g = self.dataset, self.generator
        n_total = len(ds)
        if self.shuffle:
            order = torch.randperm(n_total, generator=g, device=g.device).cpu()
        else:
            order = torch.arange(n_total)
        order = order[: self.num_samples].to(ds.images.device)
        rank, world = self.shard
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = ds.images[idx]
            if self.augment and ds.augmentation == "resized-crop-flip":
                x = random_hflip(random_resized_crop(x, g), g)
            elif self.augment:
                x = random_hflip(random_crop(x, ds.pad, g), g)
            if b < start_batch:
                continue
            if world > 1:
                x, idx = x[rank::world], idx[rank::world]
            yield to_float(x, ds.mean, ds.std), ds.labels[idx]
