"""Batched tensor transforms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supernet.data import random_crop, random_hflip, resize, to_float
from supernet.errors import ConfigError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n=8, c=3, h=6, w=5, seed=0) -> torch.Tensor:
    # values 1..255 so that zero padding is distinguishable from content
    return torch.randint(1, 256, (n, c, h, w), generator=_gen(seed), dtype=torch.uint8)


def _offsets(out: torch.Tensor, images: torch.Tensor, padding: int) -> list[list[tuple]]:
    """For each sample, every (dy, dx) whose crop of the padded input equals the output."""
    padded = F.pad(images, (padding,) * 4)
    h, w = images.shape[-2:]
    span = range(2 * padding + 1)
    return [
        [
            (dy, dx)
            for dy in span
            for dx in span
            if torch.equal(out[i], p[:, dy : dy + h, dx : dx + w])
        ]
        for i, p in enumerate(padded)
    ]


def test_to_float_normalizes_per_channel():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = to_float(images, mean=(0.0, 0.1, 0.5), std=(1.0, 0.5, 0.25))
    assert out.dtype == torch.float32
    assert out.shape == (2, 3, 2, 2)
    expected = torch.tensor([0.0, (0.2 - 0.1) / 0.5, (1.0 - 0.5) / 0.25])
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    with pytest.raises(ConfigError, match="3 value"):
        to_float(images, (0.5,), (0.5,))
    with pytest.raises(ConfigError, match="uint8"):
        to_float(images.float(), (0.0,) * 3, (1.0,) * 3)


def test_random_crop_is_a_shifted_crop_of_padded_input():
    images = _images()
    out = random_crop(images, 2, _gen(0))
    assert out.shape == images.shape
    assert out.dtype == images.dtype
    matches = _offsets(out, images, 2)
    assert all(len(m) == 1 for m in matches), matches  # exactly one offset fits each sample
    assert len({m[0] for m in matches}) > 1  # offsets differ across the batch


def test_random_crop_covers_every_offset():
    images = _images(n=600, c=1, h=3, w=3)
    out = random_crop(images, 1, _gen(1))
    found = {m[0] for m in _offsets(out, images, 1)}
    assert found == {(dy, dx) for dy in range(3) for dx in range(3)}


def test_random_crop_seeded_and_padding_zero():
    images = _images()
    assert torch.equal(random_crop(images, 3, _gen(7)), random_crop(images, 3, _gen(7)))
    assert not torch.equal(random_crop(images, 3, _gen(7)), random_crop(images, 3, _gen(8)))
    assert random_crop(images, 0, _gen(0)) is images
    with pytest.raises(ConfigError, match="padding=-1"):
        random_crop(images, -1, _gen(0))


def test_transforms_leave_global_rng_alone():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    images = _images()
    random_hflip(random_crop(images, 2, _gen(0)), _gen(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_hflip():
    images = _images(n=200)
    assert torch.equal(random_hflip(images, _gen(0), p=1.0), torch.flip(images, dims=[-1]))
    assert torch.equal(random_hflip(images, _gen(0), p=0.0), images)
    out = random_hflip(images, _gen(0), p=0.5)
    flipped = torch.flip(images, dims=[-1])
    is_flipped = (out == flipped).flatten(1).all(1)
    is_same = (out == images).flatten(1).all(1)
    assert bool((is_flipped | is_same).all())
    assert 60 < int(is_flipped.sum()) < 140
    assert torch.equal(out, random_hflip(images, _gen(0), p=0.5))
    with pytest.raises(ConfigError, match=r"p=1\.5"):
        random_hflip(images, _gen(0), p=1.5)


def test_resize():
    x = torch.rand(2, 3, 28, 28)
    out = resize(x, 20)
    assert out.shape == (2, 3, 20, 20)
    assert out.dtype == torch.float32
    expected = F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)
    assert resize(x, 28) is x
    const = torch.full((1, 1, 8, 8), 0.25)
    torch.testing.assert_close(resize(const, 13), torch.full((1, 1, 13, 13), 0.25))
    u8 = torch.full((2, 1, 8, 8), 200, dtype=torch.uint8)
    assert torch.equal(resize(u8, 12), torch.full((2, 1, 12, 12), 200, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="resolution=0"):
        resize(x, 0)
