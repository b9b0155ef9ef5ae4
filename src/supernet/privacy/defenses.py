"""Defenses against gradient leakage, applied to the shared update before it leaves the device.

Spelled ``KIND`` or ``KIND:STRENGTH`` (see :data:`DEFENSES`):

=================  ===========================================================================
``none``           the update as computed
``pruning:P``      in every shared tensor, the ``round(P · numel)`` entries of smallest magnitude
                   set to zero (P in [0, 1); DLG Sec. 5, "gradient compression and
                   sparsification")
``gaussian:S``     add N(0, S²) noise to every entry (S: the standard deviation, > 0)
``laplacian:S``    add Laplace(0, S) noise to every entry (S: the scale, > 0)
``fp16``           round every entry to half precision (and back to the update's dtype)
``int8``           per-tensor symmetric linear quantization to int8: scale ``max|g| / 127``
=================  ===========================================================================

The DLG paper states noise by its variance (10⁻⁴ … 10⁻¹, Sec. 5, Fig. 6); ``gaussian:S`` takes the
standard deviation, so the paper's variance 10⁻⁴ is ``gaussian:0.01``.

Reference: Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS'19, arXiv 1906.08935, Sec. 5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from supernet.errors import ConfigError

__all__ = ["DEFENSES", "Defense", "parse_defense", "prune_smallest"]

DEFENSES = ("none", "pruning:P", "gaussian:S", "laplacian:S", "fp16", "int8")
"""Defense spellings: P is a fraction in [0, 1), S a positive noise scale."""

_WITH_STRENGTH = ("pruning", "gaussian", "laplacian")
_WITHOUT = ("none", "fp16", "int8")


def prune_smallest(tensor: torch.Tensor, fraction: float) -> torch.Tensor:
    """A copy of ``tensor`` with its ``round(fraction · numel)`` smallest-magnitude entries set to
    zero (ties broken by position, so exactly that many entries are dropped).

    Shapes: any → same.

    Raises:
        ConfigError: ``fraction`` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"pruning fraction = {fraction} must be in [0, 1)")
    count = round(fraction * tensor.numel())
    flat = tensor.detach().flatten().clone()
    if count:
        order = torch.argsort(flat.abs(), stable=True)
        flat[order[:count]] = 0
    return flat.reshape(tensor.shape)


def _int8(tensor: torch.Tensor) -> torch.Tensor:
    peak = float(tensor.abs().max()) if tensor.numel() else 0.0
    if peak == 0.0:
        return tensor.clone()
    scale = peak / 127.0
    return (tensor / scale).round().clamp(-127, 127) * scale


@dataclass(frozen=True)
class Defense:
    """One defense of :data:`DEFENSES` with its strength (0 where it takes none)."""

    kind: str
    strength: float = 0.0

    def __str__(self) -> str:
        return self.kind if self.kind in _WITHOUT else f"{self.kind}:{self.strength:g}"

    def apply(
        self, update: Mapping[str, torch.Tensor], *, seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """The defended copy of ``update`` (``{parameter name: gradient}``); the noise is drawn
        from a CPU generator seeded with ``seed``, tensor by tensor in the mapping's order.

        Shapes: every tensor keeps its shape and dtype.
        """
        generator = torch.Generator().manual_seed(seed)
        out = {}
        for name, g in update.items():
            g = g.detach()
            if self.kind == "pruning":
                out[name] = prune_smallest(g, self.strength)
            elif self.kind in ("gaussian", "laplacian"):
                noise = torch.randn(g.shape, generator=generator, dtype=torch.float64)
                if self.kind == "laplacian":  # inverse CDF of Laplace(0, 1) from a uniform
                    u = torch.rand(g.shape, generator=generator, dtype=torch.float64) - 0.5
                    noise = -torch.sign(u) * torch.log1p(-2 * u.abs())
                out[name] = g + (self.strength * noise).to(g.dtype).to(g.device)
            elif self.kind == "fp16":
                out[name] = g.half().to(g.dtype)
            elif self.kind == "int8":
                out[name] = _int8(g)
            else:
                out[name] = g.clone()
        return out


def parse_defense(text: str) -> Defense:
    """Parse ``KIND`` or ``KIND:STRENGTH`` (module docstring table).

    Raises:
        ConfigError: an unknown kind, a missing or extra strength, or a strength out of range —
            naming the value and the allowed spellings.
    """
    kind, colon, value = text.strip().partition(":")
    kind = kind.lower()
    allowed = ", ".join(DEFENSES)
    if kind in _WITHOUT:
        if colon:
            raise ConfigError(f"defense = {text!r}: {kind} takes no strength; allowed: {allowed}")
        return Defense(kind)
    if kind not in _WITH_STRENGTH:
        raise ConfigError(f"defense = {text!r} is not known; allowed: {allowed}")
    try:
        strength = float(value)
    except ValueError:
        raise ConfigError(
            f"defense = {text!r}: {kind} needs a number after the colon, e.g. {kind}:0.2"
        ) from None
    if kind == "pruning" and not 0.0 <= strength < 1.0:
        raise ConfigError(f"defense = {text!r}: the pruned fraction must be in [0, 1)")
    if kind != "pruning" and not (strength > 0 and math.isfinite(strength)):
        raise ConfigError(f"defense = {text!r}: the noise scale must be a positive number")
    return Defense(kind, strength)
