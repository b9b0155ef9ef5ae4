"""BatchLoader: batching, shuffling, augmentation and exact reproducibility."""

from __future__ import annotations

import pytest
import torch

from supernet.data import BatchLoader, ImageDataset, to_float
from supernet.errors import ConfigError


def _dataset(n=10, augment=True) -> ImageDataset:
    """Sample i has label i and distinct random pixels."""
    g = torch.Generator().manual_seed(0)
    return ImageDataset(
        name="toy",
        images=torch.randint(1, 256, (n, 1, 6, 6), generator=g, dtype=torch.uint8),
        labels=torch.arange(n),
        num_classes=n,
        mean=(0.5,),
        std=(0.25,),
        augment=augment,
        pad=2,
    )


def _epoch(loader):
    return list(loader)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_number_of_batches_and_drop_last():
    ds = _dataset(10)
    loader = BatchLoader(ds, 3, shuffle=False, augment=False)
    assert len(loader) == 4
    assert [len(y) for _, y in loader] == [3, 3, 3, 1]
    dropping = BatchLoader(ds, 3, shuffle=False, augment=False, drop_last=True)
    assert len(dropping) == 3
    assert [len(y) for _, y in dropping] == [3, 3, 3]
    assert len(BatchLoader(ds, 5, shuffle=True, augment=False, drop_last=True)) == 2


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_once_and_pixels_match_labels(shuffle):
    ds = _dataset(10)
    batches = _epoch(BatchLoader(ds, 4, shuffle=shuffle, augment=False, generator=_gen(1)))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32
    assert x.shape == (10, 1, 6, 6)
    assert y.dtype == torch.int64
    assert sorted(y.tolist()) == list(range(10))
    assert (y.tolist() != list(range(10))) is shuffle
    torch.testing.assert_close(x, to_float(ds.images[y], ds.mean, ds.std))


def test_same_seed_same_batches_and_different_seed_differs():
    ds = _dataset(20)
    a = _epoch(BatchLoader(ds, 6, shuffle=True, augment=True, generator=_gen(5)))
    b = _epoch(BatchLoader(ds, 6, shuffle=True, augment=True, generator=_gen(5)))
    c = _epoch(BatchLoader(ds, 6, shuffle=True, augment=True, generator=_gen(6)))
    assert all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c, strict=True))


def test_restoring_generator_state_replays_the_epoch():
    g = _gen(9)
    loader = BatchLoader(_dataset(20), 6, shuffle=True, augment=True, generator=g)
    _epoch(loader)  # advance past epoch 0
    state = g.get_state()
    first = _epoch(loader)
    following = _epoch(loader)
    g.set_state(state)
    replay = _epoch(loader)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, replay, strict=True)
    )
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, following, strict=True))


def test_augment_only_when_dataset_allows():
    plain = _epoch(BatchLoader(_dataset(), 10, shuffle=False, augment=False))[0][0]
    aug = _epoch(BatchLoader(_dataset(), 10, shuffle=False, augment=True, generator=_gen(0)))
    assert aug[0][0].shape == plain.shape
    assert not torch.equal(aug[0][0], plain)
    no_aug_ds = _dataset(augment=False)
    off = _epoch(BatchLoader(no_aug_ds, 10, shuffle=False, augment=True, generator=_gen(0)))
    assert torch.equal(off[0][0], plain)


def test_limit_takes_a_prefix_of_the_permutation():
    ds = _dataset(10)
    loader = BatchLoader(ds, 3, shuffle=True, augment=False, generator=_gen(2), limit=7)
    assert len(loader) == 3
    y = torch.cat([b[1] for b in loader])
    assert y.tolist() == torch.randperm(10, generator=_gen(2))[:7].tolist()
    capped = BatchLoader(ds, 3, shuffle=False, augment=False, limit=50)
    assert capped.num_samples == 10
    assert len(capped) == 4


def test_no_generator_is_deterministic_and_leaves_global_rng():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = _epoch(BatchLoader(_dataset(), 4, shuffle=True, augment=True))
    b = _epoch(BatchLoader(_dataset(), 4, shuffle=True, augment=True))
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size_raises(batch_size):
    with pytest.raises(ConfigError, match=f"batch_size={batch_size!r}"):
        BatchLoader(_dataset(), batch_size, shuffle=False, augment=False)


@pytest.mark.parametrize("limit", [0, -1, 1.5])
def test_bad_limit_raises(limit):
    with pytest.raises(ConfigError, match=f"limit={limit!r}"):
        BatchLoader(_dataset(), 2, shuffle=False, augment=False, limit=limit)
