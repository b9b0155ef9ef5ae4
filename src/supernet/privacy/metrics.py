"""Image similarity of a reconstruction to the true image: PSNR and SSIM (scikit-image), and the
pairing of reconstructed to true images of a batch (DLG recovers a batch in any order).

scikit-image is an optional dependency (``pip install 'supernet[privacy]'``): its SSIM is the
reference implementation of Wang et al. (2004), which we would not re-derive here.
"""

from __future__ import annotations

import numpy as np
import torch

from supernet.errors import ConfigError, SupernetError

__all__ = ["MissingDependencyError", "match_images", "psnr", "require_skimage", "ssim", "to_pixels"]

INSTALL_HINT = "pip install 'supernet[privacy]' (or pip install scikit-image)"


class MissingDependencyError(SupernetError, ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def require_skimage():
    """Import ``skimage.metrics``.

    Raises:
        MissingDependencyError: scikit-image is not installed (with the install command).
    """
    try:
        from skimage import metrics
    except ImportError as exc:
        raise MissingDependencyError(
            f"the privacy metrics need scikit-image, which is not installed: {INSTALL_HINT}"
        ) from exc
    return metrics


def to_pixels(images: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the input normalization and clip to the [0, 1] pixel scale.

    Shapes: ``[B, C, H, W]`` → same, float32 on the CPU; ``mean``/``std`` hold C values.
    """
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    return (images.detach().float().cpu() * s + m).clamp(0.0, 1.0)


def _hwc(image: torch.Tensor) -> np.ndarray:
    if image.ndim != 3:
        raise ConfigError(f"an image must be [C, H, W], got shape {tuple(image.shape)}")
    return image.detach().cpu().double().permute(1, 2, 0).numpy()


def psnr(true: torch.Tensor, reconstructed: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of ``reconstructed`` against ``true``, pixels in [0, 1]
    (``10 log10(1 / MSE)``); ``inf`` for identical images.

    Shapes: two ``[C, H, W]`` images.

    Raises:
        ConfigError: an image that is not 3-D.
        MissingDependencyError: scikit-image is missing.
    """
    metrics = require_skimage()
    a, b = _hwc(true), _hwc(reconstructed)
    if np.array_equal(a, b):
        return float("inf")
    return float(metrics.peak_signal_noise_ratio(a, b, data_range=1.0))


def ssim(true: torch.Tensor, reconstructed: torch.Tensor) -> float:
    """Structural similarity (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004) of two images with
    pixels in [0, 1]: scikit-image's 7×7 uniform window, averaged over channels; 1 when equal.

    Shapes: two ``[C, H, W]`` images (H, W ≥ 7).

    Raises:
        MissingDependencyError: scikit-image is missing.
    """
    metrics = require_skimage()
    a, b = _hwc(true), _hwc(reconstructed)
    return float(metrics.structural_similarity(a, b, data_range=1.0, channel_axis=2))


def match_images(true: torch.Tensor, reconstructed: torch.Tensor) -> list[int]:
    """The pairing of reconstructed to true images that maximises the total PSNR (Hungarian
    assignment): ``order[i]`` is the reconstruction paired with true image ``i``.

    Shapes: two ``[B, C, H, W]`` batches → B indices.
    """
    from scipy.optimize import linear_sum_assignment

    b = true.shape[0]
    if b == 1:
        return [0]
    diff = true.detach().double().cpu()[:, None] - reconstructed.detach().double().cpu()[None]
    mse = diff.pow(2).flatten(2).mean(-1).clamp_min(1e-12)
    rows, cols = linear_sum_assignment((10 * torch.log10(mse)).numpy())
    return [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
