"""Batched image transforms on tensors [N, C, H, W].

All randomness comes from an explicit ``torch.Generator`` (never the global RNG), and
no function loops over samples in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from supernet.errors import ConfigError

__all__ = ["random_crop", "random_hflip", "random_resized_crop", "resize", "to_float"]


def _check_batch(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(getattr(images, "shape", ()))
        raise ConfigError(f"{what}: expected a tensor [N, C, H, W], got shape {shape}")


def to_float(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Scale uint8 images to [0, 1] and normalize per channel: ``(x / 255 - mean) / std``.

    Shapes: images uint8 [N, C, H, W] -> float32 [N, C, H, W]; mean, std: C floats each,
    in units of the [0, 1] pixel scale.

    Raises:
        ConfigError: images not uint8 [N, C, H, W], or mean/std not C values.
    """
    _check_batch(images, "to_float")
    if images.dtype != torch.uint8:
        raise ConfigError(f"to_float: images must be uint8, got {images.dtype}")
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"to_float: mean {tuple(mean)} / std {tuple(std)} need {channels} value(s) each"
        )
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, channels, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, channels, 1, 1)
    return (images.to(torch.float32) / 255.0 - m) / s


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels per side, then crop a random H x W window per sample.

    Offsets (row, then column) are drawn uniformly from 0..2*padding, one pair per
    sample, from ``generator`` (rows first, then columns). ``padding == 0`` returns the
    input itself. Any dtype; padding is zero in that dtype (black for uint8 images).

    Shapes: [N, C, H, W] -> [N, C, H, W].

    Raises:
        ConfigError: images not 4-D, or ``padding`` not an int >= 0.
    """
    _check_batch(images, "random_crop")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"random_crop: padding={padding!r}; allowed: an int >= 0")
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    span = 2 * padding + 1
    dev = generator.device
    dy = torch.randint(0, span, (n,), generator=generator, device=dev).to(images.device)
    dx = torch.randint(0, span, (n,), generator=generator, device=dev).to(images.device)
    rows = dy[:, None] + torch.arange(h, device=images.device)  # [N, H]
    cols = dx[:, None] + torch.arange(w, device=images.device)  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    chan = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def random_hflip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Flip each sample left-right with probability ``p`` (one draw per sample).

    Shapes: [N, C, H, W] -> [N, C, H, W].

    Raises:
        ConfigError: images not 4-D, or ``p`` outside [0, 1].
    """
    _check_batch(images, "random_hflip")
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"random_hflip: p={p!r}; allowed: a probability in [0, 1]")
    draw = torch.rand(images.shape[0], generator=generator, device=generator.device)
    flip = (draw < p).to(images.device)[:, None, None, None]
    return torch.where(flip, images.flip(-1), images)


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize to ``resolution`` x ``resolution`` pixels, bilinear (elastic resolution).

    Uses ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``. Returns
    the input itself when it already has that size. Integer inputs are interpolated in
    float32 and rounded back to their dtype.

    Shapes: [N, C, H, W] -> [N, C, resolution, resolution].

    Raises:
        ConfigError: images not 4-D, or ``resolution`` not an int >= 1.
    """
    _check_batch(images, "resize")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ConfigError(f"resize: resolution={resolution!r}; allowed: an int >= 1")
    if images.shape[-2] == resolution and images.shape[-1] == resolution:
        return images
    x = images if images.is_floating_point() else images.float()
    out = F.interpolate(
        x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=False
    )
    if images.is_floating_point():
        return out
    if images.dtype == torch.uint8:
        out = out.clamp(0, 255)
    return out.round().to(images.dtype)


def random_resized_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> torch.Tensor:
    """Crop a random area and aspect ratio per sample and resize it back to H x W (bilinear).

    The ImageNet training recipe (Szegedy et al., "Going Deeper with Convolutions", CVPR'15,
    arXiv 1409.4842, Sec. 6; the crop Once-for-All trains with, arXiv 1908.09791): per sample, up
    to ``attempts`` draws of an area fraction uniform in ``scale`` and a log-uniform aspect ratio
    in ``ratio``; the first draw whose box fits the image is cropped at a uniform position. A
    sample with no fitting draw gets the whole image. All samples are drawn at once from
    ``generator`` (areas, ratios, then positions; never the global RNG) and resampled by one
    ``grid_sample`` call (bilinear, ``align_corners=False``, border padding). Integer images are
    rounded back to their dtype. Written here because torchvision is not a dependency.

    Shapes: [N, C, H, W] -> [N, C, H, W].

    Raises:
        ConfigError: images not 4-D, a ``scale`` not 0 < lo <= hi <= 1, a ``ratio`` not
            0 < lo <= hi, or ``attempts`` < 1.
    """
    _check_batch(images, "random_resized_crop")
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise ConfigError(f"random_resized_crop: scale={scale!r}; need 0 < lo <= hi <= 1")
    if not 0 < ratio[0] <= ratio[1]:
        raise ConfigError(f"random_resized_crop: ratio={ratio!r}; need 0 < lo <= hi")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"random_resized_crop: attempts={attempts!r}; need an int >= 1")
    n, _, h, w = images.shape
    if n == 0:
        return images
    dev = generator.device
    area = (lo + (hi - lo) * torch.rand(n, attempts, generator=generator, device=dev)) * (h * w)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(
        log_lo + (log_hi - log_lo) * torch.rand(n, attempts, generator=generator, device=dev)
    )
    cw = torch.sqrt(area * aspect).round()
    ch = torch.sqrt(area / aspect).round()
    fits = (cw >= 1) & (cw <= w) & (ch >= 1) & (ch <= h)
    first = fits.to(torch.int64).argmax(dim=1)  # index of the first fitting draw (0 if none)
    rows = torch.arange(n, device=dev)
    any_fit = fits.any(dim=1)
    cw = torch.where(any_fit, cw[rows, first], torch.full_like(cw[:, 0], w))
    ch = torch.where(any_fit, ch[rows, first], torch.full_like(ch[:, 0], h))
    u = torch.rand(n, 2, generator=generator, device=dev)
    top = torch.floor(u[:, 0] * (h - ch + 1))
    left = torch.floor(u[:, 1] * (w - cw + 1))
    # The box in grid_sample's normalized coordinates: centre and half-extent over [-1, 1].
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=dev)
    theta[:, 0, 0] = cw / w
    theta[:, 0, 2] = (2 * left + cw) / w - 1
    theta[:, 1, 1] = ch / h
    theta[:, 1, 2] = (2 * top + ch) / h - 1
    theta = theta.to(images.device)
    x = images if images.is_floating_point() else images.float()
    grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if images.is_floating_point():
        return out.to(images.dtype)
    if images.dtype == torch.uint8:
        out = out.clamp(0, 255)
    return out.round().to(images.dtype)
