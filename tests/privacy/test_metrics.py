"""PSNR / SSIM of known image pairs, batch pairing, and the install hint without scikit-image."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from supernet.privacy import MissingDependencyError, match_images, psnr, ssim, to_pixels


def _image(seed: int = 0, channels: int = 1) -> torch.Tensor:
    return torch.rand(channels, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 3])
def test_identical_images(channels):
    img = _image(channels=channels)
    assert psnr(img, img.clone()) == math.inf
    assert ssim(img, img.clone()) == pytest.approx(1.0)


def test_psnr_of_a_known_error_and_ssim_below_one():
    img = _image() * 0.8
    assert psnr(img, img + 0.1) == pytest.approx(20.0)  # MSE 0.01 → 10·log10(1/0.01)
    other = _image(1)
    assert ssim(img, other) < 0.5


def test_match_images_undoes_a_permutation():
    true = torch.stack([_image(s) for s in range(4)])
    recon = true[[2, 0, 3, 1]] + 0.01
    assert match_images(true, recon) == [1, 3, 0, 2]


def test_to_pixels_undoes_normalization_and_clips():
    x = torch.tensor([[[[0.0, 10.0]]]])
    assert to_pixels(x, (0.5,), (0.25,)).tolist() == [[[[0.5, 1.0]]]]


def test_missing_scikit_image_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'supernet\[privacy\]'"):
        psnr(_image(), _image(1))


def test_a_batch_is_not_an_image():
    from supernet.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"an image must be \[C, H, W\], got shape \(1, 1, 16, 16\)"
    ):
        psnr(_image()[None], _image()[None])
